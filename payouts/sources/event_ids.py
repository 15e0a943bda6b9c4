"""Where an event sits on the chain, from its id in TFChain's indexer.

The indexer (a Subsquid squid) stores each event-made record under the id Subsquid gave the
event. Two layouts have been used, both starting with the block height padded to 10 digits, so
string order is chain order:

- `0001234567-000012-ab3f9` — height, the event's index in the block (6 digits), the first five
  hex digits of the block hash (substrate-processor up to its FireSquid releases, which
  tfchain_graphql's processor uses);
- `0001234567-ab3f9-000012` — height, hash prefix, index (ArrowSquid, `formatId(block, index)`).

Anything else is refused: a record whose id does not say where it is cannot be placed.
"""

from __future__ import annotations

import re

_FIRESQUID = re.compile(r"([0-9]{10})-([0-9]{6})-([0-9a-f]{5})")
_ARROWSQUID = re.compile(r"([0-9]{10})-([0-9a-f]{5})-([0-9]{6})")


def event_position(event_id: str) -> tuple[int, int] | None:
    """(block height, event index in the block), or None for an id of neither layout."""
    match = _FIRESQUID.fullmatch(event_id)
    if match is not None:
        return int(match[1]), int(match[2])
    match = _ARROWSQUID.fullmatch(event_id)
    if match is not None:
        return int(match[1]), int(match[3])
    return None
