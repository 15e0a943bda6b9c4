"""Horizon's cursor paging over a collection of records in paging-token order.

A page is a slice after (asc) or before (desc) the cursor, at most `limit` long, with
`_links` self/next/prev as Horizon writes them. Transactions, operations and ledgers page by
their paging token (a TOID, or a ledger's `sequence << 32`), effects by `TOID-index`;
`cursor=now` is the end of the newest ledger reads may see.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from payouts.sandbox import views
from payouts.sandbox.replica import ReadView

MAX_PAGE_LIMIT = 200
DEFAULT_PAGE_LIMIT = 10

Key = tuple[int, int]

_EFFECT_CURSOR = re.compile(r"^(\d{1,19})-(\d{1,10})$")


class BadQuery(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field, self.reason = field, reason


@dataclass(frozen=True)
class Paging:
    cursor: Key | None
    order: str
    limit: int
    cursor_text: str

    @classmethod
    def parse(cls, query: dict[str, list[str]], view: ReadView, *, last_event_id: str | None = None) -> Paging:
        order = query.get("order", ["asc"])[-1] or "asc"
        if order not in ("asc", "desc"):
            raise BadQuery("order", "order: must be asc or desc")
        limit_text = query.get("limit", [str(DEFAULT_PAGE_LIMIT)])[-1] or str(DEFAULT_PAGE_LIMIT)
        if not limit_text.isdigit() or not 1 <= int(limit_text) <= MAX_PAGE_LIMIT:
            raise BadQuery("limit", f"limit: must be between 1 and {MAX_PAGE_LIMIT}")
        # Horizon: a stream's Last-Event-ID header overrides the cursor parameter
        cursor_text = last_event_id or query.get("cursor", [""])[-1]
        return cls(parse_cursor(cursor_text, view), order, int(limit_text), cursor_text)


def parse_cursor(text: str, view: ReadView) -> Key | None:
    if text == "":
        return None
    if text == "now":
        return (view.token_limit() - 1, 1 << 40)
    if text.isdigit() and int(text) < 1 << 63:
        return (int(text), 0)
    match = _EFFECT_CURSOR.match(text)
    if match and int(match.group(1)) < 1 << 63:
        return (int(match.group(1)), int(match.group(2)))
    raise BadQuery("cursor", "cursor: must be a paging token")


@dataclass
class Collection:
    """One collection route: where its links point, and its records in token order."""

    path: str
    link_query: str  # extra parameters kept in the page's links, e.g. "include_failed=true&"
    items: Callable[[], list[Any]]
    key: Callable[[Any], Key]
    render: Callable[[Any], dict]

    def page(self, view: ReadView, paging: Paging) -> list[dict]:
        with view.chain.lock:
            items = self.items()
            keys = [self.key(item) for item in items]
            cap = bisect.bisect_left(keys, (view.token_limit(), 0))
            cursor = paging.cursor
            if paging.order == "asc":
                start = 0 if cursor is None else bisect.bisect_right(keys, cursor, hi=cap)
                chosen = items[start : min(cap, start + paging.limit)]
            else:
                end = cap if cursor is None else bisect.bisect_left(keys, cursor, hi=cap)
                chosen = items[max(0, end - paging.limit) : end][::-1]
            return [self.render(item) for item in chosen]

    def document(self, base: str, paging: Paging, records: list[dict]) -> dict:
        here = f"{base}{self.path}?{self.link_query}"
        cursor_text = paging.cursor_text
        first = records[0]["paging_token"] if records else cursor_text
        last = records[-1]["paging_token"] if records else cursor_text
        reverse = "desc" if paging.order == "asc" else "asc"
        return views.page(
            f"{here}cursor={cursor_text}&limit={paging.limit}&order={paging.order}",
            f"{here}cursor={last}&limit={paging.limit}&order={paging.order}",
            f"{here}cursor={first}&limit={paging.limit}&order={reverse}",
            records,
        )
