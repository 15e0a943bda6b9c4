"""The chain's time: the close time of Horizon's latest ledger."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import structlog

from payouts.clock import SystemClock
from payouts.tls import tls_context

log = structlog.get_logger(__name__)

#: one quick look: an unreachable Horizon must not hold up an offline command
LOOKUP_TIMEOUT_S = 5.0


class ChainClock:
    """Horizon's latest closed ledger time; this machine's clock when Horizon cannot be reached
    (said in `source`, so a refusal names whose time it judged by)."""

    def __init__(self, horizon_url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self._url = horizon_url.rstrip("/")
        self._transport = transport
        self.source = "the chain's time"

    def now(self) -> datetime:
        try:
            with httpx.Client(
                base_url=self._url, timeout=LOOKUP_TIMEOUT_S, transport=self._transport, verify=tls_context()
            ) as client:
                response = client.get("/ledgers", params={"order": "desc", "limit": 1})
                response.raise_for_status()
                record = response.json()["_embedded"]["records"][0]
                closed_at = datetime.fromisoformat(str(record["closed_at"]))
                self.source = f"the chain's time (ledger {int(record['sequence']):,})"
                return closed_at.astimezone(UTC)
        except (httpx.HTTPError, ValueError, KeyError, IndexError, TypeError) as exc:
            log.warning("clock.chain.unavailable", error=type(exc).__name__)
            fallback = SystemClock()
            self.source = f"{fallback.source} (Horizon unreachable)"
            return fallback.now()
