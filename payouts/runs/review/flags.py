"""Flags an approver must look at: a month identical to the previous one, every payout address
new, nodes and farms far above their previous months, and the hardware plausibility bounds and
review caps a run exceeds (those must be accepted in the signed manifest)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import orjson

from payouts.ledger.models import Receipt, Run
from payouts.runs.exceedances import Exceedance


@dataclass(frozen=True)
class ReviewLimits:
    """Caps in TFT units (None: that cap is off), the outlier factor and how many previous
    months it compares with, and what one server can hold (cores; memory, SSD, HDD in GiB)."""

    cap_node_tft_units: int | None = None
    cap_farm_tft_units: int | None = None
    cap_run_tft_units: int | None = None
    outlier_factor: int = 3
    outlier_months: int = 3
    max_cores: int = 1024
    max_memory_gib: int = 24 * 1024
    max_ssd_gib: int = 1024 * 1024
    max_hdd_gib: int = 4 * 1024 * 1024


@dataclass(frozen=True)
class Outlier:
    scope: str  # "node" or "farm"
    key: int
    current_tft_units: int
    #: the highest amount of the previous months compared with
    previous_max_tft_units: int
    factor: int


def sums_by(receipts: Sequence[Receipt], key: str) -> dict[int, int]:
    sums: dict[int, int] = defaultdict(int)
    for r in receipts:
        sums[getattr(r, key)] += r.reward_tft_units
    return sums


def identical_to_previous(receipts: Sequence[Receipt], previous: Sequence[Receipt]) -> bool:
    """Every node with the same uptime and reward as the month before (a stale snapshot?)."""
    if not receipts or not previous:
        return False

    def shape(rows: Sequence[Receipt]) -> list[tuple[int, int, int]]:
        return sorted((r.node_id, r.measured_uptime_s, r.reward_tft_units) for r in rows)

    return shape(receipts) == shape(previous)


def all_addresses_new(receipts: Sequence[Receipt], previous: Sequence[Receipt]) -> bool:
    """Not one payout address of this month was paid to the month before (a swapped source?)."""
    now = {r.stellar_payout_address for r in receipts if r.stellar_payout_address}
    before = {r.stellar_payout_address for r in previous if r.stellar_payout_address}
    return bool(now) and bool(before) and not (now & before)


def outliers(receipts: Sequence[Receipt], history: Sequence[Sequence[Receipt]], factor: int) -> list[Outlier]:
    """Nodes and farms paid more than `factor` times their highest previous month (ones paid
    nothing before are new, not outliers)."""
    found: list[Outlier] = []
    for scope, key in (("node", "node_id"), ("farm", "farm_id")):
        highest: dict[int, int] = defaultdict(int)
        for month in history:
            for k, amount in sums_by(month, key).items():
                highest[k] = max(highest[k], amount)
        for k, amount in sorted(sums_by(receipts, key).items()):
            if highest.get(k, 0) > 0 and amount > factor * highest[k]:
                found.append(Outlier(scope, k, amount, highest[k], factor))
    return found


_GIB_FIELDS = (
    ("mru", "memory_gib", "max_memory_gib"),
    ("sru", "ssd_gib", "max_ssd_gib"),
    ("hru", "hdd_gib", "max_hdd_gib"),
)


def implausible_resources(receipts: Sequence[Receipt], limits: ReviewLimits) -> list[Exceedance]:
    """Paid nodes claiming more than one server holds (cores, memory, disks), from the receipts'
    own bytes (`resource_units`: cru a count, the others in GiB)."""
    found: list[Exceedance] = []
    for r in receipts:
        if r.reward_tft_units <= 0:
            continue  # an unpaid node moves no money
        units = orjson.loads(bytes(r.receipt_bytes)).get("resource_units", {})
        cores = int(units.get("cru", 0))
        if cores > limits.max_cores:
            found.append(Exceedance("cores", r.node_id, cores, limits.max_cores))
        for name, kind, bound in _GIB_FIELDS:
            gib = int(units.get(name, 0))
            if gib > getattr(limits, bound):
                found.append(Exceedance(kind, r.node_id, gib, getattr(limits, bound)))
    return found


def cap_exceedances(
    run: Run, receipts: Sequence[Receipt], manifest_total: int, limits: ReviewLimits
) -> list[Exceedance]:
    found: list[Exceedance] = []
    if limits.cap_node_tft_units is not None:
        found += [
            Exceedance("node_cap", r.node_id, r.reward_tft_units, limits.cap_node_tft_units)
            for r in receipts
            if r.reward_tft_units > limits.cap_node_tft_units
        ]
    if limits.cap_farm_tft_units is not None:
        found += [
            Exceedance("farm_cap", farm_id, amount, limits.cap_farm_tft_units)
            for farm_id, amount in sorted(sums_by(receipts, "farm_id").items())
            if amount > limits.cap_farm_tft_units
        ]
    # the run cap is on what is signed: receipts, retries and corrections
    if limits.cap_run_tft_units is not None and manifest_total > limits.cap_run_tft_units:
        found.append(Exceedance("run_cap", None, manifest_total, limits.cap_run_tft_units))
    return found
