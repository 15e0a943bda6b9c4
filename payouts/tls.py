"""One TLS context per process, shared by every HTTP client the service opens.

An HTTP client left to itself builds a context of its own and reads the whole CA bundle again
(some 40 ms of CPU a client); a command, a task or a sandbox set-up opens several clients. The
context is the one httpx builds by default (`SSL_CERT_FILE`, else `SSL_CERT_DIR`, as read when
the first client opens, else certifi's bundle), built on first use. It is built here rather
than by httpx so that a command whose only request goes through the standard library (the
chain clock) does not import httpx for it; `tests/test_tls.py` compares the two.
"""

from __future__ import annotations

import os
import ssl
from functools import cache


@cache
def tls_context() -> ssl.SSLContext:
    if os.environ.get("SSL_CERT_FILE"):
        return ssl.create_default_context(cafile=os.environ["SSL_CERT_FILE"])
    if os.environ.get("SSL_CERT_DIR"):
        return ssl.create_default_context(capath=os.environ["SSL_CERT_DIR"])
    import certifi

    return ssl.create_default_context(cafile=certifi.where())
