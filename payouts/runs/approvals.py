"""Run manifests and approvals (SPEC section 5).

The manifest is what approvers sign: compact JSON with sorted keys of period_offset,
snapshot_sha256, code_version, payment_count, total_tft_units and receipts_merkle_root (hex),
computed from the run's payments as they are in the ledger now. An approval is an ed25519
signature by an approver's key over the SHA-256 of those bytes; it counts only while it still
matches the run's current manifest, so any change to the run after an approval voids it.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

import orjson
import structlog
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from stellar_sdk import Keypair, StrKey
from stellar_sdk.exceptions import BadSignatureError

from payouts.ledger import repository
from payouts.ledger.errors import AlreadyDone
from payouts.ledger.models import Approval, Run
from payouts.ledger.repository import id_of
from payouts.ledger.states import RUN_TRANSITIONS, RunStatus, transition
from payouts.ledger.types import utcnow
from payouts.runs.errors import RunsError
from payouts.stellar.merkle import merkle_root

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


@dataclass(frozen=True)
class Manifest:
    period_offset: int
    snapshot_sha256: str
    code_version: str
    payment_count: int
    total_tft_units: int
    receipts_merkle_root: str

    def document(self) -> dict:
        return {
            "code_version": self.code_version,
            "payment_count": self.payment_count,
            "period_offset": self.period_offset,
            "receipts_merkle_root": self.receipts_merkle_root,
            "snapshot_sha256": self.snapshot_sha256,
            "total_tft_units": self.total_tft_units,
        }

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.document(), option=orjson.OPT_SORT_KEYS)

    @property
    def sha256(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()


def build_manifest(session: Session, run: Run) -> Manifest:
    payments = repository.manifest_payments(session, id_of(run))
    return Manifest(
        period_offset=run.period_offset,
        snapshot_sha256=run.snapshot_sha256,
        code_version=run.code_version,
        payment_count=len(payments),
        total_tft_units=sum(p.amount_tft_units for p in payments),
        receipts_merkle_root=merkle_root([p.receipt_hash for p in payments]).hex(),
    )


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


def valid_approvals(session: Session, run: Run, approvers: list[str]) -> list[Approval]:
    """Approvals by configured approvers whose signature matches the run's manifest now."""
    manifest = build_manifest(session, run)
    counted: dict[str, Approval] = {}
    for approval in repository.approvals_of_run(session, id_of(run)):
        if approval.approver_public_key not in approvers:
            continue
        if approval.manifest_sha256 != manifest.sha256.hex():
            continue  # signed an earlier state of the run
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
    if RunStatus(run.status) is not RunStatus.CALCULATED:
        raise RunNotApprovable(f"run {run.id} is {run.status}; only a calculated run can be approved")
    manifest = build_manifest(session, run)
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
    count = len(valid_approvals(session, run, approvers))
    log.info("run.approval.recorded", run_id=run.id, approver=public_key, valid=count, required=required)
    if count >= required:
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
    """Refuse to pay a run without enough valid approvals of its current manifest."""
    count = len(valid_approvals(session, run, approvers))
    if count < required:
        raise NotApproved(f"run {run.id} has {count} valid approval(s) of its current manifest; {required} required")
    return build_manifest(session, run)


def reject_run(session: Session, run: Run, reason: str) -> None:
    if not reason.strip():
        raise RunsError("a rejection needs a reason")
    transition(
        session,
        Run,
        id_of(run),
        RunStatus(run.status),
        RunStatus.REJECTED,
        transitions=RUN_TRANSITIONS,
        event="run.rejected",
        detail={"reason": reason},
        status_reason=reason,
    )
    session.refresh(run)
