"""One TLS context per process, shared by every HTTP client the service opens.

An httpx client left to itself builds a context of its own and reads the whole CA bundle again
(some 40 ms of CPU a client); a command, a task or a sandbox set-up opens several clients. The
context is httpx's default one (certifi's bundle, or `SSL_CERT_FILE` / `SSL_CERT_DIR` as read
when the first client opens), built on first use.
"""

from __future__ import annotations

import ssl
from functools import cache


@cache
def tls_context() -> ssl.SSLContext:
    import httpx

    return httpx.create_ssl_context()
