"""The `tfgrid-snapshot/1` input contract (shared spec, section 3).

The header (everything but the two event arrays) is validated with strict pydantic models:
a wrong JSON type, a missing key or an unknown key refuses the whole file. Well-typed but odd
values (negative resources, unknown farm, price 0, ...) pass here and zero only that node later.

Events are far too many for models (a month of today's grid is millions of uptime reports), so
they travel as plain tuples ``(timestamp, kind, value)``:

- ``kind == EVENT_POWER_TARGET``: ``value`` is True for "Up", False for "Down"
- ``kind == EVENT_POWER_STATE``:  ``value`` is True for "Up", False for "Down"
- ``kind == EVENT_UPTIME``:       ``value`` is the reported uptime in seconds (int)

A node's event list is in processing order: by timestamp, a power event before an uptime
report of the same second, otherwise file order.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from payouts.periods import LAST_OFFSET

FORMAT_TAG = "tfgrid-snapshot/1"
FORMAT_2_TAG = "tfgrid-snapshot/2"

# The chain's integer widths (see payouts/calculation/MINTING.md). Values are read as Python
# ints of any size; a value outside its chain type makes only its node `invalid_record`,
# except identifiers, which name the node's receipt and so are checked with the file.
U16_MAX = 2**16 - 1
U32_MAX = 2**32 - 1
U64_MAX = 2**64 - 1
U128_MAX = 2**128 - 1
I64_MAX = 2**63 - 1
#: uptimes below this cannot make minting's i64 arithmetic wrap (see calculation/uptime.py)
NARROW_EVENT_LIMIT = 2**62

#: node, farm, twin and policy ids are u32 on the chain
ChainId = Annotated[int, Field(ge=0, le=U32_MAX)]
#: a period this program can date (its bounds are shown as UTC datetimes)
PeriodOffset = Annotated[int, Field(ge=0, le=LAST_OFFSET)]


def _utf8(text: str) -> str:
    """JSON's `\\ud800` escapes decode to lone surrogates, which no UTF-8 receipt can hold, and
    `\\u0000` to NUL, which PostgreSQL's text columns refuse."""
    if "\x00" in text:
        raise PydanticCustomError("nul_character", "text holds a NUL character (\\u0000)")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        char = ascii(exc.object[exc.start : exc.end])
        raise PydanticCustomError(
            "lone_surrogate", "text holds {char}, which is not a character", {"char": char}
        ) from None
    return text


#: a string of the file: text that UTF-8 can hold (receipts, the ledger and exports are UTF-8)
Text = Annotated[str, AfterValidator(_utf8)]

EVENT_POWER_TARGET = 0
EVENT_POWER_STATE = 1
EVENT_UPTIME = 2

Event = tuple[int, int, int | bool]

Network = Literal["main", "test", "dev"]
NodeCertification = Literal["Diy", "Certified"]
FarmCertification = Literal["NotCertified", "Gold"]
PowerWord = Literal["Up", "Down"]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


class FarmingPolicy(_Strict):
    id: ChainId
    name: Text
    cu: int  # mUSD per CU per period
    su: int  # mUSD per SU per period
    nu: int  # mUSD per NU (GiB of public traffic)
    ipv4: int  # mUSD per public IP per hour
    minimal_uptime: int  # percent
    immutable: bool
    default: bool
    node_certification: NodeCertification
    farm_certification: FarmCertification


class Farm(_Strict):
    farm_id: ChainId
    name: Text
    twin_id: ChainId
    certification: FarmCertification
    stellar_address: Text  # as set at period end; "" when unset


class Twin(_Strict):
    twin_id: ChainId
    relay: Text | None
    pk: Text | None  # hex, or null


class Resources(_Strict):
    cru: int  # cores
    mru: int  # bytes
    sru: int  # bytes
    hru: int  # bytes


class Consumption(_Strict):
    nru: int  # bytes of public traffic over the period
    ip_seconds: int  # public IPs x seconds reserved
    cru_seconds: int
    mru_seconds: int
    sru_seconds: int
    hru_seconds: int


class Node(_Strict):
    node_id: ChainId
    farm_id: ChainId
    twin_id: ChainId
    resources: Resources
    certification: NodeCertification
    farming_policy_id: ChainId
    connection_price: int  # mUSD per TFT, normally 80
    virtualized: bool
    created: int  # unix seconds
    consumption: Consumption


class PowerAtStart(_Strict):
    node_id: ChainId
    state: PowerWord
    down_since: int | None  # null on a Down node means START
    target: PowerWord


class SnapshotHeader(_Strict):
    """Everything in a snapshot except `uptime_events` and `power_events` (for `/2`: the header
    line with the node records of the node lines)."""

    format: Literal["tfgrid-snapshot/1", "tfgrid-snapshot/2"]
    network: Network
    period_offset: PeriodOffset
    farming_policies: list[FarmingPolicy]
    farms: list[Farm]
    twins: list[Twin]
    nodes: list[Node]
    power_at_start: list[PowerAtStart]
    notes: list[Text] = []
    source: dict = {}


#: Keys that hold events: streamed, validated record by record, never modelled.
EVENT_ARRAY_KEYS = ("uptime_events", "power_events")
REQUIRED_KEYS = (
    "format",
    "network",
    "period_offset",
    "farming_policies",
    "farms",
    "twins",
    "nodes",
    "uptime_events",
    "power_events",
    "power_at_start",
)
OPTIONAL_KEYS = ("notes", "source")
