"""Result codes as Horizon spells them, and the TransactionResult XDR stellar-core would write.

Codes travel through the ledger model as Horizon's strings (`tx_bad_seq`, `op_no_trust`); the
XDR is built from them only at the edge, with stellar-sdk's own types so clients decode it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from stellar_sdk import xdr as x

TX_CODES: dict[str, x.TransactionResultCode] = {
    "tx_success": x.TransactionResultCode.txSUCCESS,
    "tx_failed": x.TransactionResultCode.txFAILED,
    "tx_too_early": x.TransactionResultCode.txTOO_EARLY,
    "tx_too_late": x.TransactionResultCode.txTOO_LATE,
    "tx_missing_operation": x.TransactionResultCode.txMISSING_OPERATION,
    "tx_bad_seq": x.TransactionResultCode.txBAD_SEQ,
    "tx_bad_auth": x.TransactionResultCode.txBAD_AUTH,
    "tx_insufficient_balance": x.TransactionResultCode.txINSUFFICIENT_BALANCE,
    "tx_no_source_account": x.TransactionResultCode.txNO_ACCOUNT,
    "tx_insufficient_fee": x.TransactionResultCode.txINSUFFICIENT_FEE,
    "tx_bad_auth_extra": x.TransactionResultCode.txBAD_AUTH_EXTRA,
    "tx_internal_error": x.TransactionResultCode.txINTERNAL_ERROR,
    "tx_not_supported": x.TransactionResultCode.txNOT_SUPPORTED,
    "tx_fee_bump_inner_success": x.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS,
    "tx_fee_bump_inner_failed": x.TransactionResultCode.txFEE_BUMP_INNER_FAILED,
    "tx_malformed": x.TransactionResultCode.txMALFORMED,
}

# Codes that live at the OperationResult level rather than inside an operation's own result.
_GENERIC_OP_CODES: dict[str, x.OperationResultCode] = {
    "op_bad_auth": x.OperationResultCode.opBAD_AUTH,
    "op_no_source_account": x.OperationResultCode.opNO_ACCOUNT,
    "op_not_supported": x.OperationResultCode.opNOT_SUPPORTED,
    "op_too_many_subentries": x.OperationResultCode.opTOO_MANY_SUBENTRIES,
}

_P, _C, _T = x.PaymentResultCode, x.CreateAccountResultCode, x.ChangeTrustResultCode
_A, _F, _S = x.AllowTrustResultCode, x.SetTrustLineFlagsResultCode, x.SetOptionsResultCode
_D = x.ManageDataResultCode
_CC, _CL = x.CreateClaimableBalanceResultCode, x.ClaimClaimableBalanceResultCode

#: operation kind -> (OperationType, OperationResultTr field, result class, code class, codes)
_OP_CODES: dict[str, tuple] = {
    "payment": (
        x.OperationType.PAYMENT,
        "payment_result",
        x.PaymentResult,
        {
            "op_success": _P.PAYMENT_SUCCESS,
            "op_malformed": _P.PAYMENT_MALFORMED,
            "op_underfunded": _P.PAYMENT_UNDERFUNDED,
            "op_src_no_trust": _P.PAYMENT_SRC_NO_TRUST,
            "op_src_not_authorized": _P.PAYMENT_SRC_NOT_AUTHORIZED,
            "op_no_destination": _P.PAYMENT_NO_DESTINATION,
            "op_no_trust": _P.PAYMENT_NO_TRUST,
            "op_not_authorized": _P.PAYMENT_NOT_AUTHORIZED,
            "op_line_full": _P.PAYMENT_LINE_FULL,
            "op_no_issuer": _P.PAYMENT_NO_ISSUER,
        },
    ),
    "create_account": (
        x.OperationType.CREATE_ACCOUNT,
        "create_account_result",
        x.CreateAccountResult,
        {
            "op_success": _C.CREATE_ACCOUNT_SUCCESS,
            "op_malformed": _C.CREATE_ACCOUNT_MALFORMED,
            "op_underfunded": _C.CREATE_ACCOUNT_UNDERFUNDED,
            "op_low_reserve": _C.CREATE_ACCOUNT_LOW_RESERVE,
            "op_already_exists": _C.CREATE_ACCOUNT_ALREADY_EXIST,
        },
    ),
    "change_trust": (
        x.OperationType.CHANGE_TRUST,
        "change_trust_result",
        x.ChangeTrustResult,
        {
            "op_success": _T.CHANGE_TRUST_SUCCESS,
            "op_malformed": _T.CHANGE_TRUST_MALFORMED,
            "op_no_issuer": _T.CHANGE_TRUST_NO_ISSUER,
            "op_invalid_limit": _T.CHANGE_TRUST_INVALID_LIMIT,
            "op_low_reserve": _T.CHANGE_TRUST_LOW_RESERVE,
            "op_self_not_allowed": _T.CHANGE_TRUST_SELF_NOT_ALLOWED,
        },
    ),
    "allow_trust": (
        x.OperationType.ALLOW_TRUST,
        "allow_trust_result",
        x.AllowTrustResult,
        {
            "op_success": _A.ALLOW_TRUST_SUCCESS,
            "op_malformed": _A.ALLOW_TRUST_MALFORMED,
            "op_no_trust": _A.ALLOW_TRUST_NO_TRUST_LINE,
            "op_not_required": _A.ALLOW_TRUST_TRUST_NOT_REQUIRED,
            "op_cant_revoke": _A.ALLOW_TRUST_CANT_REVOKE,
            "op_self_not_allowed": _A.ALLOW_TRUST_SELF_NOT_ALLOWED,
        },
    ),
    "set_trust_line_flags": (
        x.OperationType.SET_TRUST_LINE_FLAGS,
        "set_trust_line_flags_result",
        x.SetTrustLineFlagsResult,
        {
            "op_success": _F.SET_TRUST_LINE_FLAGS_SUCCESS,
            "op_malformed": _F.SET_TRUST_LINE_FLAGS_MALFORMED,
            "op_no_trust": _F.SET_TRUST_LINE_FLAGS_NO_TRUST_LINE,
            "op_cant_revoke": _F.SET_TRUST_LINE_FLAGS_CANT_REVOKE,
            "op_invalid_state": _F.SET_TRUST_LINE_FLAGS_INVALID_STATE,
        },
    ),
    "set_options": (
        x.OperationType.SET_OPTIONS,
        "set_options_result",
        x.SetOptionsResult,
        {
            "op_success": _S.SET_OPTIONS_SUCCESS,
            "op_low_reserve": _S.SET_OPTIONS_LOW_RESERVE,
            "op_too_many_signers": _S.SET_OPTIONS_TOO_MANY_SIGNERS,
            "op_bad_flags": _S.SET_OPTIONS_BAD_FLAGS,
            "op_cant_change": _S.SET_OPTIONS_CANT_CHANGE,
            "op_unknown_flag": _S.SET_OPTIONS_UNKNOWN_FLAG,
            "op_threshold_out_of_range": _S.SET_OPTIONS_THRESHOLD_OUT_OF_RANGE,
            "op_bad_signer": _S.SET_OPTIONS_BAD_SIGNER,
            "op_invalid_home_domain": _S.SET_OPTIONS_INVALID_HOME_DOMAIN,
        },
    ),
    "manage_data": (
        x.OperationType.MANAGE_DATA,
        "manage_data_result",
        x.ManageDataResult,
        {
            "op_success": _D.MANAGE_DATA_SUCCESS,
            "op_not_supported_yet": _D.MANAGE_DATA_NOT_SUPPORTED_YET,
            "op_data_name_not_found": _D.MANAGE_DATA_NAME_NOT_FOUND,
            "op_low_reserve": _D.MANAGE_DATA_LOW_RESERVE,
            "op_data_invalid_name": _D.MANAGE_DATA_INVALID_NAME,
        },
    ),
    "create_claimable_balance": (
        x.OperationType.CREATE_CLAIMABLE_BALANCE,
        "create_claimable_balance_result",
        x.CreateClaimableBalanceResult,
        {
            "op_success": _CC.CREATE_CLAIMABLE_BALANCE_SUCCESS,
            "op_malformed": _CC.CREATE_CLAIMABLE_BALANCE_MALFORMED,
            "op_low_reserve": _CC.CREATE_CLAIMABLE_BALANCE_LOW_RESERVE,
            "op_no_trust": _CC.CREATE_CLAIMABLE_BALANCE_NO_TRUST,
            "op_not_authorized": _CC.CREATE_CLAIMABLE_BALANCE_NOT_AUTHORIZED,
            "op_underfunded": _CC.CREATE_CLAIMABLE_BALANCE_UNDERFUNDED,
        },
    ),
    "claim_claimable_balance": (
        x.OperationType.CLAIM_CLAIMABLE_BALANCE,
        "claim_claimable_balance_result",
        x.ClaimClaimableBalanceResult,
        {
            "op_success": _CL.CLAIM_CLAIMABLE_BALANCE_SUCCESS,
            "op_does_not_exist": _CL.CLAIM_CLAIMABLE_BALANCE_DOES_NOT_EXIST,
            "op_cannot_claim": _CL.CLAIM_CLAIMABLE_BALANCE_CANNOT_CLAIM,
            "op_line_full": _CL.CLAIM_CLAIMABLE_BALANCE_LINE_FULL,
            "op_no_trust": _CL.CLAIM_CLAIMABLE_BALANCE_NO_TRUST,
            "op_not_authorized": _CL.CLAIM_CLAIMABLE_BALANCE_NOT_AUTHORIZED,
        },
    ),
}


@dataclass(frozen=True, slots=True)
class OpResult:
    """One operation's outcome: its kind (`payment`, ..., or `other`) and Horizon's code."""

    kind: str
    code: str
    #: what a successful operation's result carries: a new claimable balance's id (hex)
    detail: str = ""


@cache
def _operation_result(kind: str, code: str, detail: str = "") -> x.OperationResult:
    # Cached: a 100-payment envelope reuses one object per distinct (kind, code).
    if code in _GENERIC_OP_CODES:
        return x.OperationResult(code=_GENERIC_OP_CODES[code])
    op_type, field, result_cls, codes = _OP_CODES[kind]
    if kind == "create_claimable_balance" and code == "op_success":
        inner = result_cls(
            code=codes[code], balance_id=x.ClaimableBalanceID.from_xdr_bytes(bytes.fromhex(detail or "00" * 36))
        )
    else:
        inner = result_cls(code=codes[code])
    return x.OperationResult(code=x.OperationResultCode.opINNER, tr=x.OperationResultTr(type=op_type, **{field: inner}))


def _result_body(tx_code: str, ops: list[OpResult] | None) -> tuple[x.TransactionResultCode, list | None]:
    code = TX_CODES[tx_code]
    if tx_code in ("tx_success", "tx_failed"):
        return code, [_operation_result(op.kind, op.code, op.detail) for op in ops or []]
    return code, None


def transaction_result_xdr(
    *,
    fee_charged_stroops: int,
    tx_code: str,
    ops: list[OpResult] | None = None,
    inner_hash: bytes | None = None,
    inner_fee_charged_stroops: int = 0,
) -> str:
    """Base64 TransactionResult. With `inner_hash`, `tx_code` is the inner transaction's code
    and the outer one is tx_fee_bump_inner_success/failed, as stellar-core writes fee bumps."""
    if inner_hash is not None and tx_code in ("tx_success", "tx_failed"):
        code, results = _result_body(tx_code, ops)
        inner = x.InnerTransactionResult(
            fee_charged=x.Int64(inner_fee_charged_stroops),
            result=x.InnerTransactionResultResult(code=code, results=results),
            ext=x.InnerTransactionResultExt(0),
        )
        outer_code = TX_CODES["tx_fee_bump_inner_success" if tx_code == "tx_success" else "tx_fee_bump_inner_failed"]
        result = x.TransactionResultResult(
            code=outer_code,
            inner_result_pair=x.InnerTransactionResultPair(transaction_hash=x.Hash(inner_hash), result=inner),
        )
    else:
        code, results = _result_body(tx_code, ops)
        result = x.TransactionResultResult(code=code, results=results)
    return x.TransactionResult(
        fee_charged=x.Int64(fee_charged_stroops), result=result, ext=x.TransactionResultExt(0)
    ).to_xdr()


def result_codes(tx_code: str, ops: list[OpResult] | None, *, fee_bump: bool) -> dict:
    """`extras.result_codes` as Horizon renders it."""
    if fee_bump and tx_code in ("tx_success", "tx_failed"):
        codes: dict = {
            "transaction": "tx_fee_bump_inner_success" if tx_code == "tx_success" else "tx_fee_bump_inner_failed",
            "inner_transaction": tx_code,
        }
    else:
        codes = {"transaction": tx_code}
    if ops and tx_code in ("tx_success", "tx_failed"):
        codes["operations"] = [op.code for op in ops]
    return codes
