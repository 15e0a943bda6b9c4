"""Two-tier funding: a multisig treasury funds the hot payout account with exactly the run total.

Operators export one funding transaction (treasury -> payout account, the manifest's total,
MEMO_HASH = the manifest's SHA-256, long time bounds), add their signatures offline, and submit
it once the treasury's thresholds are met. Workers never hold a treasury key, so a compromised
worker can move at most what one approved run was funded with.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path

from sqlmodel import Session, select
from stellar_sdk import Keypair, StrKey, TransactionEnvelope
from stellar_sdk.exceptions import BadSignatureError
from stellar_sdk.operation import Payment as PaymentOperation

from payouts.ledger.kinds import TransactionPurpose
from payouts.ledger.models import Run, StellarTransaction
from payouts.ledger.repository import id_of
from payouts.ledger.states import RunStatus, TransactionStatus, transition
from payouts.ledger.transactions import record_transaction
from payouts.ledger.unit_of_work import UnitOfWorkFactory
from payouts.money import format_tft
from payouts.runs.approvals import require_approved
from payouts.runs.errors import RunsError
from payouts.runs.payment.resolve import chain_outcome
from payouts.runs.sweep import adopt_chain_transaction, envelope_amount_units, find_on_chain
from payouts.stellar.build import PaymentOp, build_payment_envelope, envelope_units
from payouts.stellar.horizon import AccountInfo, HorizonClient, Outcome
from payouts.stellar.network import DEFAULT_LEDGER_CLOSE_S
from payouts.stellar.submit import Verdict

FUNDING_FORMAT = "tft-payouts-funding/1"
FUNDING_VALIDITY_S = 7 * 24 * 3600


class FundingError(RunsError):
    """A funding file or step that must not go ahead; the message says why."""


@dataclass(frozen=True)
class FundingFile:
    """What operators pass around to sign: every field is public, none is secret."""

    run_id: int
    network_passphrase: str
    treasury: str
    payout_account: str
    asset_code: str
    asset_issuer: str
    amount_tft_units: int
    manifest_sha256: str
    max_time: int
    tx_hash: str
    envelope_xdr: str
    #: the treasury's signers ({"key", "weight"}) and thresholds as the chain had them at
    #: export: what `sign` checks a key against offline (submit checks the chain again)
    signers: list[dict] = field(default_factory=list)
    thresholds: dict[str, int] = field(default_factory=dict)

    def write(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"format": FUNDING_FORMAT, **asdict(self)}, indent=2) + "\n")

    @classmethod
    def read(cls, path: str | Path) -> FundingFile:
        try:
            document = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise FundingError(f"{path}: not a funding file ({exc})") from None
        except RecursionError:  # JSON nested deeper than any funding file
            raise FundingError(f"{path}: not a funding file (nested too deeply)") from None
        if not isinstance(document, dict) or document.get("format") != FUNDING_FORMAT:
            raise FundingError(f"{path}: not a {FUNDING_FORMAT} file")
        document.pop("format")
        try:
            funding = cls(**document)
        except TypeError as exc:
            raise FundingError(f"{path}: {exc}") from None
        if not _well_formed_signers(funding.signers, funding.thresholds):
            raise FundingError(f"{path}: the treasury signers or thresholds in the file are not well formed")
        funding.envelope()  # the envelope must say what the file says
        return funding

    def envelope(self) -> TransactionEnvelope:
        """The envelope, checked against the file's own fields (a tampered file is refused)."""
        try:
            envelope = TransactionEnvelope.from_xdr(self.envelope_xdr, self.network_passphrase)
        except Exception:  # noqa: BLE001 - any decoding failure means the same thing here
            raise FundingError("the funding envelope does not decode") from None
        tx = envelope.transaction
        operations = tx.operations
        problems = []
        if envelope.hash_hex() != self.tx_hash:
            problems.append("transaction hash")
        if tx.source.account_id != self.treasury:
            problems.append("source (treasury)")
        if len(operations) != 1 or not isinstance(operations[0], PaymentOperation):
            problems.append("a single payment operation")
        else:
            op = operations[0]
            if op.destination.account_id != self.payout_account:
                problems.append("destination (payout account)")
            if envelope_units(op.amount) != self.amount_tft_units:
                problems.append("amount")
            if (op.asset.code, op.asset.issuer) != (self.asset_code, self.asset_issuer):
                problems.append("asset")
        if tx.memo is None or getattr(tx.memo, "memo_hash", b"").hex() != self.manifest_sha256:
            problems.append("memo (manifest SHA-256)")
        if (
            tx.preconditions is None
            or tx.preconditions.time_bounds is None
            or tx.preconditions.time_bounds.max_time != self.max_time
        ):
            problems.append("time bounds")
        if problems:
            raise FundingError("the funding file does not match its envelope: " + ", ".join(problems))
        return envelope

    @property
    def signer_keys(self) -> dict[str, int]:
        """The treasury's signing keys named in the file, with their weights."""
        return {str(s.get("key")): int(s.get("weight", 0)) for s in self.signers if s.get("key")}

    @property
    def needed_weight(self) -> int:
        """A payment needs the treasury's medium threshold (at least 1)."""
        return max(int(self.thresholds.get("med_threshold", 0)), 1)

    def signed_by(self) -> list[str]:
        """The file's signers whose signatures in the envelope verify."""
        envelope = self.envelope()
        return [key for key in self.signer_keys if _has_signature(envelope, key)]

    def describe(self) -> list[str]:
        return [
            f"run {self.run_id}: fund the payout account for exactly the approved run total",
            f"from treasury {self.treasury}",
            f"to payout account {self.payout_account}",
            f"amount {format_tft(self.amount_tft_units)} {self.asset_code} (issuer {self.asset_issuer})",
            f"memo: manifest SHA-256 {self.manifest_sha256}",
            f"valid until unix time {self.max_time}; network: {self.network_passphrase}",
            f"transaction hash {self.tx_hash}",
            "treasury signers: "
            + (", ".join(f"{key} (weight {weight})" for key, weight in self.signer_keys.items()) or "not named")
            + f"; a payment needs weight {self.needed_weight}",
        ]


def _well_formed_signers(signers: object, thresholds: object) -> bool:
    if not isinstance(signers, list) or not isinstance(thresholds, dict):
        return False
    for signer in signers:
        if not isinstance(signer, dict) or not isinstance(signer.get("key"), str):
            return False
        if not isinstance(signer.get("weight"), int) or not StrKey.is_valid_ed25519_public_key(signer["key"]):
            return False
    return all(isinstance(value, int) for value in thresholds.values())


def _has_signature(envelope: TransactionEnvelope, public_key: str) -> bool:
    keypair = Keypair.from_public_key(public_key)
    tx_hash = envelope.hash()
    for decorated in envelope.signatures:
        if decorated.signature_hint != keypair.signature_hint():
            continue
        try:
            keypair.verify(tx_hash, decorated.signature)
        except BadSignatureError:
            continue
        return True
    return False


def treasury_signers(account) -> tuple[list[dict], dict[str, int]]:
    """The treasury's ed25519 signers with a weight, and its thresholds, as the chain has them."""
    signers = [
        {"key": s["key"], "weight": int(s.get("weight", 0))}
        for s in account.signers
        if s.get("type", "ed25519_public_key") == "ed25519_public_key" and int(s.get("weight", 0)) > 0
    ]
    thresholds = {
        name: int(account.thresholds.get(name, 0)) for name in ("low_threshold", "med_threshold", "high_threshold")
    }
    return sorted(signers, key=lambda s: s["key"]), thresholds


def export_funding(
    session: Session,
    run: Run,
    client: HorizonClient,
    *,
    treasury: str,
    payout_account: str,
    asset_code: str,
    asset_issuer: str,
    network_passphrase: str,
    approvers: list[str],
    required: int,
    validity_s: int = FUNDING_VALIDITY_S,
    ledger_close_s: float = DEFAULT_LEDGER_CLOSE_S,
) -> FundingFile:
    """Build (or return the already recorded) funding transaction of an approved run."""
    recorded = session.exec(
        select(StellarTransaction).where(
            StellarTransaction.run_id == run.id,
            StellarTransaction.purpose == TransactionPurpose.FUNDING,
            StellarTransaction.status == TransactionStatus.BUILT,
        )
    ).first()
    manifest = require_approved(session, run, approvers=approvers, required=required)
    account = client.account(treasury)
    if account is None:
        raise FundingError(f"the treasury {treasury} does not exist on this network")
    signers, thresholds = treasury_signers(account)
    if recorded is not None and superseded(client, account, recorded):
        # another treasury transaction (a change of signers) used its sequence: it never lands
        transition(
            session,
            StellarTransaction,
            id_of(recorded),
            TransactionStatus.BUILT,
            TransactionStatus.DEAD,
            event="funding.superseded",
            run_id=run.id,
            detail={"treasury_sequence": account.sequence, "tx_sequence": recorded.sequence},
        )
        _funding_again(session, run, {"superseded": recorded.tx_hash})
        session.refresh(run)
        recorded = None
    if recorded is not None:
        envelope = TransactionEnvelope.from_xdr(recorded.envelope_xdr, network_passphrase)
        op = envelope.transaction.operations[0]
        if not isinstance(op, PaymentOperation):
            raise FundingError(f"the recorded funding transaction {recorded.tx_hash} is not a payment")
        return FundingFile(
            id_of(run),
            network_passphrase,
            treasury,
            payout_account,
            asset_code,
            asset_issuer,
            envelope_units(op.amount),
            manifest.sha256.hex(),
            recorded.max_time,
            recorded.tx_hash,
            recorded.envelope_xdr,
            signers,
            thresholds,
        )
    if RunStatus(run.status) is not RunStatus.APPROVED:
        raise FundingError(f"run {run.id} is {run.status}; only an approved run is funded")
    landed = funding_on_chain(
        client,
        treasury=treasury,
        payout_account=payout_account,
        manifest_hex=manifest.sha256.hex(),
        asset_code=asset_code,
        asset_issuer=asset_issuer,
    )
    if landed:
        raise FundingError(
            f"the chain already has a funding payment for run {run.id}'s manifest ({landed[0]['transaction_hash']}, "
            f"{landed[0]['amount']} TFT) that this ledger does not know (a restored ledger?): nothing exported; "
            f"`payouts funding export {run.id}` records it as the run's funding"
        )
    latest = client.latest_ledger()
    max_time = int(latest.closed_at.timestamp()) + validity_s
    # valid below this ledger only: "not found as of max_ledger" is the proof it never lands
    max_ledger = latest.sequence + max(2, math.ceil(validity_s / ledger_close_s))
    envelope = build_payment_envelope(
        network_passphrase=network_passphrase,
        source_account=treasury,
        sequence=account.sequence + 1,
        payout_account=treasury,
        asset_code=asset_code,
        asset_issuer=asset_issuer,
        operations=[PaymentOp(payout_account, manifest.total_tft_units)],
        memo_hash=manifest.sha256,
        fee_per_operation_stroops=1000,
        min_time=0,
        max_time=max_time,
        max_ledger=max_ledger,
    )
    tx = record_transaction(
        session,
        run_id=id_of(run),
        purpose=TransactionPurpose.FUNDING,
        source_account=treasury,
        sequence=account.sequence + 1,
        envelope_xdr=envelope.to_xdr(),
        tx_hash=envelope.hash_hex(),
        fee_stroops=1000,
        memo_hash=manifest.sha256.hex(),
        max_time=max_time,
        built_ledger=latest.sequence,
        max_ledger=max_ledger,
        event="funding.exported",
        detail={"amount_tft_units": manifest.total_tft_units},
    )
    transition(
        session,
        Run,
        id_of(run),
        RunStatus.APPROVED,
        RunStatus.FUNDING,
        event="run.funding",
        detail={"tx_hash": tx.tx_hash},
    )
    return FundingFile(
        id_of(run),
        network_passphrase,
        treasury,
        payout_account,
        asset_code,
        asset_issuer,
        manifest.total_tft_units,
        manifest.sha256.hex(),
        max_time,
        tx.tx_hash,
        tx.envelope_xdr,
        signers,
        thresholds,
    )


class AlreadySigned(FundingError):
    """This key's signature is in the file already: nothing to add."""


def funding_on_chain(
    client: HorizonClient, *, treasury: str, payout_account: str, manifest_hex: str, asset_code: str, asset_issuer: str
) -> list[dict]:
    """Treasury -> payout payments on chain carrying this manifest's hash."""
    return find_on_chain(
        client,
        account=payout_account,
        source=treasury,
        destination=payout_account,
        memo_hex=manifest_hex,
        asset_code=asset_code,
        asset_issuer=asset_issuer,
    )


def adopt_funding(
    session: Session,
    run: Run,
    client: HorizonClient,
    *,
    treasury: str,
    payout_account: str,
    asset_code: str,
    asset_issuer: str,
    approvers: list[str],
    required: int,
) -> str | None:
    """A funding payment for this run's manifest that landed while the ledger lost it (a
    restored ledger): record it as the run's confirmed funding, so the run is never funded
    twice. Returns what was adopted, or None when the chain has none."""
    manifest = require_approved(session, run, approvers=approvers, required=required)
    known = set(
        session.exec(
            select(StellarTransaction.tx_hash).where(
                StellarTransaction.run_id == run.id, StellarTransaction.purpose == TransactionPurpose.FUNDING
            )
        ).all()
    )
    landed = [
        record
        for record in funding_on_chain(
            client,
            treasury=treasury,
            payout_account=payout_account,
            manifest_hex=manifest.sha256.hex(),
            asset_code=asset_code,
            asset_issuer=asset_issuer,
        )
        if record["transaction_hash"] not in known
    ]
    if not landed:
        return None
    if RunStatus(run.status) is not RunStatus.APPROVED:
        raise FundingError(
            f"the chain has a funding payment for run {run.id} ({landed[0]['transaction_hash']}) the ledger "
            f"lacks, and the run is {run.status}: resolve it by hand before anything else moves"
        )
    tx = adopt_chain_transaction(session, id_of(run), "funding", landed[0], manifest.sha256.hex(), "funding.adopted")
    amount = envelope_amount_units(tx.envelope_xdr)
    if amount != manifest.total_tft_units:
        raise FundingError(
            f"the chain's funding payment {tx.tx_hash} for run {run.id} brought {format_tft(amount)} TFT, "
            f"not the run total {format_tft(manifest.total_tft_units)}: resolve it by hand"
        )
    for from_status, to_status, event in (
        (RunStatus.APPROVED, RunStatus.FUNDING, "run.funding"),
        (RunStatus.FUNDING, RunStatus.FUNDED, "run.funded"),
    ):
        transition(
            session,
            Run,
            id_of(run),
            from_status,
            to_status,
            event=event,
            detail={"tx_hash": tx.tx_hash, "adopted": True},
        )
    return (
        f"run {run.id} is funded already: the chain has its funding payment {tx.tx_hash} "
        f"({format_tft(amount)} TFT) that this ledger lacked; recorded, nothing exported"
    )


def sign_funding(funding: FundingFile, keypair: Keypair) -> FundingFile:
    """Add one signature; the hash (and so the transaction) does not change.

    Offline: the key must be one of the treasury signers the file names (read from the chain
    at export). Raises AlreadySigned when this key has signed the file already."""
    envelope = funding.envelope()
    public_key = keypair.public_key
    if not funding.signers:
        raise FundingError(
            "this funding file does not name the treasury's signers (written by an older version): "
            f"export it again with `payouts funding export {funding.run_id} --out FILE --force`"
        )
    if public_key not in funding.signer_keys:
        raise FundingError(
            f"key {public_key} is not a signer of the treasury {funding.treasury}; its signers are "
            + ", ".join(f"{key} (weight {weight})" for key, weight in funding.signer_keys.items())
        )
    if _has_signature(envelope, public_key):
        raise AlreadySigned(f"{public_key} has signed this funding transaction already; nothing added")
    envelope.sign(keypair)
    return FundingFile(**{**asdict(funding), "envelope_xdr": envelope.to_xdr()})


def signature_weight(envelope: TransactionEnvelope, signers: list[dict]) -> tuple[int, list[str]]:
    """Total weight of the distinct treasury signers whose signatures verify, and the hints of
    signatures that match no signer."""
    tx_hash = envelope.hash()
    counted: set[str] = set()
    weight = 0
    strangers = []
    for decorated in envelope.signatures:
        matched = False
        for signer in signers:
            key = signer.get("key", "")
            if signer.get("type", "ed25519_public_key") != "ed25519_public_key":
                continue
            keypair = Keypair.from_public_key(key)
            if keypair.signature_hint() != decorated.signature_hint:
                continue
            try:
                keypair.verify(tx_hash, decorated.signature)
            except BadSignatureError:
                continue
            matched = True
            if key not in counted:
                counted.add(key)
                weight += int(signer.get("weight", 0))
        if not matched:
            strangers.append(decorated.signature_hint.hex())
    return weight, strangers


def _funding_again(session: Session, run: Run, detail: dict) -> None:
    """The run's funding transaction never lands: the run is approved again, for a new one."""
    transition(
        session, Run, id_of(run), RunStatus.FUNDING, RunStatus.APPROVED, event="run.funding.retry", detail=detail
    )


def superseded(client: HorizonClient, treasury: AccountInfo, recorded: StellarTransaction) -> bool:
    """The treasury's sequence is at or past the funding transaction's and the chain does not
    have the transaction: another treasury transaction (a change of signers, a transfer) used
    its sequence, so it can never land (SPEC 5, rule 5)."""
    return treasury.sequence >= recorded.sequence and client.lookup(recorded.tx_hash).info is None


def _export_again(run_id: int) -> str:
    return (
        f"its sequence was used by another treasury transaction since it was exported, so it can never land: "
        f"export a new one (`payouts funding export {run_id} --out FILE --force`) and collect the signatures again"
    )


def submit_funding(units: UnitOfWorkFactory, funding: FundingFile, client: HorizonClient) -> str:
    """Submit once the treasury's medium threshold is met; the run becomes `funded` when the
    transaction is in a ledger. Returns the run's status.

    It takes a unit-of-work factory: the transaction is committed as `submitted` (the named
    step `commit_before_submit`) before it is sent. A transaction that can never land is
    recorded as such, committed, and then reported with FundingError.
    """
    with units() as uow:
        session = uow.session
        run = session.get(Run, funding.run_id)
        if run is None:
            raise FundingError(f"run {funding.run_id} does not exist")
        recorded = session.exec(
            select(StellarTransaction).where(
                StellarTransaction.tx_hash == funding.tx_hash, StellarTransaction.purpose == TransactionPurpose.FUNDING
            )
        ).first()
        if recorded is None or recorded.run_id != run.id:
            raise FundingError("this funding transaction is not the one exported for the run")
        if RunStatus(run.status) is RunStatus.FUNDED:
            return run.status
        envelope = funding.envelope()
        treasury = client.account(funding.treasury)
        if treasury is None:
            raise FundingError(f"the treasury {funding.treasury} does not exist on this network")
        weight, strangers = signature_weight(envelope, treasury.signers)
        chain_signers, chain_thresholds = treasury_signers(treasury)
        now_signing = ", ".join(f"{s['key']} (weight {s['weight']})" for s in chain_signers)
        changed = ""
        stale = recorded.status == TransactionStatus.BUILT and superseded(client, treasury, recorded)
        if funding.signers and (chain_signers, chain_thresholds) != (
            sorted(funding.signers, key=lambda s: s["key"]),
            funding.thresholds,
        ):
            changed = " (the treasury's signers or thresholds changed since the file was exported)"
        if strangers:
            named = [
                key for key in funding.signer_keys if Keypair.from_public_key(key).signature_hint().hex() in strangers
            ]
            raise FundingError(
                "signatures by keys that are not treasury signers on chain "
                f"({', '.join(named) if named else 'hints ' + ', '.join(strangers)}){changed}; "
                f"the treasury's signers are {now_signing}" + (f"; {_export_again(funding.run_id)}" if stale else "")
            )
        needed = max(int(treasury.thresholds.get("med_threshold", 0)), 1)
        if weight < needed:
            raise FundingError(
                f"the signatures weigh {weight}; the treasury needs {needed} to pay{changed}; "
                f"its signers are {now_signing}" + (f"; {_export_again(funding.run_id)}" if stale else "")
            )
        if stale:
            raise FundingError(
                f"the funding transaction {funding.tx_hash} does not land: {_export_again(funding.run_id)}"
            )
        recorded_id = id_of(recorded)
        if recorded.status == TransactionStatus.BUILT:
            transition(
                session,
                StellarTransaction,
                recorded_id,
                TransactionStatus.BUILT,
                TransactionStatus.SUBMITTED,
                event="funding.submitted",
                run_id=run.id,
            )
            uow.commit_before_submit()
        result = client.submit(envelope.to_xdr())
        answer = chain_outcome(session, client, recorded) if result.outcome != Outcome.SUCCESS else None
        info = answer.info if answer is not None else None
        if result.outcome == Outcome.SUCCESS or (info is not None and info.successful):
            ledger, closed_at = (result.ledger, result.closed_at) if info is None else (info.ledger, info.closed_at)
            transition(
                session,
                StellarTransaction,
                recorded_id,
                TransactionStatus.SUBMITTED,
                TransactionStatus.CONFIRMED,
                event="funding.confirmed",
                run_id=run.id,
                ledger=ledger,
                closed_at=closed_at,
            )
            transition(
                session,
                Run,
                id_of(run),
                RunStatus.FUNDING,
                RunStatus.FUNDED,
                event="run.funded",
                detail={"tx_hash": funding.tx_hash},
            )
            return RunStatus.FUNDED
        assert answer is not None
        verdict = answer.verdict
        if verdict is Verdict.FOREIGN:
            transition(
                session,
                Run,
                id_of(run),
                RunStatus.FUNDING,
                RunStatus.STOPPED,
                event="run.stopped",
                detail={"reason": answer.reason},
                status_reason=answer.reason[:500],
            )
            return RunStatus.STOPPED
        if verdict not in (Verdict.FAILED, Verdict.NEVER):
            return run.status  # unknown and may still land: submit the same file again later
        transition(
            session,
            StellarTransaction,
            recorded_id,
            TransactionStatus.SUBMITTED,
            TransactionStatus.FAILED if verdict is Verdict.FAILED else TransactionStatus.DEAD,
            event="funding.not_landed",
            run_id=run.id,
            detail={"result_codes": result.result_codes},
        )
        _funding_again(session, run, {"result_codes": result.result_codes})
    # on record (the unit committed); now say so
    raise FundingError(
        f"the funding transaction did not land ({result.result_codes or result.reason}); export a new one"
    )
