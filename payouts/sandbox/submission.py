"""The sandbox's POST routes: POST /transactions (synchronous: the answer waits for the
ledger that includes the transaction, or times out as Horizon does) and
/transactions_async (answered at once: PENDING, DUPLICATE, ERROR or TRY_AGAIN_LATER), with
the submission faults of the fault plan applied on the way."""

from __future__ import annotations

import urllib.parse
from typing import TYPE_CHECKING

from stellar_sdk import FeeBumpTransactionEnvelope, Payment, TransactionEnvelope

from payouts.sandbox import views
from payouts.sandbox.entries import TxRecord
from payouts.sandbox.faults import SubmitFault
from payouts.sandbox.network import BASE_FEE_STROOPS
from payouts.sandbox.results import result_codes, transaction_result_xdr
from payouts.sandbox.validation import EnvelopeMalformed, SubmissionRejected

if TYPE_CHECKING:
    from payouts.sandbox.handler import Handler

#: Bodies above this are refused unread; a 100-operation envelope is about 20 KB.
MAX_BODY_BYTES = 1024 * 1024
#: what a POST body may be; Horizon answers anything else 415 unsupported_media_type
FORM_MEDIA_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")


class Dropped(Exception):
    """Close the connection without an answer (fault, or a restart under a waiting request)."""


def _read_form(handler: Handler) -> dict | None:
    media_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if media_type and media_type not in FORM_MEDIA_TYPES:
        handler.close_connection = True  # the body is left unread
        handler._problem(views.unsupported_media_type())
        return None
    length_text = handler.headers.get("Content-Length")
    if handler.headers.get("Transfer-Encoding") or length_text is None or not length_text.isdigit():
        handler.close_connection = True
        handler._problem(views.bad_request("tx", "a Content-Length header is required"))
        return None
    length = int(length_text)
    if length > MAX_BODY_BYTES:
        # the body is left unread, so this connection cannot carry another request
        handler.close_connection = True
        handler._problem(views.bad_request("tx", f"request body larger than {MAX_BODY_BYTES} bytes"))
        return None
    body = handler.rfile.read(length)
    try:
        return urllib.parse.parse_qs(body.decode("ascii"), strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        handler._problem(views.bad_request("tx", "the body must be application/x-www-form-urlencoded"))
        return None


def route_post(handler: Handler) -> None:
    path = urllib.parse.urlsplit(handler.path).path.rstrip("/")
    if path not in ("/transactions", "/transactions_async"):
        form = _read_form(handler)  # keep the connection usable
        if form is not None:
            handler._problem(views.not_found())
        return
    form = _read_form(handler)
    if form is None:
        return
    envelope_xdr = (form.get("tx") or [""])[-1].strip()
    if not envelope_xdr:
        return handler._problem(views.bad_request("tx", "tx: required, a base64 transaction envelope"))
    if path == "/transactions":
        _submit_sync(handler, envelope_xdr)
    else:
        _submit_async(handler, envelope_xdr)


def _decoded(handler: Handler, envelope_xdr: str) -> TransactionEnvelope | FeeBumpTransactionEnvelope | None:
    """The submitted envelope, or None once the malformed-transaction problem is answered."""
    try:
        return handler.sandbox.chain.decode(envelope_xdr)
    except EnvelopeMalformed:
        handler._problem(views.transaction_malformed(envelope_xdr))
        return None


def _submit_sync(handler: Handler, envelope_xdr: str) -> None:
    sandbox, chain = handler.sandbox, handler.sandbox.chain
    envelope = _decoded(handler, envelope_xdr)
    if envelope is None:
        return None
    hash_hex = envelope.hash_hex()
    known = sandbox.view.transaction(hash_hex)
    if known is not None:  # Horizon answers an included hash from its database
        return _answer_record(handler, known)
    if chain.transaction(hash_hex) is not None:  # included, but not yet in the lagging view
        return handler._problem(views.submission_timeout(hash_hex, envelope_xdr))
    fault = None if hash_hex in chain.queue else sandbox.faults.next_submit_fault(pays=_pays(envelope))
    if fault is None and sandbox.view.lagging:
        fault = SubmitFault.timeout_after_apply  # the replica never sees it in time
    if fault is SubmitFault.congestion:
        return _congested(handler, envelope, envelope_xdr)
    if fault is SubmitFault.timeout_without_apply:
        return handler._problem(views.submission_timeout(hash_hex, envelope_xdr))
    delay = sandbox.faults.spec.delay_ledgers if fault is SubmitFault.delay else 0
    try:
        chain.submit(envelope_xdr, delay_ledgers=delay)
    except EnvelopeMalformed:
        return handler._problem(views.transaction_malformed(envelope_xdr))
    except SubmissionRejected as exc:
        return handler._problem(views.transaction_failed(envelope_xdr, exc.result_xdr, exc.result_codes))
    answer_included(handler, hash_hex, envelope_xdr, fault)


def answer_included(handler: Handler, hash_hex: str, envelope_xdr: str, fault: SubmitFault | None) -> None:
    outcome = handler.sandbox.wait_for_outcome(hash_hex, handler.sandbox.config.submission_timeout_s)
    if outcome is None:
        return handler._problem(views.submission_timeout(hash_hex, envelope_xdr))
    if isinstance(outcome, SubmissionRejected):
        return handler._problem(views.transaction_failed(envelope_xdr, outcome.result_xdr, outcome.result_codes))
    if fault is SubmitFault.timeout_after_apply:
        return handler._problem(views.submission_timeout(hash_hex, envelope_xdr))
    if fault is SubmitFault.drop_after_apply:
        raise Dropped()
    _answer_record(handler, outcome)


def _answer_record(handler: Handler, record: TxRecord) -> None:
    if record.successful:
        return handler._send(200, views.transaction(handler.base, record))
    handler._problem(
        views.transaction_failed(record.doc["envelope_xdr"], record.doc["result_xdr"], record.result_codes)
    )


def _congested(handler: Handler, envelope, envelope_xdr: str) -> None:
    """The congestion fault: refuse as a full queue would, asking for ten times the base fee."""
    rejected = _insufficient_fee(envelope)
    handler._problem(views.transaction_failed(envelope_xdr, rejected[0], rejected[1]))


def _submit_async(handler: Handler, envelope_xdr: str) -> None:
    sandbox, chain = handler.sandbox, handler.sandbox.chain
    envelope = _decoded(handler, envelope_xdr)
    if envelope is None:
        return None
    hash_hex = envelope.hash_hex()
    if chain.transaction(hash_hex) is not None or hash_hex in chain.queue:
        return handler._send(409, {"tx_status": "DUPLICATE", "hash": hash_hex})
    fault = sandbox.faults.next_submit_fault(pays=_pays(envelope))
    if fault is SubmitFault.congestion:
        result_xdr, _ = _insufficient_fee(envelope)
        return handler._send(400, {"tx_status": "ERROR", "hash": hash_hex, "error_result_xdr": result_xdr})
    if fault is SubmitFault.timeout_without_apply:
        return handler._send(503, {"tx_status": "TRY_AGAIN_LATER", "hash": hash_hex})
    delay = sandbox.faults.spec.delay_ledgers if fault is SubmitFault.delay else 0
    try:
        chain.submit(envelope_xdr, delay_ledgers=delay)
    except EnvelopeMalformed:
        return handler._problem(views.transaction_malformed(envelope_xdr))
    except SubmissionRejected as exc:
        return handler._send(400, {"tx_status": "ERROR", "hash": hash_hex, "error_result_xdr": exc.result_xdr})
    if fault is SubmitFault.drop_after_apply:
        raise Dropped()
    # Horizon's asynchronous handler never waits, so it never answers 504: the
    # 504-after-apply fault is the plain PENDING answer here.
    handler._send(201, {"tx_status": "PENDING", "hash": hash_hex})


def _pays(envelope) -> bool:
    """Does the transaction (or the one a fee bump wraps) carry a payment operation?"""
    fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
    tx = envelope.transaction.inner_transaction_envelope.transaction if fee_bump else envelope.transaction
    return any(isinstance(op, Payment) for op in tx.operations)


def _insufficient_fee(envelope) -> tuple[str, dict]:
    fee_bump = isinstance(envelope, FeeBumpTransactionEnvelope)
    tx = envelope.transaction.inner_transaction_envelope.transaction if fee_bump else envelope.transaction
    fee_ops = len(tx.operations) + (1 if fee_bump else 0)
    required = max(BASE_FEE_STROOPS * 10 * max(fee_ops, 1), (envelope.transaction.fee + 1))
    inner_hash = envelope.transaction.inner_transaction_envelope.hash() if fee_bump else None
    result_xdr = transaction_result_xdr(
        fee_charged_stroops=required, tx_code="tx_insufficient_fee", inner_hash=inner_hash
    )
    return result_xdr, result_codes("tx_insufficient_fee", None, fee_bump=False)
