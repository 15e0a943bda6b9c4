"""The web process's limits: malformed and oversized queries, caching of the site, streamed
exports, an unreachable ledger, and slow clients trickling a request head (all on loopback)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate

import httpx
import pytest
from sqlalchemy import create_engine

from payouts.export.server import MAX_QUERY_FIELDS, MAX_QUERY_LENGTH, make_server, serve_in_thread

MALFORMED = {
    "period=²": "period must be",
    "period=٢٠٢٥-١١": "period must be",
    "period=2025-13": "period must be",
    "period=" + "9" * 5000: "longer than",
    "period=99999999": "period must be",
    "period=%ff%fe": "period must be",
    "farm=²": "farm must be a number",
    "farm=-1": "farm must be a number",
    "node=1e3": "node must be a number",
    "node=1&node=2": "node is given more than once",
    "address=GABC": "address must be",
    "receipt=xyz": "receipt must be",
    "colour=red": "unknown parameter colour",
    "%00%ff=1": "unknown parameter (not plain text)",
    "&".join(f"farm{n}=1" for n in range(60)): f"more than {MAX_QUERY_FIELDS} fields",
    "&".join("address=G" + "A" * 55 for _ in range(60)): f"more than {MAX_QUERY_FIELDS} fields",
    "farm=1&" + "x" * MAX_QUERY_LENGTH: f"longer than {MAX_QUERY_LENGTH}",
}


def _one_line_problem(response: httpx.Response, wanted: str) -> None:
    assert response.status_code == 400, (response.status_code, response.text[:200])
    assert response.text.endswith("\n") and response.text.count("\n") == 1, response.text
    assert wanted in response.text, response.text
    assert len(response.text) < 200
    for leak in ("Traceback", "File ", "/", "sqlite"):
        assert leak not in response.text


def test_malformed_and_oversized_queries_are_a_one_line_400(web):
    with httpx.Client(base_url=web.url, timeout=10) as client:
        for query, wanted in MALFORMED.items():
            for path in ("/export.json", "/export.csv", "/export.jsonl"):
                _one_line_problem(client.get(f"{path}?{query}"), wanted)
        # the same bound holds for any path, and a long query on the site is refused too
        _one_line_problem(client.get("/index.html?" + "q" * (MAX_QUERY_LENGTH + 1)), "longer than")
        assert client.get("/export.json?period=2025-01&farm=100").status_code == 200  # still answering


def test_a_request_head_over_16_kib_is_refused(web):
    with httpx.Client(base_url=web.url, timeout=10) as client:
        refused = client.get("/", headers={"X-Filler": "a" * 20_000})  # read in one piece
        assert refused.status_code == 431 and refused.text == "431 Request Header Fields Too Large\n"
        many = client.get("/", headers={f"X-{n}": "1" for n in range(120)})
        assert many.status_code == 431
    with socket.create_connection(("127.0.0.1", web.server_address[1]), timeout=10) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")  # a head arriving in parts, past 16 KiB
        sent = 0
        try:
            for _ in range(40):
                time.sleep(0.01)
                sock.sendall(b"X-Filler: " + b"a" * 1000 + b"\r\n")
                sent += 1
        except OSError:  # the server hung up mid-head
            pass
        try:
            answer = sock.recv(1024)
        except ConnectionResetError:
            answer = b""
        assert sent < 40 or answer.startswith(b"HTTP/1.1 431")
        assert answer == b"" or (answer.startswith(b"HTTP/1.1 431") and answer.endswith(b"\r\n\r\n"))  # no body
    with httpx.Client(base_url=web.url, timeout=10) as client:
        assert client.get("/healthz").text == "ok\n"


def test_site_files_carry_validators_and_revalidate(web, published):
    site, *_ = published
    with httpx.Client(base_url=web.url, timeout=10) as client:
        for path in ("/", "/app.js", "/data/meta.json"):
            first = client.get(path)
            assert first.status_code == 200
            assert first.headers["cache-control"] == "no-cache"
            assert first.headers["etag"] and first.headers["last-modified"]
            assert first.headers["x-content-type-options"] == "nosniff"
            again = client.get(path, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304 and again.content == b""
            assert again.headers["etag"] == first.headers["etag"]
            since = client.get(path, headers={"If-Modified-Since": formatdate(time.time() + 60, usegmt=True)})
            assert since.status_code == 304
        stale = client.get("/app.js", headers={"If-None-Match": '"not-this-one"'})
        assert stale.status_code == 200 and stale.text == (site / "app.js").read_text()


def test_exports_are_streamed_and_never_cached(web):
    with httpx.Client(base_url=web.url, timeout=10) as client:
        for path in ("/export.json", "/export.csv", "/export.jsonl"):
            with client.stream("GET", path) as response:
                assert response.status_code == 200
                assert response.headers["transfer-encoding"] == "chunked"
                assert "content-length" not in response.headers
                assert response.headers["cache-control"] == "no-store"
                assert response.headers["content-type"].endswith("charset=utf-8")
                assert b"".join(response.iter_bytes())
            head = client.head(path + "?farm=100")
            assert head.status_code == 200 and head.content == b""


def test_an_unreachable_ledger_is_a_503_naming_neither_url_nor_password(tmp_path):
    url = "postgresql+psycopg://payouts:hunter2secret@127.0.0.1:1/ledger"
    engine = create_engine(url, pool_pre_ping=True)
    server = make_server(url, "127.0.0.1", 0, tmp_path, network="dev", engine=engine)
    serve_in_thread(server)
    try:
        with httpx.Client(base_url=server.url, timeout=20) as client:
            for path in ("/export.json", "/export.csv"):
                answer = client.get(path)
                assert answer.status_code == 503
                assert answer.text == "the ledger cannot be read right now; try again in a minute\n"
            missing = client.get("/index.html")  # nothing published in this folder yet
            assert missing.status_code == 404 and missing.text == "404 Not Found\n"
    finally:
        server.shutdown()
        engine.dispose()


HEADER_DEADLINE_S = 1.0


#: the deadline while thirty clients trickle: long enough that a request served behind none of
#: them is told apart from one served only once a trickler was cut off, on a loaded machine too
TRICKLING_DEADLINE_S = 3.0


@contextmanager
def _strict_server(published, header_timeout_s: float) -> Iterator:
    site, url, *_ = published
    server = make_server(url, "127.0.0.1", 0, site, network="dev", header_timeout_s=header_timeout_s)
    thread = serve_in_thread(server)
    try:
        yield server
    finally:
        server.shutdown()
        thread.join(10)
        server.engine.dispose()


@pytest.fixture
def strict_web(published):
    """A server with a one-second deadline for a request head."""
    with _strict_server(published, HEADER_DEADLINE_S) as server:
        yield server


@pytest.fixture
def trickled_web(published):
    """A server with a deadline for a request head of `TRICKLING_DEADLINE_S`."""
    with _strict_server(published, TRICKLING_DEADLINE_S) as server:
        yield server


def _trickle(port: int, results: list[float], stop: threading.Event) -> None:
    """Send a request head a byte every 0.1 s (never finishing it); record when the server hung up."""
    head = b"GET /export.json HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: " + b"s" * 200
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        opened = time.monotonic()
        for byte in head:
            if stop.is_set():
                return
            try:
                sock.sendall(bytes([byte]))
                sock.settimeout(0.1)
                if sock.recv(1024) == b"":  # closed by the server
                    break
            except TimeoutError:
                continue
            except OSError:  # reset by the server
                break
        results.append(time.monotonic() - opened)


def test_clients_trickling_a_request_head_are_cut_off_at_the_deadline(trickled_web):
    port = trickled_web.server_address[1]
    results: list[float] = []
    stop = threading.Event()
    tricklers = [threading.Thread(target=_trickle, args=(port, results, stop), daemon=True) for _ in range(30)]
    for trickler in tricklers:
        trickler.start()
    try:
        time.sleep(0.3)
        # while thirty clients trickle, everyone else is served at once
        # (before any trickler can have been cut off: behind none of them)
        with httpx.Client(base_url=trickled_web.url, timeout=5) as client:
            started = time.monotonic()
            assert client.get("/healthz").text == "ok\n"
            assert client.get("/export.json?farm=100").json()["entries"]
            assert time.monotonic() - started < TRICKLING_DEADLINE_S - 0.5
        for trickler in tricklers:
            trickler.join(10)
    finally:
        stop.set()
    # each trickler would need 25 s for its head; the server hung up on each at its deadline
    print("hung up after", sorted(round(t, 2) for t in results))
    assert len(results) == 30, results
    assert all(TRICKLING_DEADLINE_S - 0.2 <= took <= TRICKLING_DEADLINE_S + 1.5 for took in results), sorted(results)


def test_a_silent_connection_and_an_idle_keep_alive_are_closed(strict_web):
    port = strict_web.server_address[1]
    with socket.create_connection(("127.0.0.1", port), timeout=5) as silent:
        opened = time.monotonic()
        assert silent.recv(1024) == b""
        assert time.monotonic() - opened <= HEADER_DEADLINE_S + 1.0
    with socket.create_connection(("127.0.0.1", port), timeout=5) as kept:
        kept.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        while not answer.endswith(b"ok\n"):
            answer += kept.recv(1024)
        assert answer.startswith(b"HTTP/1.1 200") and b"server: payouts-web" in answer.lower()
        idle = time.monotonic()
        assert kept.recv(1024) == b""
        assert time.monotonic() - idle <= HEADER_DEADLINE_S + 1.0


def _export_threads() -> int:
    return sum(1 for thread in threading.enumerate() if thread.name == "payouts-web-export")


def test_a_client_that_stops_reading_an_export_is_dropped_and_frees_the_ledger(tmp_path):
    from payouts.ledger.db import make_engine, migrate
    from tests.export.bulk import fill_ledger

    url = f"sqlite:///{tmp_path / 'big.sqlite3'}"
    engine = make_engine(url)
    migrate(engine)
    fill_ledger(engine, nodes=1500, periods=2, batch=10)  # an export of several megabytes
    server = make_server(
        url,
        "127.0.0.1",
        0,
        None,
        network="dev",
        engine=engine,
        send_timeout_s=1.0,
        max_exports=1,
    )
    thread = serve_in_thread(server)
    try:
        before = _export_threads()
        stalled = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.settimeout(15)
        stalled.connect(server.server_address)
        stalled.sendall(b"GET /export.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        time.sleep(0.5)
        assert _export_threads() == before + 1  # the export is running, held back by the client
        with httpx.Client(base_url=server.url, timeout=5) as client:
            assert client.get("/healthz").text == "ok\n"  # everyone else is still served
            busy = client.get("/export.json")  # at most one export at a time here
            assert busy.status_code == 503 and busy.headers["retry-after"] == "5"
            assert busy.text == "too many exports at once; try again in a few seconds\n"
        deadline = time.monotonic() + 10
        while _export_threads() > before and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _export_threads() == before  # the stalled export gave up its ledger connection
        with httpx.Client(base_url=server.url, timeout=30) as client:
            full = len(client.get("/export.json").content)  # and its place
        assert full > 2_000_000
        received = 0
        dropped_at = time.monotonic()
        try:
            while chunk := stalled.recv(65536):
                received += len(chunk)
        except (ConnectionResetError, TimeoutError):
            pass
        assert received < full  # cut short, not completed
        assert time.monotonic() - dropped_at < 15
        stalled.close()
    finally:
        server.shutdown()
        thread.join(10)
        engine.dispose()


def test_request_bodies_never_poison_a_kept_alive_connection(web):
    with httpx.Client(base_url=web.url, timeout=10) as client:
        for _ in range(20):
            assert client.post("/export.json", content=b"x=1").status_code == 405
            assert client.request("GET", "/healthz", content=b"\x00GET / HTTP/1.1").text == "ok\n"
            assert client.get("/healthz").text == "ok\n"
        too_big = client.post("/", content=b"x" * 100_000)
        assert too_big.status_code == 413 and too_big.headers["connection"] == "close"
        assert client.get("/healthz").text == "ok\n"  # on a new connection


ODD_PATHS = [
    "/%ff",
    "/%00",
    "/%2e%2e%2f%2e%2e%2fetc/passwd",
    "//etc/passwd",
    "/data/nodes/1000.json/",
    "/export.json/",
    "/EXPORT.JSON",
    "/export.json?%",
    "/export.json?period",
    "/export.json?=1",
    "/export.json?period=2025-01&period=2025-02",
    "/export.csv?farm=%F0%9F%92%A5",
    "/ファーム",
    "/" + "a" * 10_000,
    "/index.html?" + "&" * 200,
]


def test_odd_requests_get_a_plain_answer_without_internals(web, published):
    site, url, *_ = published
    with httpx.Client(base_url=web.url, timeout=10) as client:
        for path in ODD_PATHS:
            response = client.get(path)
            assert response.status_code in (200, 400, 404, 414, 431), (path[:60], response.status_code)
            assert response.text.count("\n") <= 1 or response.status_code == 200, path[:60]
            for leak in ("Traceback", str(site), url, "starlette", "hypercorn", "sqlite"):
                assert leak not in response.text, (path[:60], leak)
        upgrade = client.get(
            "/",
            headers={
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
        assert upgrade.status_code in (200, 400, 403, 404)
        assert "Traceback" not in upgrade.text
    for raw in (
        b"GET /\x01 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"NONSENSE\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
    ):
        with socket.create_connection(("127.0.0.1", web.server_address[1]), timeout=5) as sock:
            sock.sendall(raw)
            answer = b""
            try:
                while chunk := sock.recv(4096):
                    answer += chunk
            except (ConnectionResetError, TimeoutError):
                pass
            assert answer == b"" or answer.startswith((b"HTTP/1.1 200", b"HTTP/1.1 4")), answer[:80]
            assert b"Traceback" not in answer
    with httpx.Client(base_url=web.url, timeout=10) as client:
        assert client.get("/healthz").text == "ok\n"


def test_the_procfile_web_process_serves_and_stops_on_sigterm(published, tmp_path):
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from tests.support.servers import free_port

    site, url, *_ = published
    procfile = (Path(__file__).parents[2] / "Procfile").read_text()
    assert "web: payouts web --host 0.0.0.0 --port ${PORT:-8080}" in procfile
    port = free_port()
    env = {**os.environ, "PAYOUTS_DATABASE_URL": url, "PAYOUTS_NETWORK": "dev"}
    log = (tmp_path / "web.log").open("w")
    web = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "payouts.cli.main",
            "web",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--site",
            str(site),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        answer = None
        while time.monotonic() < deadline:
            try:
                answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        assert answer is not None and answer.text == "ok\n"
        assert httpx.get(f"http://127.0.0.1:{port}/export.json?period=²", timeout=5).status_code == 400
        web.send_signal(signal.SIGTERM)
        assert web.wait(10) == 0
    finally:
        if web.poll() is None:
            web.kill()
            web.wait(5)
        log.close()
    assert "Traceback" not in (tmp_path / "web.log").read_text()
