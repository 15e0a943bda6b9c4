"""Hostile or broken requests get a clear problem document, never a crash or a traceback."""

from __future__ import annotations

import socket

import httpx
import pytest
from stellar_sdk import Keypair

PROBLEM = "application/problem+json"


def problem(reply: httpx.Response, status: int, slug: str) -> dict:
    assert reply.status_code == status, reply.text
    assert reply.headers["content-type"].startswith(PROBLEM)
    body = reply.json()
    assert body["type"] == f"https://stellar.org/horizon-errors/{slug}"
    assert "Traceback" not in reply.text
    return body


@pytest.mark.parametrize("path", ["/transactions", "/transactions_async"])
@pytest.mark.parametrize("tx", ["not base64 at all!", "AAAA", "QUJD" * 50, ""])
def test_invalid_xdr(sandbox, tx, path):
    reply = httpx.post(f"{sandbox.url}{path}", data={"tx": tx})
    if tx:
        assert problem(reply, 400, "transaction_malformed")["extras"]["envelope_xdr"] == tx
    else:
        assert problem(reply, 400, "bad_request")["extras"]["invalid_field"] == "tx"


def test_huge_body_is_refused_unread(sandbox):
    reply = httpx.post(
        f"{sandbox.url}/transactions",
        content=b"tx=" + b"A" * (2 * 1024 * 1024),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert "larger than" in problem(reply, 400, "bad_request")["extras"]["reason"]
    assert httpx.get(f"{sandbox.url}/").status_code == 200


def test_unknown_paths_and_methods(sandbox):
    problem(httpx.get(f"{sandbox.url}/nope"), 404, "not_found")
    problem(httpx.post(f"{sandbox.url}/offers", data={"tx": "x"}), 404, "not_found")
    problem(httpx.put(f"{sandbox.url}/transactions"), 405, "method_not_allowed")


def test_bad_parameters(sandbox):
    problem(httpx.get(f"{sandbox.url}/accounts/GNOTANACCOUNT"), 400, "bad_request")
    problem(httpx.get(f"{sandbox.url}/transactions/xyz"), 400, "bad_request")
    account = Keypair.random().public_key
    problem(httpx.get(f"{sandbox.url}/accounts/{account}/payments?limit=500"), 400, "bad_request")
    problem(httpx.get(f"{sandbox.url}/accounts/{account}/payments?cursor=-1"), 400, "bad_request")
    problem(httpx.get(f"{sandbox.url}/accounts/{account}/payments?order=sideways"), 400, "bad_request")
    problem(httpx.get(f"{sandbox.url}/accounts/{account}/payments"), 404, "not_found")


def test_non_ascii_body_and_garbage_on_the_socket(sandbox):
    reply = httpx.post(
        f"{sandbox.url}/transactions",
        content="tx=é".encode(),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    problem(reply, 400, "bad_request")
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as raw:
        raw.sendall(b"\x00\xff garbage \r\n\r\n")
        raw.recv(1024)
    with socket.create_connection(("127.0.0.1", sandbox.port), timeout=5) as raw:
        raw.sendall(b"POST /transactions HTTP/1.1\r\nHost: x\r\n\r\n")  # no Content-Length
        assert b"400" in raw.recv(4096).split(b"\r\n")[0]
    assert httpx.get(f"{sandbox.url}/").status_code == 200
