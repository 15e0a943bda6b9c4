"""A period's calculation: every node of the snapshot gets exactly one receipt.

Pure: no database, HTTP or Celery. The caller records the result.
"""

from __future__ import annotations

import gc
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from payouts.calculation import units
from payouts.calculation.columns import EventColumns, measure_uptime_columns
from payouts.calculation.receipts import minting_receipt_bytes, receipt_hash
from payouts.calculation.rewards import (
    CERTIFIED_MIN_PERMILLE,
    DIY_MIN_PERMILLE,
    RewardOverflow,
    base_musd,
    node_reward,
    scales_with_uptime,
    uptime_permille,
)
from payouts.calculation.uptime import NARROW_LIMIT, UptimeMeasurement, Window, measure_uptime
from payouts.periods import PERIOD_LENGTH_S, Period
from payouts.snapshot.load import EventsNotGrouped, LoadedSnapshot
from payouts.snapshot.schema import (
    I64_MAX,
    U16_MAX,
    U32_MAX,
    U64_MAX,
    U128_MAX,
    Farm,
    FarmingPolicy,
    Node,
    PowerAtStart,
    Twin,
)
from payouts.snapshot.stream import StreamedSnapshot
from payouts.strkey import is_valid_public_key

GIB = units.GIB
#: minting_v3 writes this price into every receipt, whatever the node's connection price
RECEIPT_CONNECTION_PRICE_MUSD = 80
_INVALID_PREFIX = "invalid record: "


class Eligibility(StrEnum):
    OK = "ok"
    VIOLATION = "violation"
    BELOW_SLA = "below_sla"
    NO_UPTIME = "no_uptime"
    VIRTUALIZED = "virtualized"
    INVALID_RECORD = "invalid_record"
    OPTED_OUT = "opted_out"
    NO_ADDRESS = "no_address"
    INVALID_ADDRESS = "invalid_address"


#: words for farmers, per violation
VIOLATION_WORDS = {
    "UptimeTooHigh": "an uptime report increased faster than time passed",
    "UptimeTooLow": "an uptime report increased less than time passed without a reboot",
    "ClockSkew": "the node's clock drifted (boot time moved by 2 minutes or more)",
    "InvalidReboot": "an uptime report went back without a valid reboot",
    "BootRequestExpired": "the node did not wake up in time after farmerbot requests (more than one boot failure)",
    "MissingTwin": "the node's twin does not exist",
    "MissingRelay": "the node's twin has no relay",
    "InvalidPublicKey": "the node's twin public key is not 33 bytes of hex",
}


@dataclass(frozen=True, slots=True)
class NodeReceipt:
    node_id: int
    farm_id: int
    twin_id: int
    farm_name: str
    farming_policy_id: int
    node_type: str  # "DIY" or "CERTIFIED"
    measured_uptime_s: int
    uptime_permille: int
    violation: str | None
    eligibility: str
    reason: str  # plain words for the farmer; "" when ok
    reward_musd: int
    reward_tft_units: int
    stellar_payout_address: str
    cu_pm: int
    su_pm: int
    nu_pm: int
    receipt_bytes: bytes
    receipt_hash: str
    #: the node's connection price (mUSD per TFT) the reward was converted at: the reference
    #: price of the entry for the revenue model (the receipt itself always says 80, as minting did)
    connection_price_musd: int | None = None


@dataclass
class CalculationReport:
    by_eligibility: dict[str, int] = field(default_factory=dict)
    invalid_records: dict[int, str] = field(default_factory=dict)  # node id -> reason
    quirk_policy_ids: list[int] = field(default_factory=list)
    duplicate_events_dropped: int = 0
    unknown_node_events: int = 0
    unknown_node_ids: list[int] = field(default_factory=list)
    uptime_events: int = 0
    power_events: int = 0
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Totals:
    musd: int
    tft: int  # TFT units
    nodes: int
    rewarded_nodes: int


@dataclass
class PeriodCalculation:
    period: Period
    snapshot_sha256: str
    network: str
    receipts: list[NodeReceipt]
    report: CalculationReport

    @property
    def totals(self) -> Totals:
        return Totals(
            musd=sum(r.reward_musd for r in self.receipts),
            tft=sum(r.reward_tft_units for r in self.receipts),
            nodes=len(self.receipts),
            rewarded_nodes=sum(1 for r in self.receipts if r.reward_tft_units > 0),
        )


#: a node record's fields and their chain types (see MINTING.md)
_NODE_WIDTHS: tuple[tuple[str, str, int], ...] = (
    ("resources", "cru", U64_MAX),
    ("resources", "mru", U64_MAX),
    ("resources", "sru", U64_MAX),
    ("resources", "hru", U64_MAX),
    ("", "connection_price", U32_MAX),
    ("", "created", U64_MAX),
    ("consumption", "nru", U64_MAX),
    ("consumption", "ip_seconds", U64_MAX),
    ("consumption", "cru_seconds", U128_MAX),
    ("consumption", "mru_seconds", U128_MAX),
    ("consumption", "sru_seconds", U128_MAX),
    ("consumption", "hru_seconds", U128_MAX),
)
_POLICY_WIDTHS = (("cu", U32_MAX), ("su", U32_MAX), ("nu", U32_MAX), ("ipv4", U32_MAX), ("minimal_uptime", U16_MAX))
_TYPE_NAMES = {U16_MAX: "u16", U32_MAX: "u32", U64_MAX: "u64", U128_MAX: "u128"}


def _outside(field_name: str, value: int, limit: int) -> str:
    return f"{field_name} is {value}, outside the chain's {_TYPE_NAMES[limit]} (0..{limit})"


def _odd_values(
    node: Node,
    policies: dict[int, FarmingPolicy],
    farms: dict[int, Farm],
    power: PowerAtStart | None,
    id_count: int,
) -> str | None:
    """The first well-typed but impossible value of a node record, in words; None if fine.

    A twin missing from the snapshot is not one: minting records MissingTwin for a node with
    uptime and keeps its real units (see the uptime machine's end-of-period checks)."""
    if id_count > 1:
        return f"node id {node.node_id} appears {id_count} times in the snapshot"
    if node.farm_id not in farms:
        return f"farm {node.farm_id} is not in the snapshot"
    policy = policies.get(node.farming_policy_id)
    if policy is None:
        return f"farming policy {node.farming_policy_id} is not in the snapshot"
    for group, name, limit in _NODE_WIDTHS:
        value = getattr(getattr(node, group), name) if group else getattr(node, name)
        if not 0 <= value <= limit:
            return _outside(f"{group}.{name}" if group else name, value, limit)
    for name, limit in _POLICY_WIDTHS:
        value = getattr(policy, name)
        if not 0 <= value <= limit:
            return _outside(f"farming policy {policy.id}'s {name}", value, limit)
    if power is not None and power.down_since is not None and not 0 <= power.down_since <= U64_MAX:
        return _outside("power_at_start.down_since", power.down_since, U64_MAX)
    if node.resources.mru < GIB:
        return f"resources.mru is {node.resources.mru} bytes, below 1 GiB"
    if node.connection_price == 0:
        return "connection_price is 0 mUSD, must be positive"
    return None


def _cloud_units(node: Node) -> tuple[int, int, int]:
    """(cu, su, nu) in millionths; RewardOverflow where minting's `as u64` would truncate."""
    resources = node.resources
    cu = units.cu_pm(resources.cru, resources.mru, resources.sru)
    su = units.su_pm(resources.hru, resources.sru)
    nu = units.nu_pm(node.consumption.nru)
    for name, value in (("cu", cu), ("su", su), ("nu", nu)):
        if value > U64_MAX:
            raise RewardOverflow(f"{name} beyond u64")
    return cu, su, nu


def _utilization(used_seconds: int, total: int) -> float:
    """minting's `((r_seconds / D) as u64) as f64 * 100. / total as f64` (the cast truncates
    to 64 bits)."""
    if total <= 0:
        return 0.0
    return float((used_seconds // PERIOD_LENGTH_S) & U64_MAX) * 100.0 / float(total)


def _measure_all(
    snapshot: LoadedSnapshot,
    period: Period,
    nodes: dict[int, Node],
    power: dict[int, PowerAtStart],
    twins: dict[int, Twin],
    progress: Callable[[int], None] | None,
    columns: bool = True,
) -> dict[int, UptimeMeasurement]:
    wake_at_start_ts = snapshot.wake_at_start_ts

    def run(buffered: bool) -> dict[int, UptimeMeasurement]:
        results: dict[int, UptimeMeasurement] = {}
        for done, (node_id, events, window) in enumerate(snapshot.iter_node_windows(buffered=buffered), 1):
            node = nodes[node_id]
            at_start = power.get(node_id)
            results[node_id] = measure_uptime(
                events,
                period=period,
                power_at_start=at_start,
                twin=twins.get(node.twin_id),
                window=window,
                wake_at_start_ts=wake_at_start_ts,
                # (the loader's stats are renewed when its pass starts: read them per node)
                wide=node_id in snapshot.stats.wide_nodes or _wide_sleep_mark(at_start),
            )
            if progress is not None and done % 256 == 0:
                progress(done)
        return results

    def run_columns(snapshot: StreamedSnapshot) -> dict[int, UptimeMeasurement]:
        results: dict[int, UptimeMeasurement] = {}
        for done, (node_id, read) in enumerate(snapshot.iter_node_columns(), 1):
            node = nodes[node_id]
            at_start = power.get(node_id)
            twin = twins.get(node.twin_id)
            wide = node_id in snapshot.stats.wide_nodes or _wide_sleep_mark(at_start)
            if isinstance(read, EventColumns) and not wide:
                results[node_id] = measure_uptime_columns(
                    read, period=period, power_at_start=at_start, twin=twin, wake_at_start_ts=wake_at_start_ts
                )
            else:
                events, split = (read.events(), read.split) if isinstance(read, EventColumns) else read
                results[node_id] = measure_uptime(
                    events,
                    period=period,
                    power_at_start=at_start,
                    twin=twin,
                    window=Window(0, split, len(events)),
                    wake_at_start_ts=wake_at_start_ts,
                    wide=wide,
                )
            if progress is not None and done % 256 == 0:
                progress(done)
        return results

    # Millions of short-lived event tuples would trigger the cyclic garbage collector over and
    # over for nothing (they hold no cycles); pause it for the pass.
    collecting = gc.isenabled()
    gc.disable()
    try:
        if columns and isinstance(snapshot, StreamedSnapshot):
            measured = snapshot.measured_in_load()
            if measured is None:
                return run_columns(snapshot)
            if progress is not None:
                for done in range(256, len(measured) + 1, 256):
                    progress(done)
            return measured
        try:
            return run(buffered=False)
        except EventsNotGrouped:
            return run(buffered=True)
    finally:
        if collecting:
            gc.enable()


def _wide_sleep_mark(power: PowerAtStart | None) -> bool:
    return power is not None and power.down_since is not None and power.down_since >= NARROW_LIMIT


def calculate_period(
    snapshot: LoadedSnapshot,
    *,
    progress: Callable[[int], None] | None = None,
    opted_out_since: dict[int, int] | None = None,
    columns: bool = True,
) -> PeriodCalculation:
    """Every node's receipt for the snapshot's period. `progress(n)` reports nodes measured;
    `opted_out_since` maps node id -> time it moved to the revenue model. A `/2` snapshot is
    measured from event columns (`columns.py`) unless `columns` is False (then event by event:
    the results are identical)."""
    header = snapshot.header
    period = Period(header.period_offset)
    policies: dict[int, FarmingPolicy] = {p.id: p for p in header.farming_policies}
    farms: dict[int, Farm] = {f.farm_id: f for f in header.farms}
    twins: dict[int, Twin] = {t.twin_id: t for t in header.twins}
    id_counts = Counter(n.node_id for n in header.nodes)
    nodes: dict[int, Node] = {}
    for node in header.nodes:
        nodes.setdefault(node.node_id, node)  # a duplicate id is invalid; keep the first
    power: dict[int, PowerAtStart] = {p.node_id: p for p in header.power_at_start}
    opted_out_since = opted_out_since or {}

    measurements = _measure_all(snapshot, period, nodes, power, twins, progress, columns)
    stats = snapshot.stats
    report = CalculationReport(
        duplicate_events_dropped=stats.duplicates_dropped,
        unknown_node_events=stats.unknown_node_events,
        unknown_node_ids=sorted(stats.unknown_node_ids),
        uptime_events=stats.uptime_events,
        power_events=stats.power_events,
        notes=list(header.notes),
    )
    no_events = UptimeMeasurement(0, None, 0, False)
    receipts: list[NodeReceipt] = []
    quirks: set[int] = set()
    for node_id in sorted(nodes):
        node = nodes[node_id]
        measurement = measurements.get(node_id)
        at_start = power.get(node_id)
        if measurement is None:
            measurement = (
                measure_uptime(
                    [],
                    period=period,
                    power_at_start=at_start,
                    twin=twins.get(node.twin_id),
                    wake_at_start_ts=snapshot.wake_at_start_ts,
                    wide=_wide_sleep_mark(at_start),
                )
                if at_start is not None
                else no_events
            )
        odd = _odd_values(node, policies, farms, at_start, id_counts[node_id])
        if odd is None and node_id in stats.invalid_event_nodes:
            odd = f"an event is out of range ({stats.invalid_event_nodes[node_id]})"
        receipt = _receipt(node, period, measurement, policies, farms, odd, opted_out_since.get(node_id))
        if receipt.eligibility == Eligibility.INVALID_RECORD:
            report.invalid_records[node_id] = receipt.reason.removeprefix(_INVALID_PREFIX)
        policy = policies.get(node.farming_policy_id)
        if policy is not None and not scales_with_uptime(policy):
            quirks.add(policy.id)
        receipts.append(receipt)
    if progress is not None:
        progress(len(nodes))
    report.quirk_policy_ids = sorted(quirks)
    report.by_eligibility = dict(sorted(Counter(r.eligibility for r in receipts).items()))
    return PeriodCalculation(period, snapshot.sha256, header.network, receipts, report)


def _receipt(
    node: Node,
    period: Period,
    measurement: UptimeMeasurement,
    policies: dict[int, FarmingPolicy],
    farms: dict[int, Farm],
    odd: str | None,
    opted_out_ts: int | None,
) -> NodeReceipt:
    resources, consumption = node.resources, node.consumption
    policy = policies.get(node.farming_policy_id)
    farm = farms.get(node.farm_id)
    address = farm.stellar_address if farm is not None else ""
    certified = node.certification == "Certified"
    permille = uptime_permille(measurement.measured_uptime_s)

    cu = su = nu = 0
    if odd is None:
        try:
            cu, su, nu = _cloud_units(node)
        except RewardOverflow as exc:
            odd = str(exc)
    musd = tft_units = 0
    eligibility, reason = Eligibility.OK, ""
    if odd is None:
        eligibility, reason, musd, tft_units = _reward(
            node, measurement, policy, cu, su, nu, permille, certified, address, opted_out_ts, period
        )
        if eligibility == Eligibility.INVALID_RECORD:
            odd = reason
    if odd is not None:
        cu = su = nu = 0
        eligibility, reason = Eligibility.INVALID_RECORD, f"{_INVALID_PREFIX}{odd}"

    farm_name = farm.name if farm is not None else ""
    node_type = "CERTIFIED" if certified else "DIY"
    valid = odd is None
    document = {
        "period": {"start": period.start_ts, "end": period.end_ts},
        "node_id": node.node_id,
        "twin_id": node.twin_id,
        "farm_id": node.farm_id,
        "farm_name": farm_name,
        "stellar_payout_address": address,
        "measured_uptime": measurement.measured_uptime_s,
        "tft_connection_price": RECEIPT_CONNECTION_PRICE_MUSD,
        "cloud_units": {"cu": cu / 1e6, "su": su / 1e6, "nu": nu / 1e6},
        # minting's f64 conversions, in its order: (value as f64) / (GIB as f64), ...
        "resource_units": (
            {
                "cru": float(resources.cru),
                "mru": float(resources.mru) / float(GIB),
                "hru": float(resources.hru) / float(GIB),
                "sru": float(resources.sru) / float(GIB),
            }
            if valid
            else {"cru": 0.0, "mru": 0.0, "hru": 0.0, "sru": 0.0}
        ),
        "resource_utilization": (
            {
                "cru": _utilization(consumption.cru_seconds, resources.cru),
                "mru": _utilization(consumption.mru_seconds, resources.mru),
                "hru": _utilization(consumption.hru_seconds, resources.hru),
                "sru": _utilization(consumption.sru_seconds, resources.sru),
                "ip": float(consumption.ip_seconds) / 3600.0,
            }
            if valid
            else {"cru": 0.0, "mru": 0.0, "hru": 0.0, "sru": 0.0, "ip": 0.0}
        ),
        "reward": {"musd": musd, "tft": tft_units},
        "carbon_offset": None,
        "node_type": node_type,
        "farming_policy_id": node.farming_policy_id,
        "resource_rewards": (
            {"cu": policy.cu, "su": policy.su, "nu": policy.nu, "ipv4": policy.ipv4}
            if policy is not None
            else {"cu": 0, "su": 0, "nu": 0, "ipv4": 0}
        ),
    }
    data = minting_receipt_bytes(document)
    return NodeReceipt(
        node_id=node.node_id,
        farm_id=node.farm_id,
        twin_id=node.twin_id,
        farm_name=farm_name,
        farming_policy_id=node.farming_policy_id,
        node_type=node_type,
        measured_uptime_s=measurement.measured_uptime_s,
        uptime_permille=permille,
        violation=measurement.violation,
        eligibility=str(eligibility),
        reason=reason,
        reward_musd=musd,
        reward_tft_units=tft_units,
        stellar_payout_address=address,
        cu_pm=cu,
        su_pm=su,
        nu_pm=nu,
        receipt_bytes=data,
        receipt_hash=receipt_hash(data),
        # a price outside the chain's u32 is an invalid record: no reference price
        connection_price_musd=node.connection_price if 0 < node.connection_price <= U32_MAX else None,
    )


def _reward(
    node: Node,
    measurement: UptimeMeasurement,
    policy: FarmingPolicy | None,
    cu: int,
    su: int,
    nu: int,
    permille: int,
    certified: bool,
    address: str,
    opted_out_ts: int | None,
    period: Period,
) -> tuple[Eligibility, str, int, int]:
    """(eligibility, reason, reward mUSD, reward TFT units) of a valid node record."""
    if opted_out_ts is not None and opted_out_ts <= period.end_ts:
        return Eligibility.OPTED_OUT, "the node moved to the revenue model (v4)", 0, 0
    if node.virtualized:
        return Eligibility.VIRTUALIZED, "virtualized nodes are not rewarded", 0, 0
    if measurement.violation is not None:
        words = VIOLATION_WORDS.get(measurement.violation, measurement.violation)
        return Eligibility.VIOLATION, f"violation {measurement.violation}: {words}", 0, 0
    if not measurement.has_report:
        return Eligibility.NO_UPTIME, "no uptime report in the period", 0, 0
    assert policy is not None  # a node on an unknown policy is an invalid record
    try:
        if measurement.measured_uptime_s * 1000 > U64_MAX:
            raise RewardOverflow("measured uptime x 1000")
        full = base_musd(cu, su, nu, node.consumption.ip_seconds, policy)
        reward = node_reward(
            musd=full,
            connection_price_musd=node.connection_price,
            permille=permille,
            certified=certified,
            policy=policy,
        )
    except RewardOverflow as exc:
        return Eligibility.INVALID_RECORD, str(exc), 0, 0
    musd, tft_units = reward.musd, reward.tft_units
    if tft_units > I64_MAX:
        # a Stellar payment carries at most 2^63 - 1 units: minting could not pay it either
        return (
            Eligibility.INVALID_RECORD,
            f"reward of {tft_units} TFT units is beyond the largest Stellar payment (2^63 - 1 units)",
            0,
            0,
        )
    if musd == 0 and tft_units == 0 and full > 0:
        if scales_with_uptime(policy):
            minimum = CERTIFIED_MIN_PERMILLE if certified else DIY_MIN_PERMILLE
            kind = "Certified" if certified else "DIY"
            reason = f"uptime {permille / 10:.1f} % is below the {minimum / 10:g} % {kind} minimum"
        else:
            reason = (
                f"uptime {permille / 10:.1f} % is below policy {policy.id}'s "
                f"minimum of {policy.minimal_uptime} permille"
            )
        return Eligibility.BELOW_SLA, reason, 0, 0
    if tft_units > 0 and not address:
        return Eligibility.NO_ADDRESS, "no payout address set on the farm", musd, tft_units
    if tft_units > 0 and not is_valid_public_key(address):
        return (
            Eligibility.INVALID_ADDRESS,
            "the farm's payout address is not a valid Stellar address",
            musd,
            tft_units,
        )
    return Eligibility.OK, "", musd, tft_units
