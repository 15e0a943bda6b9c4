"""The read-only web server: the site, the export endpoints, and what it refuses."""

from __future__ import annotations

import csv
import io
import json

import httpx

from payouts.export.rows import FARMER_FIELDS, FIELDS


def test_serves_the_site_and_refuses_everything_but_get_and_head(web, published):
    site, *_ = published
    with httpx.Client(base_url=web.url, timeout=10) as client:
        index = client.get("/")
        assert index.status_code == 200 and "text/html" in index.headers["content-type"]
        assert index.text == (site / "index.html").read_text()
        assert client.get("/app.js").headers["content-type"].endswith("charset=utf-8")
        assert client.get("/data/nodes/1000.json").json()["node_id"] == 1000
        assert client.head("/data/meta.json").status_code == 200
        assert web.server_address[0] == "127.0.0.1"
        for method in ("POST", "PUT", "DELETE", "PATCH", "OPTIONS"):
            refused = client.request(method, "/export.json", content=b"x=1")
            assert refused.status_code == 405 and refused.headers["allow"] == "GET, HEAD", method
        assert "Python" not in index.headers.get("server", "")


def test_unknown_paths_are_404_without_leaking_the_path_or_internals(web, published):
    site, url, *_ = published
    probes = [
        "/no-such-page-<script>",
        "/../ledger.sqlite3",
        "/%2e%2e/ledger.sqlite3",
        "/data/../../ledger.sqlite3",
        "/.data-new-1/x",
        "/data/nodes/99999.json",
    ]
    with httpx.Client(base_url=web.url, timeout=10) as client:
        for probe in probes:
            response = client.get(probe)
            assert response.status_code == 404, probe
            assert response.text == "404 Not Found\n"
            for leak in ("script", "sqlite", str(site), "Traceback", url):
                assert leak not in response.text
        bad = client.get("/export.json", params={"farm": "1; DROP TABLE runs"})
        assert bad.status_code == 400 and "Traceback" not in bad.text and "DROP" not in bad.text


def test_export_endpoints_filter_like_the_cli(web, published):
    _site, _url, paid, entries = published
    address = paid.document["farmers"][2]["public_key"]
    paid_hash = next(e["receipt_hash"] for e in entries if e["status"] == "paid")
    cases = {
        "node=1010": lambda e: e["node_id"] == 1010,
        "farm=101": lambda e: e["farm_id"] == 101,
        f"address={address}": lambda e: e["payout_address"] == address,
        "period=2025-01": lambda e: e["period"] == "2025-01",
        "period=2025-02&farm=102": lambda e: e["period"] == "2025-02" and e["farm_id"] == 102,
        f"receipt={paid_hash}": lambda e: paid_hash in (e["receipt_hash"], e["memo"], e["correction_of"]),
    }
    with httpx.Client(base_url=web.url, timeout=10) as client:
        for query, wanted in cases.items():
            document = client.get(f"/export.json?{query}").json()
            expected = [e["receipt_hash"] for e in entries if wanted(e)]
            assert expected and [e["receipt_hash"] for e in document["entries"]] == expected, query
            assert document["runs"] and document["network"] == "dev"
        as_csv = client.get("/export.csv?farm=100")
        assert as_csv.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(as_csv.text)))
        assert [r["receipt_hash"] for r in rows] == [e["receipt_hash"] for e in entries if e["farm_id"] == 100]
        assert list(rows[0]) == list(FARMER_FIELDS)  # the farmer's short set, as the CLI's default
        full = list(csv.DictReader(io.StringIO(client.get("/export.csv?farm=100&columns=full").text)))
        assert list(full[0]) == list(FIELDS) and [r["receipt_hash"] for r in full] == [r["receipt_hash"] for r in rows]
        assert client.get("/export.csv?columns=wide").text == "columns must be farmer or full\n"
        lines = client.get("/export.jsonl?node=1000").text.splitlines()
        assert json.loads(lines[0])["record"] == "header"
        assert [json.loads(line)["node_id"] for line in lines if '"record":"entry"' in line] == [
            e["node_id"] for e in entries if e["node_id"] == 1000
        ]
