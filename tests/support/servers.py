"""Real PostgreSQL and Redis servers on loopback, started by the test suite itself.

PostgreSQL refuses to run as root, so when the suite runs as root the server runs as the
`postgres` user (created by Debian's package) through runuser, in a temporary data directory.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LoopbackHttp:
    """An HTTP server on a free loopback port, serving from a thread inside a `with` block."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _wait_for_port(port: int, timeout_s: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    detail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
    raise RuntimeError(f"{what} did not start on port {port} within {timeout_s} s\n{detail}")


def _pg_bin(name: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    if found:
        return found[-1]
    path = shutil.which(name)
    if path is None:
        raise RuntimeError(f"PostgreSQL's {name} is not installed; the test command installs Debian's postgresql")
    return path


@dataclass
class PostgresServer:
    port: int
    data_dir: Path
    user: str = "postgres"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{database}"

    @classmethod
    def start(cls) -> PostgresServer:
        base = Path(tempfile.mkdtemp(prefix="payouts-pg-"))
        data_dir = base / "data"
        as_root = os.geteuid() == 0
        prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
        if as_root:
            shutil.chown(base, "postgres", "postgres")
        subprocess.run(
            [
                *prefix,
                _pg_bin("initdb"),
                "-D",
                str(data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            check=True,
            capture_output=True,
        )
        port = free_port()
        log = base / "postgres.log"
        options = f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
        subprocess.run(
            [*prefix, _pg_bin("pg_ctl"), "-D", str(data_dir), "-l", str(log), "-o", options, "-w", "start"],
            check=True,
            capture_output=True,
        )
        _wait_for_port(port, 30, "PostgreSQL", log)
        return cls(port=port, data_dir=data_dir)

    def restart(self) -> None:
        """Stop (fast: open connections are cut) and start again on the same port and data."""
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        # the server's output goes to its log: a pipe would stay open as long as the server runs
        subprocess.run(
            [
                *prefix,
                _pg_bin("pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.data_dir.parent / "postgres.log"),
                "-m",
                "fast",
                "-w",
                "restart",
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(self.port, 30, "PostgreSQL")

    def stop(self) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run(
            [*prefix, _pg_bin("pg_ctl"), "-D", str(self.data_dir), "-m", "immediate", "stop"],
            capture_output=True,
        )
        shutil.rmtree(self.data_dir.parent, ignore_errors=True)


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen
    dir: Path

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @classmethod
    def start(cls, port: int | None = None, dir: Path | None = None) -> RedisServer:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; the test command installs Debian's redis-server")
        port = port or free_port()
        dir = dir or Path(tempfile.mkdtemp(prefix="payouts-redis-"))
        dir.mkdir(parents=True, exist_ok=True)
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(dir),
                "--save",
                "",
                "--appendonly",
                "yes",
                "--daemonize",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_for_port(port, 15, "Redis")
        return cls(port=port, process=process, dir=dir)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
