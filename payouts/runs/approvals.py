"""Run manifests and approvals (SPEC section 5, as amended in section 10).

The manifest is what approvers sign: compact JSON with sorted keys, format
`payouts-manifest/2`. It names the run (run_id, period_offset), the network passphrase, the
payout account and the ledger (ledger_id), the inputs (snapshot_sha256, code_version), the count
and total, the receipts tree (`receipts_merkle_root` over the receipt hashes, unchanged: the
farmer proofs and the site use it) and, beside it, a versioned payments tree
(`payments_merkle_root`, tree `payouts-payments-tree/1`) whose leaves cover each payment's
receipt hash, kind, destination and amount in TFT units, re-derived from canonical receipt bytes
(payouts.runs.derive), never from the columns beside them.

An approval is an ed25519 signature by an approver's key over the SHA-256 of those bytes; it
counts only while it still matches the run's current manifest, so any change to the run after an
approval voids it, and (the run id being in the manifest) only for the run it names. A rejected
manifest is recorded and never counts again. Approvals of the earlier manifest format (version 1)
do not count: such runs are approved again.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import orjson
import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from stellar_sdk import Keypair, StrKey
from stellar_sdk.exceptions import BadSignatureError

from payouts.ledger import repository
from payouts.ledger.errors import AlreadyDone
from payouts.ledger.events import record_event
from payouts.ledger.identity import ledger_identity
from payouts.ledger.kinds import TransactionPurpose
from payouts.ledger.models import Approval, ApproverSet, Payment, Receipt, RejectedManifest, Run, StellarTransaction
from payouts.ledger.repository import id_of
from payouts.ledger.states import (
    LIVE_OR_LANDED_TRANSACTION_STATUSES,
    PAID_OR_LANDING_PAYMENT_STATUSES,
    RunStatus,
    transition,
)
from payouts.ledger.types import utcnow
from payouts.runs.derive import DerivationError, Derived, derive_payment
from payouts.runs.errors import RunsError
from payouts.runs.exceedances import Exceedance, require_accepted
from payouts.stellar.merkle import merkle_root
from payouts.stellar.network import PASSPHRASES

log = structlog.get_logger(__name__)

#: a sandbox rehearsal needs one approval; real networks default to two
DEFAULT_REQUIRED = {"dev": 1}
DEFAULT_REQUIRED_OTHERWISE = 2


class ApprovalError(RunsError):
    """An approval that does not count."""


class UnknownApprover(ApprovalError):
    pass


class InvalidSignature(ApprovalError):
    pass


class RunNotApprovable(ApprovalError):
    pass


class NotApproved(ApprovalError):
    """Paying a run without the required valid approvals."""


class ApprovalAlreadyRecorded(AlreadyDone):
    pass


#: a run past `calculated` may be approved again when its approvals no longer count (approvals
#: of an earlier manifest format, after the upgrade); it keeps its status
REAPPROVABLE = (RunStatus.APPROVED, RunStatus.FUNDING, RunStatus.FUNDED, RunStatus.PAYING, RunStatus.STOPPED)


MANIFEST_FORMAT = "payouts-manifest/2"
PAYMENTS_TREE = "payouts-payments-tree/1"


class ManifestRejected(RunNotApprovable):
    """The manifest was rejected: no signature over it counts, now or later."""


def payment_leaf(derived: Derived) -> bytes:
    """The payments tree's leaf value: SHA-256 of the tree version and the payment's canonical
    JSON (receipt hash, kind, destination, amount in TFT units)."""
    document = {
        "amount_tft_units": derived.amount_tft_units,
        "destination": derived.destination,
        "kind": derived.kind,
        "receipt_hash": derived.receipt_hash,
    }
    return hashlib.sha256(
        PAYMENTS_TREE.encode() + b"\x00" + orjson.dumps(document, option=orjson.OPT_SORT_KEYS)
    ).digest()


@dataclass(frozen=True)
class Manifest:
    run_id: int
    period_offset: int
    network_passphrase: str
    payout_account: str
    ledger_id: str
    snapshot_sha256: str
    code_version: str
    payment_count: int
    total_tft_units: int
    receipts_merkle_root: str
    payments_merkle_root: str
    #: what the approvers accepted past the review's caps and bounds (JSON on the run); only
    #: in the document when there is something, so other runs' manifests are unchanged
    accepted_exceedances: str = ""
    #: the claimable-balance policy (JSON on the run): only in the document when it is on
    claimable_policy: str = ""
    #: the payments as derived from their receipt bytes, the leaves of the payments tree
    payments: frozenset[Derived] = field(default=frozenset(), compare=False, repr=False)

    def document(self) -> dict:
        return {
            "code_version": self.code_version,
            "format": MANIFEST_FORMAT,
            "ledger_id": self.ledger_id,
            "network_passphrase": self.network_passphrase,
            "payment_count": self.payment_count,
            "payments_merkle_root": self.payments_merkle_root,
            "payments_tree": PAYMENTS_TREE,
            "payout_account": self.payout_account,
            "period_offset": self.period_offset,
            "receipts_merkle_root": self.receipts_merkle_root,
            "run_id": self.run_id,
            "snapshot_sha256": self.snapshot_sha256,
            "total_tft_units": self.total_tft_units,
        } | (
            ({"accepted_exceedances": orjson.loads(self.accepted_exceedances)} if self.accepted_exceedances else {})
            | ({"claimable_balances": orjson.loads(self.claimable_policy)} if self.claimable_policy else {})
        )

    @property
    def claimable_reclaim_after_s(self) -> int | None:
        """The signed reclaim window when the manifest lets a destination without a trustline
        be paid by a claimable balance; None when it does not."""
        return reclaim_after_s_of(self.claimable_policy)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.document(), option=orjson.OPT_SORT_KEYS)

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()


def reclaim_after_s_of(policy_json: str) -> int | None:
    """A run's claimable policy's reclaim window in seconds; None when the policy is off."""
    if not policy_json:
        return None
    document = orjson.loads(policy_json)
    if not isinstance(document, dict) or document.get("for") != "no_trustline":
        return None
    window = document.get("reclaim_after_s")
    return window if isinstance(window, int) and window > 0 else None


def _as_written(payment: Payment) -> Derived:
    """A payment that cannot be derived enters the tree as its row says (the gate refuses it)."""
    return Derived(payment.receipt_hash, payment.kind, payment.destination, payment.amount_tft_units)


def build_manifest(session: Session, run: Run) -> Manifest:
    payments = repository.manifest_payments(session, id_of(run))
    receipt_ids = [p.receipt_id for p in payments if p.kind == "receipt" and p.receipt_id is not None]
    receipts: dict[int, Receipt] = {}
    for start in range(0, len(receipt_ids), 500):
        chunk = receipt_ids[start : start + 500]
        receipts.update({id_of(r): r for r in session.exec(select(Receipt).where(col(Receipt.id).in_(chunk))).all()})
    derived: list[Derived] = []
    for payment in payments:
        try:
            derived.append(derive_payment(session, payment, receipts.get))
        except DerivationError:
            derived.append(_as_written(payment))
    identity = ledger_identity(session)
    return Manifest(
        run_id=id_of(run),
        period_offset=run.period_offset,
        network_passphrase=PASSPHRASES.get(run.network, run.network),
        payout_account=identity.payout_account or "",
        ledger_id=identity.ledger_id,
        snapshot_sha256=run.snapshot_sha256,
        code_version=run.code_version,
        payment_count=len(payments),
        # the rows' total: an edited amount voids the approvals at once (the gate names it)
        total_tft_units=sum(p.amount_tft_units for p in payments),
        receipts_merkle_root=merkle_root([p.receipt_hash for p in payments]).hex(),
        payments_merkle_root=merkle_root([payment_leaf(d) for d in derived]).hex(),
        accepted_exceedances=run.accepted_exceedances_json,
        claimable_policy=run.claimable_policy_json,
        payments=frozenset(derived),
    )


def is_rejected(session: Session, manifest_sha256: str) -> bool:
    return session.get(RejectedManifest, manifest_sha256) is not None


def manifest_version(manifest_json: str) -> int:
    """The format version of a signed manifest document (1: before the payments tree)."""
    try:
        document = orjson.loads(manifest_json)
    except orjson.JSONDecodeError:
        return 0
    if isinstance(document, dict) and document.get("format") == MANIFEST_FORMAT:
        return 2
    return 1


def runs_needing_new_approvals(session: Session) -> list[tuple[Run, int]]:
    """Runs waiting to be paid whose approvals are all of an earlier manifest format, with how
    many such approvals each has."""
    waiting = session.exec(select(Run).where(col(Run.status).in_([s.value for s in REAPPROVABLE]))).all()
    result = []
    for run in waiting:
        approvals = repository.approvals_of_run(session, id_of(run))
        old = sum(manifest_version(a.manifest_json) < 2 for a in approvals)
        if approvals and old == len(approvals):
            result.append((run, old))
    return result


def old_manifest_approvals(session: Session, run: Run) -> int:
    """How many of the run's approvals were given to an earlier manifest format."""
    return sum(manifest_version(a.manifest_json) < 2 for a in repository.approvals_of_run(session, id_of(run)))


def sign_manifest(manifest: Manifest, keypair: Keypair) -> str:
    """The approver's signature (base64) over the SHA-256 of the manifest bytes."""
    return base64.b64encode(keypair.sign(manifest.sha256)).decode()


def signature_is_valid(manifest: Manifest, public_key: str, signature_b64: str) -> bool:
    try:
        signature = base64.b64decode(signature_b64, validate=True)
        Keypair.from_public_key(public_key).verify(manifest.sha256, signature)
    except (BadSignatureError, ValueError):
        return False
    return True


def required_approvals(network: str, configured: int | None) -> int:
    if configured is not None:
        return configured
    return DEFAULT_REQUIRED.get(network, DEFAULT_REQUIRED_OTHERWISE)


def valid_approvals(
    session: Session, run: Run, approvers: list[str], manifest: Manifest | None = None
) -> list[Approval]:
    """Approvals by configured approvers whose signature matches the run's manifest now (never
    one of a rejected manifest)."""
    manifest = manifest or build_manifest(session, run)
    if is_rejected(session, manifest.sha256.hex()):
        return []
    recorded = approver_set_state(session)
    if recorded is not None:  # configured *and* in the set in effect
        approvers = [key for key in approvers if key in recorded.approvers]
    counted: dict[str, Approval] = {}
    for approval in repository.approvals_of_run(session, id_of(run)):
        if approval.approver_public_key not in approvers:
            continue
        if approval.run_id != run.id or approval.manifest_sha256 != manifest.sha256.hex():
            continue  # signed an earlier state of the run, or another run
        if signature_is_valid(manifest, approval.approver_public_key, approval.signature_b64):
            counted.setdefault(approval.approver_public_key, approval)
    return list(counted.values())


def approve_run(
    session: Session,
    run: Run,
    *,
    public_key: str,
    signature_b64: str,
    approvers: list[str],
    required: int,
    exceedances: Sequence[Exceedance] = (),
) -> int:
    """Record a verified approval; the run becomes `approved` with enough of them.

    `exceedances`: the caps and bounds the review finds the run past; each must be recorded as
    accepted in the manifest being signed (ExceedancesNotAccepted otherwise).
    Returns the number of valid approvals now. Raises UnknownApprover, InvalidSignature or
    RunNotApprovable; an identical approval again is ApprovalAlreadyRecorded.
    """
    if not StrKey.is_valid_ed25519_public_key(public_key) or public_key not in approvers:
        raise UnknownApprover(f"{public_key} is not a configured approver (PAYOUTS_APPROVERS)")
    manifest = build_manifest(session, run)
    if is_rejected(session, manifest.sha256.hex()):
        raise ManifestRejected(f"run {run.id}'s manifest was rejected; it can never be approved again")
    in_effect = approvers_in_effect(session, approvers, required)
    if public_key not in in_effect.approvers:
        raise UnknownApprover(
            f"{public_key} is configured but not in the approver set recorded in the ledger: "
            + in_effect.notice(approvers, required)
        )
    approvers, required = list(in_effect.approvers), in_effect.threshold
    status = RunStatus(run.status)
    if status is not RunStatus.CALCULATED and not (
        status in REAPPROVABLE and len(valid_approvals(session, run, approvers, manifest)) < required
    ):
        raise RunNotApprovable(f"run {run.id} is {run.status}; only a calculated run can be approved")
    require_accepted(run, exceedances)
    if not signature_is_valid(manifest, public_key, signature_b64):
        raise InvalidSignature(f"the signature by {public_key} does not match run {run.id}'s manifest")
    try:
        with session.begin_nested():
            session.add(
                Approval(
                    run_id=id_of(run),
                    approver_public_key=public_key,
                    manifest_sha256=manifest.sha256.hex(),
                    manifest_json=manifest.to_bytes().decode(),
                    signature_b64=signature_b64,
                    created_at=utcnow(),
                )
            )
    except IntegrityError:
        raise ApprovalAlreadyRecorded(f"{public_key} already approved this manifest of run {run.id}") from None
    count = len(valid_approvals(session, run, approvers, manifest))
    log.info("run.approval.recorded", run_id=run.id, approver=public_key, valid=count, required=required)
    if count >= required and status is RunStatus.CALCULATED:
        transition(
            session,
            Run,
            id_of(run),
            RunStatus.CALCULATED,
            RunStatus.APPROVED,
            event="run.approved",
            detail={"manifest_sha256": manifest.sha256.hex(), "approvals": count},
        )
        session.refresh(run)
    return count


def require_approved(session: Session, run: Run, *, approvers: list[str], required: int) -> Manifest:
    """Refuse to pay a run without enough valid approvals of its current manifest; returns the
    approved manifest (its payments are what the gate checks each transaction against)."""
    in_effect = approvers_in_effect(session, approvers, required)
    approvers, required = list(in_effect.approvers), in_effect.threshold
    manifest = build_manifest(session, run)
    count = len(valid_approvals(session, run, approvers, manifest))
    if count < required:
        message = f"run {run.id} has {count} valid approval(s) of its current manifest; {required} required"
        if old_manifest_approvals(session, run):
            message += (
                f". Its earlier approvals were of manifest version 1 and no longer count since the "
                f"upgrade (the manifest now binds every payment): approve it again (payouts approve {run.id})"
            )
        raise NotApproved(message)
    return manifest


def sent_on_chain(session: Session, run: Run) -> str | None:
    """What of `run` is paid, or may still land, on chain (None: nothing): a stopped run may have
    paid part of its receipts before it stopped, or all of them (a reconciliation mismatch)."""
    paid = session.exec(
        select(Payment.id).where(
            Payment.run_id == run.id,
            col(Payment.status).in_(sorted(PAID_OR_LANDING_PAYMENT_STATUSES)),
        )
    ).all()
    if paid:
        return f"{len(paid)} of its payments are paid or in transactions that may land"
    open_or_landed = session.exec(
        select(StellarTransaction.id).where(
            StellarTransaction.run_id == run.id,
            StellarTransaction.purpose == TransactionPurpose.PAYMENT,
            col(StellarTransaction.status).in_(sorted(LIVE_OR_LANDED_TRANSACTION_STATUSES)),
        )
    ).all()
    if open_or_landed:
        return f"{len(open_or_landed)} of its payment transactions landed or may still land"
    return None


def reject_run(session: Session, run: Run, reason: str) -> None:
    """Reject a run for good; its manifest as it is now is recorded and never counts again."""
    if not reason.strip():
        raise RunsError("a rejection needs a reason")
    sent = sent_on_chain(session, run)
    if sent is not None:
        raise RunsError(
            f"run {run.id} cannot be rejected: {sent}. A rejected period is calculated and paid again, so "
            f"these receipts would be paid twice; continue the run instead (payouts continue {run.id})"
        )
    manifest_sha256 = build_manifest(session, run).sha256.hex()
    if not is_rejected(session, manifest_sha256):
        session.add(
            RejectedManifest(manifest_sha256=manifest_sha256, run_id=id_of(run), reason=reason, rejected_at=utcnow())
        )
    transition(
        session,
        Run,
        id_of(run),
        RunStatus(run.status),
        RunStatus.REJECTED,
        event="run.rejected",
        detail={"reason": reason, "manifest_sha256": manifest_sha256},
        status_reason=reason,
    )
    session.refresh(run)


# -- the approver set recorded in the ledger -------------------------------------------------


class ApproverSetError(ApprovalError):
    pass


@dataclass(frozen=True)
class ApproverSetState:
    """The set in effect (recorded and, after the first, signed by its predecessor's threshold)
    and what the configuration asks for."""

    effective: ApproverSet | None
    approvers: tuple[str, ...]
    threshold: int
    #: a configured set that differs from the one in effect: a change waiting for signatures
    pending: ApproverSet | None = None
    pending_signatures: int = 0
    #: when the set in effect was adopted (None: the first set, or none yet)
    changed_at: datetime | None = None

    def effective_members(self) -> tuple[str, ...]:
        return _members(self.effective) if self.effective is not None else ()

    def notice(self, configured: list[str], required: int) -> str:
        """What an operator must know, or "" (shown by `show` and `pay`)."""
        lines = []
        if self.changed_at is not None:
            lines.append(
                f"the approver set changed on {self.changed_at:%Y-%m-%d %H:%M} UTC (set {self.effective.id if self.effective else '?'}): "
                f"{len(self.approvers)} approvers, {self.threshold} required"
            )
        if self.effective is not None and (
            sorted(set(configured)) != list(self.approvers) or required != self.threshold
        ):
            lines.append(
                "PAYOUTS_APPROVERS / PAYOUTS_APPROVALS_REQUIRED differ from the approver set recorded in the "
                f"ledger; the change takes effect only once {self.effective.threshold} of the recorded approvers sign it "
                f"(payouts approvers sign; {self.pending_signatures} so far). Until then only recorded "
                "approvers count"
            )
        return "; ".join(lines)


def approver_set_bytes(approvers: list[str] | tuple[str, ...], threshold: int, previous_id: int | None) -> bytes:
    """What the previous set's approvers sign to adopt a new set."""
    return orjson.dumps(
        {
            "approvers": sorted(set(approvers)),
            "format": "payouts-approver-set/1",
            "previous_set": previous_id,
            "threshold": threshold,
        },
        option=orjson.OPT_SORT_KEYS,
    )


def _members(row: ApproverSet) -> tuple[str, ...]:
    return tuple(orjson.loads(row.approvers_json))


def _valid_signers(row: ApproverSet, previous: ApproverSet) -> set[str]:
    message = hashlib.sha256(approver_set_bytes(_members(row), row.threshold, previous.id)).digest()
    members = set(_members(previous))
    valid = set()
    for key, signature_b64 in orjson.loads(row.signatures_json or "{}").items():
        if key not in members:
            continue
        try:
            Keypair.from_public_key(key).verify(message, base64.b64decode(signature_b64, validate=True))
        except (BadSignatureError, ValueError):
            continue
        valid.add(key)
    return valid


def approver_set_state(session: Session) -> ApproverSetState | None:
    """The set in effect: the first recorded set, then each successor signed by at least its
    predecessor's threshold of its predecessor's members; None when no set is recorded."""
    rows = list(session.exec(select(ApproverSet).order_by(col(ApproverSet.id))).all())
    if not rows:
        return None
    current = rows[0]
    changed_at = None
    adopted = True
    while adopted:
        adopted = False
        for row in rows:
            if row.previous_id == current.id and len(_valid_signers(row, current)) >= current.threshold:
                current, changed_at, adopted = row, row.created_at, True
                break
    return ApproverSetState(
        effective=current, approvers=_members(current), threshold=current.threshold, changed_at=changed_at
    )


def _proposal(session: Session, state: ApproverSetState, configured: list[str], required: int) -> ApproverSet | None:
    wanted = orjson.dumps(sorted(set(configured))).decode()
    assert state.effective is not None
    for row in session.exec(
        select(ApproverSet).where(ApproverSet.previous_id == state.effective.id).order_by(col(ApproverSet.id))
    ).all():
        if row.approvers_json == wanted and row.threshold == required:
            return row
    return None


def approvers_in_effect(session: Session, configured: list[str], required: int) -> ApproverSetState:
    """The approvers that count and the threshold: configured *and* recorded in the ledger (the
    first time, the configured set is recorded). A configured change waits for signatures."""
    state = approver_set_state(session)
    if state is None:
        now = utcnow()
        row = ApproverSet(
            approvers_json=orjson.dumps(sorted(set(configured))).decode(), threshold=required, created_at=now
        )
        session.add(row)
        session.flush()
        record_event(
            session,
            entity="approver_sets",
            entity_id=row.id,
            event="approvers.recorded",
            detail={"approvers": sorted(set(configured)), "threshold": required},
        )
        return ApproverSetState(effective=row, approvers=_members(row), threshold=required)
    if sorted(set(configured)) == list(state.approvers) and required == state.threshold:
        return state
    proposal = _proposal(session, state, configured, required)
    assert state.effective is not None
    signed = len(_valid_signers(proposal, state.effective)) if proposal is not None else 0
    # only approvers both configured and in effect count, and the stricter threshold applies
    return ApproverSetState(
        effective=state.effective,
        approvers=tuple(k for k in state.approvers if k in configured),
        threshold=max(required, state.threshold),
        pending=proposal,
        pending_signatures=signed,
        changed_at=state.changed_at,
    )


def sign_approver_change(session: Session, keypair: Keypair, configured: list[str], required: int) -> ApproverSetState:
    """Sign the configured approver set as the successor of the set in effect, with a key of a
    member of the set in effect; the change takes effect with its threshold of signatures."""
    state = approvers_in_effect(session, configured, required)
    if (
        state.pending is None
        and state.effective is not None
        and sorted(set(configured)) == list(_members(state.effective))
        and required == state.effective.threshold
    ):
        raise ApproverSetError("the configured approver set is the one in effect: nothing to sign")
    assert state.effective is not None
    if keypair.public_key not in _members(state.effective):
        raise ApproverSetError(f"{keypair.public_key} is not in the approver set in effect; it cannot sign a change")
    proposal = state.pending
    if proposal is None:
        proposal = ApproverSet(
            approvers_json=orjson.dumps(sorted(set(configured))).decode(),
            threshold=required,
            previous_id=state.effective.id,
            signatures_json="{}",
            created_at=utcnow(),
        )
        session.add(proposal)
        session.flush()
    message = hashlib.sha256(approver_set_bytes(sorted(set(configured)), required, state.effective.id)).digest()
    signatures = orjson.loads(proposal.signatures_json or "{}")
    signatures[keypair.public_key] = base64.b64encode(keypair.sign(message)).decode()
    proposal.signatures_json = orjson.dumps(signatures, option=orjson.OPT_SORT_KEYS).decode()
    proposal.created_at = utcnow()
    session.add(proposal)
    session.flush()
    after = approver_set_state(session)
    assert after is not None
    adopted = after.effective is not None and after.effective.id == proposal.id
    record_event(
        session,
        entity="approver_sets",
        entity_id=proposal.id,
        event="approvers.changed" if adopted else "approvers.change.signed",
        detail={"signer": keypair.public_key, "approvers": sorted(set(configured)), "threshold": required},
    )
    return approvers_in_effect(session, configured, required)


def approver_notice(session: Session, configured: list[str], required: int) -> str:
    """What `show` and `pay` say about the approver set: when it changed, and a configured
    change still waiting for signatures ("" when there is nothing to say)."""
    if approver_set_state(session) is None:
        return ""
    return approvers_in_effect(session, configured, required).notice(configured, required)
