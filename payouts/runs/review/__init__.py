"""The review an approver reads before approving a run (SPEC section 7): what is signed (the
manifest's sections), approvals so far, balances against what is due, the period, and the flags
and exceedances to look at. One job per module: `sections`, `flags`, `balances`; this module
puts them together."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import orjson
from sqlmodel import Session

from payouts.ledger import repository
from payouts.ledger.models import Receipt, Run
from payouts.ledger.repository import id_of
from payouts.periods import Period
from payouts.runs.approvals import build_manifest, valid_approvals
from payouts.runs.claimable import describe_policy
from payouts.runs.exceedances import Exceedance, accepted, uncovered
from payouts.runs.review.balances import AccountLookup, Balance, read_balances
from payouts.runs.review.flags import (
    Outlier,
    ReviewLimits,
    all_addresses_new,
    cap_exceedances,
    identical_to_previous,
    implausible_resources,
    outliers,
)
from payouts.runs.review.sections import Section, manifest_sections

__all__ = ["Review", "ReviewLimits", "build_review"]

HELD_FOR_ADDRESS = ("no_address", "invalid_address")
TOP_CHANGES = 10


@dataclass(frozen=True)
class Change:
    key: int  # farm id or node id
    label: str
    previous_tft_units: int
    current_tft_units: int

    @property
    def delta_tft_units(self) -> int:
        return self.current_tft_units - self.previous_tft_units


@dataclass(frozen=True)
class AddressChange:
    farm_id: int
    farm_name: str
    previous_address: str | None  # None: the farm was not in the previous run
    current_address: str


@dataclass(frozen=True)
class CapBreach:
    scope: str  # "node", "farm" or "run"
    key: int | None
    amount_tft_units: int
    cap_tft_units: int


@dataclass
class Review:
    run_id: int
    period: str
    status: str
    snapshot_sha256: str
    code_version: str
    previous_run_id: int | None
    total_musd: int
    total_tft_units: int
    payable_tft_units: int
    previous_total_tft_units: int | None
    nodes: int
    previous_nodes: int | None
    by_eligibility: dict[str, int]
    previous_by_eligibility: dict[str, int]
    violations: dict[str, int]
    held_for_address: list[dict]
    farm_changes: list[Change]
    node_changes: list[Change]
    address_changes: list[AddressChange]
    quirk_policy_ids: list[int]
    invalid_records: list[dict]
    cap_breaches: list[CapBreach]
    notes: list[str] = field(default_factory=list)
    #: a sandbox rehearsal, calculated before its period's inputs were complete
    rehearsal: bool = False
    #: the period by name and its bounds (ISO 8601, UTC)
    period_month: str = ""
    period_start: str = ""
    period_end: str = ""
    #: what the approvers sign, and the same payments by kind (the sections add up to it)
    manifest_sha256: str = ""
    manifest_payment_count: int = 0
    manifest_total_tft_units: int = 0
    sections: list[Section] = field(default_factory=list)
    #: approvals so far: approver, when (ISO 8601, UTC), and whether it counts for this manifest
    approvals: list[dict] = field(default_factory=list)
    balances: list[Balance] = field(default_factory=list)
    identical_to_previous: bool = False
    all_addresses_new: bool = False
    outliers: list[Outlier] = field(default_factory=list)
    outlier_factor: int = 0
    #: caps and hardware bounds exceeded; approval needs each accepted in the manifest
    exceedances: list[Exceedance] = field(default_factory=list)
    accepted_exceedances: dict | None = None
    unaccepted_exceedances: list[Exceedance] = field(default_factory=list)
    #: the claimable-balance policy as the manifest records it (None: not in the manifest, so a
    #: destination without a TFT trustline is held), its reclaim window in days, and in words
    claimable_policy: dict | None = None
    claimable_reclaim_after_days: int | None = None
    claimable_policy_text: str = ""

    def to_document(self) -> dict:
        document = asdict(self)
        for key in ("farm_changes", "node_changes"):
            for row, change in zip(document[key], getattr(self, key), strict=True):
                row["delta_tft_units"] = change.delta_tft_units
        return document


def _sum_by(receipts: Sequence[Receipt], key: str) -> dict[int, int]:
    sums: dict[int, int] = defaultdict(int)
    for r in receipts:
        sums[getattr(r, key)] += r.reward_tft_units
    return sums


def _largest_changes(current: dict[int, int], previous: dict[int, int], labels: dict[int, str]) -> list[Change]:
    changes = [
        Change(key, labels.get(key, ""), previous.get(key, 0), current.get(key, 0))
        for key in current.keys() | previous.keys()
    ]
    changes = [c for c in changes if c.delta_tft_units != 0]
    changes.sort(key=lambda c: (-abs(c.delta_tft_units), c.key))
    return changes[:TOP_CHANGES]


def build_review(
    session: Session,
    run: Run,
    *,
    cap_node_tft_units: int | None = None,
    cap_farm_tft_units: int | None = None,
    cap_run_tft_units: int | None = None,
    limits: ReviewLimits | None = None,
    approvers: Sequence[str] = (),
    lookup: AccountLookup | None = None,
    accounts: Sequence[tuple[str, str | None]] = (),
    asset: tuple[str, str] | None = None,
) -> Review:
    """The review of `run`. `limits` (caps, outlier factor, hardware bounds) default to the
    cap keywords; `lookup` reads an account from Horizon for the balances of `accounts`
    ((role, account id) pairs) in `asset` (code, issuer); any failure there says unavailable."""
    if limits is None:
        limits = ReviewLimits(cap_node_tft_units, cap_farm_tft_units, cap_run_tft_units)
    cap_node_tft_units = limits.cap_node_tft_units
    cap_farm_tft_units = limits.cap_farm_tft_units
    cap_run_tft_units = limits.cap_run_tft_units
    receipts = repository.receipts_of_run(session, id_of(run))
    previous_run = repository.previous_live_run(session, run)
    previous = repository.receipts_of_run(session, id_of(previous_run)) if previous_run else []
    report = orjson.loads(run.report_json)

    farm_names = {r.farm_id: r.farm_name for r in receipts}
    farm_names.update({r.farm_id: r.farm_name for r in previous if r.farm_id not in farm_names})
    farm_changes = _largest_changes(_sum_by(receipts, "farm_id"), _sum_by(previous, "farm_id"), farm_names)
    node_changes = _largest_changes(
        _sum_by(receipts, "node_id"),
        _sum_by(previous, "node_id"),
        {r.node_id: f"farm {r.farm_id}" for r in receipts},
    )

    address_changes: list[AddressChange] = []
    if previous_run is not None:
        before = {r.farm_id: r.stellar_payout_address for r in previous}
        seen: set[int] = set()
        for r in receipts:
            if r.farm_id in seen or not r.stellar_payout_address:
                continue
            seen.add(r.farm_id)
            if before.get(r.farm_id) != r.stellar_payout_address:
                address_changes.append(
                    AddressChange(r.farm_id, r.farm_name, before.get(r.farm_id), r.stellar_payout_address)
                )

    held: dict[int, dict] = {}
    for r in receipts:
        if r.eligibility in HELD_FOR_ADDRESS:
            entry = held.setdefault(
                r.farm_id,
                {
                    "farm_id": r.farm_id,
                    "farm_name": r.farm_name,
                    "eligibility": r.eligibility,
                    "address": r.stellar_payout_address,
                    "nodes": 0,
                    "held_tft_units": 0,
                },
            )
            entry["nodes"] += 1
            entry["held_tft_units"] += r.reward_tft_units

    breaches: list[CapBreach] = []
    if cap_node_tft_units is not None:
        breaches += [
            CapBreach("node", r.node_id, r.reward_tft_units, cap_node_tft_units)
            for r in receipts
            if r.reward_tft_units > cap_node_tft_units
        ]
    if cap_farm_tft_units is not None:
        breaches += [
            CapBreach("farm", farm_id, amount, cap_farm_tft_units)
            for farm_id, amount in sorted(_sum_by(receipts, "farm_id").items())
            if amount > cap_farm_tft_units
        ]
    if cap_run_tft_units is not None and run.total_tft_units > cap_run_tft_units:
        breaches.append(CapBreach("run", None, run.total_tft_units, cap_run_tft_units))

    period = Period(run.period_offset)
    manifest = build_manifest(session, run)
    counted = {a.id for a in valid_approvals(session, run, list(approvers), manifest)}
    approvals = [
        {
            "approver": a.approver_public_key,
            "at": a.created_at.isoformat(),
            "counts": a.id in counted,
            "manifest_sha256": a.manifest_sha256,
        }
        for a in repository.approvals_of_run(session, id_of(run))
    ]
    history = []
    for back in range(1, limits.outlier_months + 1):
        earlier = repository.live_run_for_period(session, run.period_offset - back)
        if earlier is not None:
            history.append(repository.receipts_of_run(session, id_of(earlier)))
    exceedances = cap_exceedances(run, receipts, manifest.total_tft_units, limits) + implausible_resources(
        receipts, limits
    )
    paid_so_far = sum(
        p.amount_tft_units for p in repository.manifest_payments(session, id_of(run)) if p.status == "paid"
    )
    return Review(
        run_id=id_of(run),
        period=Period(run.period_offset).label,
        status=run.status,
        snapshot_sha256=run.snapshot_sha256,
        code_version=run.code_version,
        previous_run_id=previous_run.id if previous_run else None,
        total_musd=run.total_musd,
        total_tft_units=run.total_tft_units,
        payable_tft_units=run.payable_tft_units,
        previous_total_tft_units=previous_run.total_tft_units if previous_run else None,
        nodes=run.node_count,
        previous_nodes=previous_run.node_count if previous_run else None,
        by_eligibility=dict(sorted(Counter(r.eligibility for r in receipts).items())),
        previous_by_eligibility=dict(sorted(Counter(r.eligibility for r in previous).items())),
        violations=dict(sorted(Counter(r.violation for r in receipts if r.violation).items())),
        held_for_address=sorted(held.values(), key=lambda e: -e["held_tft_units"]),
        farm_changes=farm_changes,
        node_changes=node_changes,
        address_changes=address_changes,
        quirk_policy_ids=list(report.get("quirk_policy_ids", [])),
        invalid_records=[
            {"node_id": r.node_id, "farm_id": r.farm_id, "reason": r.reason}
            for r in receipts
            if r.eligibility == "invalid_record"
        ],
        cap_breaches=breaches,
        notes=list(report.get("notes", [])),
        rehearsal=bool(run.rehearsal),
        period_month=f"{_month_name(period)}",
        period_start=period.start.isoformat(),
        period_end=period.end.isoformat(),
        manifest_sha256=manifest.sha256.hex(),
        manifest_payment_count=manifest.payment_count,
        manifest_total_tft_units=manifest.total_tft_units,
        sections=manifest_sections(session, run),
        approvals=approvals,
        balances=read_balances(lookup, list(accounts), manifest.total_tft_units - paid_so_far, asset),
        identical_to_previous=identical_to_previous(receipts, previous),
        all_addresses_new=all_addresses_new(receipts, previous),
        outliers=outliers(receipts, history, limits.outlier_factor),
        outlier_factor=limits.outlier_factor,
        exceedances=exceedances,
        accepted_exceedances=accepted(run),
        unaccepted_exceedances=uncovered(run, exceedances),
        claimable_policy=orjson.loads(manifest.claimable_policy) if manifest.claimable_policy else None,
        claimable_reclaim_after_days=_days(manifest.claimable_reclaim_after_s),
        claimable_policy_text=describe_policy(manifest.claimable_policy),
    )


def _days(seconds: int | None) -> int | None:
    # the policy is written from whole days (PAYOUTS_CLAIMABLE_RECLAIM_AFTER_DAYS)
    return None if seconds is None else seconds // 86_400


_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)


def _month_name(period: Period) -> str:
    """'2026-12' -> 'December 2026' (the calendar month holding most of the period)."""
    year, month = period.label.split("-")
    return f"{_MONTHS[int(month) - 1]} {year}"
