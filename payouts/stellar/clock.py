"""The chain's time: the close time of Horizon's latest ledger."""

from __future__ import annotations

import http.client
import json
import urllib.parse
import urllib.request
from datetime import UTC, datetime

import structlog

from payouts.clock import SystemClock
from payouts.tls import tls_context

log = structlog.get_logger(__name__)

#: one quick look: an unreachable Horizon must not hold up an offline command
LOOKUP_TIMEOUT_S = 5.0
#: a ledger page is a few kB; more is not Horizon
_MAX_RESPONSE_BYTES = 1 << 20


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect is an answer that is not the ledger (as httpx, which follows none by default)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


class ChainClock:
    """Horizon's latest closed ledger time; this machine's clock when Horizon cannot be reached
    (said in `source`, so a refusal names whose time it judged by).

    One request through the standard library: `calculate` and `freeze` ask for the time and
    nothing else of Horizon, and importing httpx would cost them more than the request."""

    def __init__(self, horizon_url: str) -> None:
        self._url = horizon_url.rstrip("/")
        self.source = "the chain's time"

    def now(self) -> datetime:
        try:
            record = self._latest_ledger()
            closed_at = datetime.fromisoformat(str(record["closed_at"]))
            self.source = f"the chain's time (ledger {int(record['sequence']):,})"
            return closed_at.astimezone(UTC)
        except (OSError, http.client.HTTPException, ValueError, KeyError, IndexError, TypeError) as exc:
            # (urllib's URLError and HTTPError, timeouts and refused connections are OSErrors)
            log.warning("clock.chain.unavailable", error=type(exc).__name__)
            fallback = SystemClock()
            self.source = f"{fallback.source} (Horizon unreachable)"
            return fallback.now()

    def _latest_ledger(self) -> dict:
        url = f"{self._url}/ledgers?{urllib.parse.urlencode({'order': 'desc', 'limit': 1})}"
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if url.startswith("https:"):
            handlers.append(urllib.request.HTTPSHandler(context=tls_context()))
        opener = urllib.request.build_opener(*handlers)
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        with opener.open(request, timeout=LOOKUP_TIMEOUT_S) as response:
            body = response.read(_MAX_RESPONSE_BYTES + 1)
        if len(body) > _MAX_RESPONSE_BYTES:
            raise ValueError("the ledger page is larger than any Horizon sends")
        return json.loads(body)["_embedded"]["records"][0]
