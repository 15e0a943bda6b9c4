"""Claimable balances: CreateClaimableBalance and ClaimClaimableBalance as stellar-core applies
them, their ids as core computes them, and Horizon's records of them.

A balance lives on the account that created it (its sponsor), which holds one base reserve per
claimant until the balance is claimed. Claimants' predicates are checked against the closing
ledger's time.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from stellar_sdk import Asset, ClaimClaimableBalance, ClaimPredicate, CreateClaimableBalance, Keypair
from stellar_sdk import xdr as x
from stellar_sdk.operation.create_claimable_balance import ClaimPredicateType

from payouts.sandbox.entries import INT64_MAX, Account, ClaimableBalance, format_amount, rfc3339
from payouts.sandbox.network import BASE_RESERVE_STROOPS

#: stellar-core's limits on claimants and on a predicate's nesting
MAX_CLAIMANTS = 10
MAX_PREDICATE_DEPTH = 4


def balance_id_hex(tx_source_id: str, tx_sequence: int, op_index: int) -> str:
    """The id core gives the balance of operation `op_index` (from 0) of a transaction: the
    sha256 of the operation-id preimage, as Horizon shows it (type 0 as 00000000, then hex)."""
    preimage = x.HashIDPreimage(
        type=x.EnvelopeType.ENVELOPE_TYPE_OP_ID,
        operation_id=x.HashIDPreimageOperationID(
            source_account=Keypair.from_public_key(tx_source_id).xdr_account_id(),
            seq_num=x.SequenceNumber(x.Int64(tx_sequence)),
            op_num=x.Uint32(op_index),
        ),
    )
    return "00000000" + hashlib.sha256(preimage.to_xdr_bytes()).hexdigest()


def canonical_balance_id(text: str) -> str | None:
    """Horizon accepts the id in hex with its type prefix; anything else names no balance."""
    text = text.lower()
    if len(text) != 72 or not text.startswith("00000000"):
        return None
    try:
        bytes.fromhex(text)
    except ValueError:
        return None
    return text


# ---- predicates ----


def predicate_valid(predicate: ClaimPredicate, depth: int = 1) -> bool:
    """core's validation of a predicate: bounded nesting, no negative times."""
    if depth > MAX_PREDICATE_DEPTH:
        return False
    kind = predicate.claim_predicate_type
    if kind in (ClaimPredicateType.CLAIM_PREDICATE_AND, ClaimPredicateType.CLAIM_PREDICATE_OR):
        group = predicate.and_predicates if kind == ClaimPredicateType.CLAIM_PREDICATE_AND else predicate.or_predicates
        return group is not None and predicate_valid(group.left, depth + 1) and predicate_valid(group.right, depth + 1)
    if kind == ClaimPredicateType.CLAIM_PREDICATE_NOT:
        return predicate.not_predicate is not None and predicate_valid(predicate.not_predicate, depth + 1)
    if kind == ClaimPredicateType.CLAIM_PREDICATE_BEFORE_ABSOLUTE_TIME:
        return predicate.abs_before is not None and predicate.abs_before >= 0
    if kind == ClaimPredicateType.CLAIM_PREDICATE_BEFORE_RELATIVE_TIME:
        return predicate.rel_before is not None and predicate.rel_before >= 0
    return kind == ClaimPredicateType.CLAIM_PREDICATE_UNCONDITIONAL


def stored_predicate(predicate: ClaimPredicate, close_time_s: int) -> dict:
    """The predicate as the ledger keeps it: a relative time becomes absolute at creation."""
    kind = predicate.claim_predicate_type
    if kind == ClaimPredicateType.CLAIM_PREDICATE_AND and predicate.and_predicates is not None:
        group = predicate.and_predicates
        return {"and": [stored_predicate(group.left, close_time_s), stored_predicate(group.right, close_time_s)]}
    if kind == ClaimPredicateType.CLAIM_PREDICATE_OR and predicate.or_predicates is not None:
        group = predicate.or_predicates
        return {"or": [stored_predicate(group.left, close_time_s), stored_predicate(group.right, close_time_s)]}
    if kind == ClaimPredicateType.CLAIM_PREDICATE_NOT and predicate.not_predicate is not None:
        return {"not": stored_predicate(predicate.not_predicate, close_time_s)}
    if kind == ClaimPredicateType.CLAIM_PREDICATE_BEFORE_ABSOLUTE_TIME and predicate.abs_before is not None:
        return {"abs_before": predicate.abs_before}
    if kind == ClaimPredicateType.CLAIM_PREDICATE_BEFORE_RELATIVE_TIME and predicate.rel_before is not None:
        return {"abs_before": min(INT64_MAX, close_time_s + predicate.rel_before)}
    return {"unconditional": True}


def predicate_holds(predicate: dict, close_time_s: int) -> bool:
    if "and" in predicate:
        return all(predicate_holds(p, close_time_s) for p in predicate["and"])
    if "or" in predicate:
        return any(predicate_holds(p, close_time_s) for p in predicate["or"])
    if "not" in predicate:
        return not predicate_holds(predicate["not"], close_time_s)
    if "abs_before" in predicate:
        return close_time_s < predicate["abs_before"]
    return True


def horizon_predicate(predicate: dict) -> dict:
    """Horizon's JSON of a stored predicate (absolute times as RFC 3339 and as epoch text)."""
    if "and" in predicate:
        return {"and": [horizon_predicate(p) for p in predicate["and"]]}
    if "or" in predicate:
        return {"or": [horizon_predicate(p) for p in predicate["or"]]}
    if "not" in predicate:
        return {"not": horizon_predicate(predicate["not"])}
    if "abs_before" in predicate:
        return {"abs_before": rfc3339(predicate["abs_before"]), "abs_before_epoch": str(predicate["abs_before"])}
    return {"unconditional": True}


def _op_predicate(predicate: ClaimPredicate) -> dict:
    """An operation record's predicate, as submitted (Horizon shows rel_before as given)."""
    kind = predicate.claim_predicate_type
    if kind == ClaimPredicateType.CLAIM_PREDICATE_AND and predicate.and_predicates is not None:
        return {"and": [_op_predicate(predicate.and_predicates.left), _op_predicate(predicate.and_predicates.right)]}
    if kind == ClaimPredicateType.CLAIM_PREDICATE_OR and predicate.or_predicates is not None:
        return {"or": [_op_predicate(predicate.or_predicates.left), _op_predicate(predicate.or_predicates.right)]}
    if kind == ClaimPredicateType.CLAIM_PREDICATE_NOT and predicate.not_predicate is not None:
        return {"not": _op_predicate(predicate.not_predicate)}
    if kind == ClaimPredicateType.CLAIM_PREDICATE_BEFORE_ABSOLUTE_TIME and predicate.abs_before is not None:
        return horizon_predicate({"abs_before": predicate.abs_before})
    if kind == ClaimPredicateType.CLAIM_PREDICATE_BEFORE_RELATIVE_TIME:
        return {"rel_before": str(predicate.rel_before)}
    return {"unconditional": True}


def asset_text(code: str, issuer: str) -> str:
    return f"{code}:{issuer}" if code else "native"


def _asset_of(asset: Asset) -> tuple[str, str]:
    return ("", "") if asset.is_native() or asset.issuer is None else (asset.code, asset.issuer)


# ---- checks without the ledger, and Horizon's operation records ----


def static_check(op: CreateClaimableBalance | ClaimClaimableBalance, units: Callable[[str], int]) -> str | None:
    if isinstance(op, ClaimClaimableBalance):
        return None if canonical_balance_id(op.balance_id) else "op_malformed"
    destinations = [claimant.destination for claimant in op.claimants]
    if (
        units(op.amount) <= 0
        or not 1 <= len(destinations) <= MAX_CLAIMANTS
        or len(set(destinations)) != len(destinations)
        or not all(predicate_valid(claimant.predicate) for claimant in op.claimants)
    ):
        return "op_malformed"
    return None


def operation_doc(
    op: CreateClaimableBalance | ClaimClaimableBalance, source_id: str, units: Callable[[str], int]
) -> tuple[dict, tuple[str, ...]]:
    if isinstance(op, ClaimClaimableBalance):
        return {"balance_id": op.balance_id.lower(), "claimant": source_id}, (source_id,)
    code, issuer = _asset_of(op.asset)
    doc = {
        "asset": asset_text(code, issuer),
        "amount": format_amount(units(op.amount)),
        "claimants": [
            {"destination": claimant.destination, "predicate": _op_predicate(claimant.predicate)}
            for claimant in op.claimants
        ],
    }
    parties = (source_id, *(c.destination for c in op.claimants if c.destination != source_id))
    return doc, parties


# ---- apply ----


class ClaimableApplier:
    """The two operations against the live state; effects go to `effect(account, kind, **fields)`."""

    def __init__(
        self,
        load: Callable[[str], Account | None],
        touch: Callable[[Account], Account],
        find_sponsor: Callable[[str], str | None],
        effect: Callable[..., None],
        units: Callable[[str], int],
        seq: int,
        now_s: int,
    ) -> None:
        self.load, self.touch, self.find_sponsor, self.effect, self.units = load, touch, find_sponsor, effect, units
        self.seq, self.now_s = seq, now_s

    def create(self, op: CreateClaimableBalance, source: Account, balance_id: str) -> str:
        amount_units = self.units(op.amount)
        code, issuer = _asset_of(op.asset)
        reserve = len(op.claimants) * BASE_RESERVE_STROOPS
        if code and source.account_id != issuer:
            line = source.trustlines.get((code, issuer))
            if line is None:
                return "op_no_trust"
            if not line.authorized:
                return "op_not_authorized"
            if line.balance_units < amount_units:
                return "op_underfunded"
        elif not code and source.available_stroops() < amount_units:
            return "op_underfunded"
        # core takes the amount first, then the sponsor's reserves from what is left
        left_stroops = source.available_stroops() - (0 if code else amount_units)
        if left_stroops < reserve:
            return "op_low_reserve"
        account = self.touch(source)
        if code and account.account_id != issuer:
            line = account.trustlines[(code, issuer)]
            line.balance_units -= amount_units
            line.last_modified_ledger = self.seq
        elif not code:
            account.balance_stroops -= amount_units
        claimants = [(c.destination, stored_predicate(c.predicate, self.now_s)) for c in op.claimants]
        account.claimable[balance_id] = ClaimableBalance(
            balance_id, code, issuer, amount_units, claimants, self.seq, self.now_s
        )
        moved = {"balance_id": balance_id, "asset": asset_text(code, issuer), "amount": format_amount(amount_units)}
        self.effect(account.account_id, "claimable_balance_created", **moved)
        for destination, predicate in claimants:
            self.effect(
                destination, "claimable_balance_claimant_created", **moved, predicate=horizon_predicate(predicate)
            )
        self.effect(
            account.account_id,
            "claimable_balance_sponsorship_created",
            balance_id=balance_id,
            sponsor=account.account_id,
        )
        debit = {"amount": format_amount(amount_units)}
        debit.update({"asset_type": "native"} if not code else _credit_fields(code, issuer))
        self.effect(account.account_id, "account_debited", **debit)
        return "op_success"

    def claim(self, op: ClaimClaimableBalance, source: Account) -> str:
        balance_id = canonical_balance_id(op.balance_id) or ""
        sponsor_id = self.find_sponsor(balance_id)
        sponsor = self.load(sponsor_id) if sponsor_id else None
        balance = sponsor.claimable.get(balance_id) if sponsor else None
        if sponsor is None or balance is None:
            return "op_does_not_exist"
        predicate = dict(balance.claimants).get(source.account_id)
        if predicate is None or not predicate_holds(predicate, self.now_s):
            return "op_cannot_claim"
        code, issuer, amount_units = balance.asset_code, balance.asset_issuer, balance.amount_units
        if code and source.account_id != issuer:
            line = source.trustlines.get((code, issuer))
            if line is None:
                return "op_no_trust"
            if not line.authorized:
                return "op_not_authorized"
            if line.balance_units + amount_units > line.limit_units:
                return "op_line_full"
        elif not code and source.balance_stroops > INT64_MAX - amount_units:
            return "op_line_full"
        del self.touch(sponsor).claimable[balance_id]
        # the sponsor and the claimant may be one account: load it again after the change
        claimer = self.touch(self.load(source.account_id) or source)
        if code and claimer.account_id != issuer:
            line = claimer.trustlines[(code, issuer)]
            line.balance_units += amount_units
            line.last_modified_ledger = self.seq
        elif not code:
            claimer.balance_stroops += amount_units
        moved = {"balance_id": balance_id, "asset": asset_text(code, issuer), "amount": format_amount(amount_units)}
        self.effect(claimer.account_id, "claimable_balance_claimed", **moved)
        self.effect(
            sponsor.account_id,
            "claimable_balance_sponsorship_removed",
            balance_id=balance_id,
            former_sponsor=sponsor.account_id,
        )
        credit = {"amount": format_amount(amount_units)}
        credit.update({"asset_type": "native"} if not code else _credit_fields(code, issuer))
        self.effect(claimer.account_id, "account_credited", **credit)
        return "op_success"


def _credit_fields(code: str, issuer: str) -> dict:
    kind = "credit_alphanum4" if len(code) <= 4 else "credit_alphanum12"
    return {"asset_type": kind, "asset_code": code, "asset_issuer": issuer}


# ---- Horizon's resource ----


def record(base: str, balance: ClaimableBalance, sponsor_id: str) -> dict:
    balance_id = balance.balance_id
    return {
        "_links": {
            "self": {"href": f"{base}/claimable_balances/{balance_id}"},
            "transactions": {
                "href": f"{base}/claimable_balances/{balance_id}/transactions{{?cursor,limit,order}}",
                "templated": True,
            },
            "operations": {
                "href": f"{base}/claimable_balances/{balance_id}/operations{{?cursor,limit,order}}",
                "templated": True,
            },
        },
        "id": balance_id,
        "asset": asset_text(balance.asset_code, balance.asset_issuer),
        "amount": format_amount(balance.amount_units),
        "sponsor": sponsor_id,
        "last_modified_ledger": balance.last_modified_ledger,
        "last_modified_time": rfc3339(balance.last_modified_time_s),
        "claimants": [
            {"destination": destination, "predicate": horizon_predicate(predicate)}
            for destination, predicate in balance.claimants
        ],
        "flags": {"clawback_enabled": False},
        "paging_token": f"{balance.last_modified_ledger}-{balance_id}",
    }


def sort_key(balance: ClaimableBalance) -> tuple[int, str]:
    return (balance.last_modified_ledger, balance.balance_id)


def parse_cursor(text: str) -> tuple[int, str] | None:
    """A page cursor "<ledger>-<id>" as a sort key; None for the start. ValueError if malformed."""
    if not text:
        return None
    ledger_text, _, balance_id = text.partition("-")
    canonical = canonical_balance_id(balance_id)
    if not ledger_text.isdigit() or canonical is None:
        raise ValueError(text)
    return (int(ledger_text), canonical)


def all_balances(accounts: dict[str, Account]) -> list[tuple[ClaimableBalance, str]]:
    """Every live balance with its sponsor, in Horizon's order (last modified, then id)."""
    found = [(balance, account.account_id) for account in accounts.values() for balance in account.claimable.values()]
    return sorted(found, key=lambda item: sort_key(item[0]))


def matches(balance: ClaimableBalance, sponsor_id: str, query: dict[str, list[str]]) -> bool:
    """Horizon's filters: `claimant`, `sponsor`, `asset` (`native` or `CODE:ISSUER`)."""
    claimant = (query.get("claimant") or [""])[0]
    sponsor = (query.get("sponsor") or [""])[0]
    asset = (query.get("asset") or [""])[0]
    if claimant and claimant not in dict(balance.claimants):
        return False
    if sponsor and sponsor != sponsor_id:
        return False
    return not (asset and asset != asset_text(balance.asset_code, balance.asset_issuer))
