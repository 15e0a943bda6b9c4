"""Every HTTP client the service opens shares the process's one TLS context: the CA bundle is
read once, not once a client."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from payouts import tls
from payouts.sources.graphql import JsonHttp
from payouts.stellar.horizon import HorizonClient


def test_clients_read_the_ca_bundle_once(monkeypatch):
    made: list[ssl.SSLContext] = []
    create = ssl.create_default_context

    def counted(*args, **kwargs):
        made.append(create(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(ssl, "create_default_context", counted)
    tls.tls_context.cache_clear()
    try:
        clients = [HorizonClient("http://127.0.0.1:1"), HorizonClient("https://horizon.example"), JsonHttp()]
        for client in clients:
            client.close()
        assert len(made) == 1
        assert tls.tls_context() is made[0]
    finally:
        tls.tls_context.cache_clear()


@pytest.mark.parametrize("variable", [None, "SSL_CERT_FILE", "SSL_CERT_DIR"])
def test_the_context_is_the_one_httpx_builds(monkeypatch, tmp_path, variable):
    import certifi
    import httpx

    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    if variable == "SSL_CERT_FILE":
        bundle = tmp_path / "one.pem"
        bundle.write_text(
            Path(certifi.where()).read_text().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n"
        )
        monkeypatch.setenv(variable, str(bundle))
    elif variable == "SSL_CERT_DIR":
        monkeypatch.setenv(variable, str(tmp_path))
    tls.tls_context.cache_clear()
    try:
        ours, theirs = tls.tls_context(), httpx.create_ssl_context()
    finally:
        tls.tls_context.cache_clear()
    assert ours.cert_store_stats() == theirs.cert_store_stats()
    assert ours.get_ca_certs() == theirs.get_ca_certs()
    assert (ours.verify_mode, ours.check_hostname, ours.options, ours.minimum_version, ours.maximum_version) == (
        theirs.verify_mode,
        theirs.check_hostname,
        theirs.options,
        theirs.minimum_version,
        theirs.maximum_version,
    )
    if variable == "SSL_CERT_FILE":
        assert ours.cert_store_stats()["x509_ca"] == 1
