"""Every HTTP client the service opens shares the process's one TLS context: the CA bundle is
read once, not once a client."""

from __future__ import annotations

import ssl

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
