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
from dataclasses import dataclass, field

import orjson
import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select
from stellar_sdk import Keypair, StrKey
from stellar_sdk.exceptions import BadSignatureError

from payouts.ledger import repository
from payouts.ledger.errors import AlreadyDone
from payouts.ledger.identity import ledger_identity
from payouts.ledger.models import Approval, Payment, Receipt, RejectedManifest, Run
from payouts.ledger.repository import id_of
from payouts.ledger.states import RUN_TRANSITIONS, RunStatus, transition
from payouts.ledger.types import utcnow
from payouts.runs.derive import DerivationError, Derived, derive_payment
from payouts.runs.errors import RunsError
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


class ManifestRejected(ApprovalError):
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
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.document(), option=orjson.OPT_SORT_KEYS)

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()


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
) -> int:
    """Record a verified approval; the run becomes `approved` with enough of them.

    Returns the number of valid approvals now. Raises UnknownApprover, InvalidSignature or
    RunNotApprovable; an identical approval again is ApprovalAlreadyRecorded.
    """
    if not StrKey.is_valid_ed25519_public_key(public_key) or public_key not in approvers:
        raise UnknownApprover(f"{public_key} is not a configured approver (PAYOUTS_APPROVERS)")
    status = RunStatus(run.status)
    manifest = build_manifest(session, run)
    if status is not RunStatus.CALCULATED and not (
        status in REAPPROVABLE and len(valid_approvals(session, run, approvers, manifest)) < required
    ):
        raise RunNotApprovable(f"run {run.id} is {run.status}; only a calculated run can be approved")
    if is_rejected(session, manifest.sha256.hex()):
        raise ManifestRejected(f"run {run.id}'s manifest was rejected; it can never be approved again")
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
            transitions=RUN_TRANSITIONS,
            event="run.approved",
            detail={"manifest_sha256": manifest.sha256.hex(), "approvals": count},
        )
        session.refresh(run)
    return count


def require_approved(session: Session, run: Run, *, approvers: list[str], required: int) -> Manifest:
    """Refuse to pay a run without enough valid approvals of its current manifest; returns the
    approved manifest (its payments are what the gate checks each transaction against)."""
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


def reject_run(session: Session, run: Run, reason: str) -> None:
    """Reject a run for good; its manifest as it is now is recorded and never counts again."""
    if not reason.strip():
        raise RunsError("a rejection needs a reason")
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
        transitions=RUN_TRANSITIONS,
        event="run.rejected",
        detail={"reason": reason, "manifest_sha256": manifest_sha256},
        status_reason=reason,
    )
    session.refresh(run)
