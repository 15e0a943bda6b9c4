"""HTTP for the snapshot sources: JSON over httpx with timeouts and bounded retries, and a
GraphQL client.

Retry rule: a connection error, a timeout, a 5xx or a 429 is retried (the query is a read, so
repeating it is harmless), with exponential backoff and `Retry-After` honoured, at most
`RetryPolicy.attempts` times in all. Any other 4xx, a GraphQL `errors` list or an answer that is
not JSON is the query's fault and is not retried.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx
import orjson

from payouts import CODE_VERSION
from payouts.retry import RetryPolicy, Transient, default_sleep, retry_after_s
from payouts.sources.errors import IndexerQueryError, IndexerUnreachable, SourceError
from payouts.tls import tls_context

__all__ = ["USER_AGENT", "GraphQLClient", "JsonHttp", "RetryPolicy", "check_http_url"]

USER_AGENT = f"tft-payouts/{CODE_VERSION} (snapshot builder)"


def check_http_url(url: str, what: str) -> str:
    """An http(s) URL with a host, or a SourceError saying what is wrong with it."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise SourceError(f"{what} URL {url!r} is not an http:// or https:// URL")
    return url


class JsonHttp:
    """One httpx client for one server: JSON answers, timeouts, bounded retries."""

    def __init__(
        self,
        *,
        timeout_s: float = 60.0,
        connect_timeout_s: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = default_sleep,
    ) -> None:
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._http = httpx.Client(
            timeout=httpx.Timeout(timeout_s, connect=min(connect_timeout_s, timeout_s)),
            headers={"user-agent": USER_AGENT, "accept": "application/json"},
            follow_redirects=True,
            verify=tls_context(),
        )
        #: HTTP requests sent, retries included, and the longest one's duration (answered or not).
        self.requests = 0
        self.slowest_s = 0.0

    def close(self) -> None:
        self._http.close()

    def request_json(self, method: str, url: str, *, body: object = None, what: str) -> object:
        content = orjson.dumps(body) if body is not None else None
        headers = {"content-type": "application/json"} if content is not None else None
        attempts = 0

        def attempt() -> object:
            nonlocal attempts
            attempts += 1
            self.requests += 1
            started = time.perf_counter()
            try:
                response = self._http.request(method, url, content=content, headers=headers)
            except httpx.TimeoutException as exc:
                raise Transient(f"timed out ({type(exc).__name__})") from None
            except httpx.TransportError as exc:
                raise Transient(f"connection failed ({type(exc).__name__}: {exc})") from None
            finally:
                self.slowest_s = max(self.slowest_s, time.perf_counter() - started)
            status = response.status_code
            if status == 429 or status >= 500:
                raise Transient(f"HTTP {status}", retry_after_s(response.headers))
            if status >= 400:
                raise IndexerQueryError(f"{url}: {what}: HTTP {status}: {response.text[:300].strip()}")
            try:
                return orjson.loads(response.content)
            except orjson.JSONDecodeError:
                raise IndexerQueryError(
                    f"{url}: {what}: the answer is not JSON (HTTP {status}, {response.content[:80]!r})"
                ) from None

        try:
            return self.retry.call(attempt, sleep=self._sleep)
        except Transient as exc:
            raise IndexerUnreachable(
                f"{url}: {what}: gave up after {attempts} attempt(s), last: {exc.problem}"
            ) from None


class GraphQLClient:
    """Queries a Subsquid GraphQL server (TFChain's indexer)."""

    def __init__(self, url: str, http: JsonHttp) -> None:
        self.url = check_http_url(url, "GraphQL")
        self.http = http

    def query(self, document: str, variables: dict | None = None, *, what: str) -> dict:
        """The `data` object of the answer; GraphQL errors raise IndexerQueryError."""
        body = {"query": document, "variables": variables or {}}
        answer = self.http.request_json("POST", self.url, body=body, what=what)
        if not isinstance(answer, dict):
            raise IndexerQueryError(f"{self.url}: {what}: expected a JSON object, got {type(answer).__name__}")
        errors = answer.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else errors
            message = first.get("message", first) if isinstance(first, dict) else first
            raise IndexerQueryError(f"{self.url}: {what}: the indexer answered with an error: {message}")
        data = answer.get("data")
        if not isinstance(data, dict):
            raise IndexerQueryError(f"{self.url}: {what}: the answer has no data object")
        return data
