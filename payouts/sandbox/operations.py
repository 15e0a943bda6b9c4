"""Operations: their kinds and thresholds, the checks core makes without the ledger, Horizon's
operation records, and the applier that changes accounts and reports effects."""

from __future__ import annotations

import base64
from collections.abc import Callable
from decimal import Decimal

from stellar_sdk import (
    AllowTrust,
    Asset,
    ChangeTrust,
    ClaimClaimableBalance,
    CreateAccount,
    CreateClaimableBalance,
    ManageData,
    Operation,
    Payment,
    SetOptions,
    SetTrustLineFlags,
)
from stellar_sdk.signer_key import SignerKeyType

from payouts.sandbox import claimable
from payouts.sandbox.entries import (
    AUTH_CLAWBACK_ENABLED,
    AUTH_IMMUTABLE,
    AUTH_REQUIRED,
    AUTH_REVOCABLE,
    TL_AUTHORIZED,
    TL_AUTHORIZED_TO_MAINTAIN_LIABILITIES,
    TL_CLAWBACK_ENABLED,
    Account,
    Trustline,
    format_amount,
)
from payouts.sandbox.network import (
    BASE_RESERVE_STROOPS,
    INT64_MAX,
    MAX_SIGNERS,
)

# --------------------------------------------------------------------------------------------
# Operations


def asset_key(asset: Asset) -> tuple[str, str] | None:
    if asset.is_native() or asset.issuer is None:
        return None
    return (asset.code, asset.issuer)


def op_kind(op: Operation) -> str:
    return {
        Payment: "payment",
        CreateAccount: "create_account",
        ChangeTrust: "change_trust",
        AllowTrust: "allow_trust",
        SetTrustLineFlags: "set_trust_line_flags",
        SetOptions: "set_options",
        ManageData: "manage_data",
        CreateClaimableBalance: "create_claimable_balance",
        ClaimClaimableBalance: "claim_claimable_balance",
    }.get(type(op), "other")


def op_threshold(op: Operation) -> str:
    """Which of the source's thresholds an operation needs (stellar-core's getThresholdLevel)."""
    if isinstance(op, (AllowTrust, SetTrustLineFlags, ClaimClaimableBalance)):
        return "low"
    if isinstance(op, SetOptions) and (
        op.master_weight is not None
        or op.low_threshold is not None
        or op.med_threshold is not None
        or op.high_threshold is not None
        or op.signer is not None
    ):
        return "high"
    return "med"


def units(amount_text: str) -> int:
    """Back to the envelope's int64. The SDK turned it into a decimal string exactly, and the
    SDK's own `to_xdr_amount` refuses negatives, which a hostile envelope may carry."""
    return int(Decimal(amount_text).scaleb(7))


def static_op_check(op: Operation, source_id: str) -> str | None:
    """Malformations core finds without looking at the ledger (doCheckValid)."""
    kind = op_kind(op)
    if kind == "other":
        return "op_not_supported"
    if isinstance(op, Payment):
        if units(op.amount) <= 0:
            return "op_malformed"
    elif isinstance(op, CreateAccount):
        if units(op.starting_balance) < 0 or op.destination == source_id:
            return "op_malformed"
    elif isinstance(op, ChangeTrust):
        if not isinstance(op.asset, Asset) or op.asset.is_native() or units(op.limit) < 0:
            return "op_malformed"
        if op.asset.issuer == source_id:
            return "op_malformed"
    elif isinstance(op, SetTrustLineFlags):
        if op.asset.is_native() or op.asset.issuer != source_id or op.trustor == source_id:
            return "op_malformed"
    elif isinstance(op, AllowTrust):
        if op.trustor == source_id:
            return "op_self_not_allowed"
    elif isinstance(op, (CreateClaimableBalance, ClaimClaimableBalance)):
        return claimable.static_check(op, units)
    elif isinstance(op, ManageData):
        # stellar-core: a name of 1 to 64 bytes without control or non-ASCII characters
        name = op.data_name.encode()
        if not 1 <= len(name) <= 64 or any(byte < 0x20 or byte > 0x7E for byte in name):
            return "op_data_invalid_name"
    elif isinstance(op, SetOptions):
        for value in (op.master_weight, op.low_threshold, op.med_threshold, op.high_threshold):
            if value is not None and not 0 <= value <= 255:
                return "op_threshold_out_of_range"
        if op.signer is not None:
            key = op.signer.signer_key
            if key.signer_key_type != SignerKeyType.SIGNER_KEY_TYPE_ED25519 or op.signer.weight > 255:
                return "op_bad_signer"
            if key.encoded_signer_key == source_id:
                return "op_bad_signer"
        if (op.set_flags or 0) & (op.clear_flags or 0):
            return "op_bad_flags"
        if ((op.set_flags or 0) | (op.clear_flags or 0)) & ~0xF:
            return "op_unknown_flag"
    return None


#: Horizon's effect type numbers (protocols/horizon/effects).
EFFECT_TYPES = {
    "account_created": 0,
    "account_removed": 1,
    "account_credited": 2,
    "account_debited": 3,
    "account_thresholds_updated": 4,
    "account_home_domain_updated": 5,
    "account_flags_updated": 6,
    "signer_created": 10,
    "signer_removed": 11,
    "signer_updated": 12,
    "trustline_created": 20,
    "trustline_removed": 21,
    "trustline_updated": 22,
    "trustline_flags_updated": 26,
    "data_created": 40,
    "data_removed": 41,
    "data_updated": 42,
    "claimable_balance_created": 50,
    "claimable_balance_claimant_created": 51,
    "claimable_balance_claimed": 52,
    "claimable_balance_sponsorship_created": 69,
    "claimable_balance_sponsorship_removed": 71,
}

_OP_TYPE_I = {
    "create_account": 0,
    "payment": 1,
    "set_options": 5,
    "change_trust": 6,
    "allow_trust": 7,
    "manage_data": 10,
    "create_claimable_balance": 14,
    "claim_claimable_balance": 15,
    "set_trust_line_flags": 21,
}

_FLAG_NAMES = {1: "auth_required", 2: "auth_revocable", 4: "auth_immutable", 8: "auth_clawback_enabled"}
_TL_FLAG_NAMES = {1: "authorized", 2: "authorized_to_maintain_liabilites", 4: "clawback_enabled"}


def _flag_lists(value: int, names: dict[int, str]) -> tuple[list[int], list[str]]:
    bits = [bit for bit in names if value & bit]
    return bits, [names[bit] for bit in bits]


def operation_doc(op: Operation, source_id: str) -> tuple[dict, tuple[str, ...]]:
    """Horizon's type-specific fields of an operation record, and the accounts it concerns."""
    kind = op_kind(op)
    doc: dict = {"type": kind, "type_i": _OP_TYPE_I.get(kind, -1)}
    parties: tuple[str, ...] = (source_id,)
    if isinstance(op, Payment):
        destination = op.destination.account_id
        doc.update(
            {"from": source_id, "to": destination, "amount": format_amount(units(op.amount)), **asset_fields(op.asset)}
        )
        parties = (source_id, destination)
    elif isinstance(op, CreateAccount):
        doc.update(
            {
                "account": op.destination,
                "funder": source_id,
                "starting_balance": format_amount(units(op.starting_balance)),
            }
        )
        parties = (source_id, op.destination)
    elif isinstance(op, ChangeTrust) and isinstance(op.asset, Asset):
        doc.update({**asset_fields(op.asset), "limit": format_amount(units(op.limit)), "trustor": source_id})
        if not op.asset.is_native():
            doc["trustee"] = op.asset.issuer
    elif isinstance(op, AllowTrust):
        authorize = int(op.authorize)
        doc.update(
            {
                "asset_type": "credit_alphanum4" if len(op.asset_code) <= 4 else "credit_alphanum12",
                "asset_code": op.asset_code,
                "asset_issuer": source_id,
                "trustee": source_id,
                "trustor": op.trustor,
                "authorize": bool(authorize & TL_AUTHORIZED),
                "authorize_to_maintain_liabilities": bool(authorize & TL_AUTHORIZED_TO_MAINTAIN_LIABILITIES),
            }
        )
        parties = (source_id, op.trustor)
    elif isinstance(op, SetTrustLineFlags):
        doc.update({**asset_fields(op.asset), "trustor": op.trustor})
        for name, value in (("set_flags", int(op.set_flags or 0)), ("clear_flags", int(op.clear_flags or 0))):
            if value:
                doc[name], doc[f"{name}_s"] = _flag_lists(value, _TL_FLAG_NAMES)
        parties = (source_id, op.trustor)
    elif isinstance(op, (CreateClaimableBalance, ClaimClaimableBalance)):
        fields, parties = claimable.operation_doc(op, source_id, units)
        doc.update(fields)
    elif isinstance(op, ManageData):
        doc.update({"name": op.data_name, "value": _b64(op.data_value) if op.data_value is not None else ""})
    elif isinstance(op, SetOptions):
        if op.home_domain is not None:
            doc["home_domain"] = op.home_domain
        for name, weight in (
            ("master_key_weight", op.master_weight),
            ("low_threshold", op.low_threshold),
            ("med_threshold", op.med_threshold),
            ("high_threshold", op.high_threshold),
        ):
            if weight is not None:
                doc[name] = weight
        if op.signer is not None:
            doc["signer_key"] = op.signer.signer_key.encoded_signer_key
            doc["signer_weight"] = op.signer.weight
        for name, value in (("set_flags", int(op.set_flags or 0)), ("clear_flags", int(op.clear_flags or 0))):
            if value:
                doc[name], doc[f"{name}_s"] = _flag_lists(value, _FLAG_NAMES)
    return doc, parties


class OperationApplier:
    """Applies one operation against the live state and returns its result code; the effects
    of a successful operation wait in `take_effects()`."""

    def __init__(
        self,
        load: Callable[[str], Account | None],
        touch: Callable[[Account], Account],
        create: Callable[[Account], None],
        seq: int,
        now_s: int,
        *,
        tx_source_id: str = "",
        tx_sequence: int = 0,
        find_sponsor: Callable[[str], str | None] = lambda _balance_id: None,
    ) -> None:
        self.load, self.touch, self.create = load, touch, create
        self.seq, self.now_s = seq, now_s
        self._effects: list[dict] = []
        # a claimable balance's id is made of the transaction's source and sequence and the
        # operation's index in it
        self.tx_source_id, self.tx_sequence, self.op_index = tx_source_id, tx_sequence, -1
        #: the id of the balance the last successful CreateClaimableBalance made
        self.created_balance_id = ""
        self.claimable = claimable.ClaimableApplier(load, touch, find_sponsor, self._effect, units, seq, now_s)

    def take_effects(self) -> list[dict]:
        effects, self._effects = self._effects, []
        return effects

    def _effect(self, account_id: str, kind: str, **fields) -> None:
        self._effects.append({"account": account_id, "type": kind, "type_i": EFFECT_TYPES[kind], **fields})

    def __call__(self, op: Operation, source_id: str, signed_by: set[str]) -> str:
        self._effects = []
        self.op_index += 1
        self.created_balance_id = ""
        code = self._apply(op, source_id, signed_by)
        if code != "op_success":
            self._effects = []
        return code

    def _apply(self, op: Operation, source_id: str, signed_by: set[str]) -> str:
        source = self.load(source_id)
        if source is None:
            return "op_no_source_account"
        code = static_op_check(op, source_id)
        if code is not None:
            return code
        level = op_threshold(op)
        threshold = {"low": source.low_threshold, "med": source.med_threshold, "high": source.high_threshold}[level]
        if not source.meets(threshold, signed_by):
            return "op_bad_auth"
        if isinstance(op, Payment):
            return self.payment(op, source)
        if isinstance(op, CreateAccount):
            return self.create_account(op, source)
        if isinstance(op, ChangeTrust):
            return self.change_trust(op, source)
        if isinstance(op, SetTrustLineFlags):
            set_flags = int(op.set_flags or 0)
            clear_flags = int(op.clear_flags or 0)
            return self.trust_flags(source, op.trustor, op.asset.code, set_flags, clear_flags)
        if isinstance(op, AllowTrust):
            authorize = int(op.authorize)
            return self.trust_flags(
                source,
                op.trustor,
                op.asset_code,
                authorize,
                (TL_AUTHORIZED | TL_AUTHORIZED_TO_MAINTAIN_LIABILITIES) & ~authorize,
                allow_trust=True,
            )
        if isinstance(op, SetOptions):
            return self.set_options(op, source)
        if isinstance(op, ManageData):
            return self.manage_data(op, source)
        if isinstance(op, CreateClaimableBalance):
            balance_id = claimable.balance_id_hex(self.tx_source_id, self.tx_sequence, self.op_index)
            code = self.claimable.create(op, source, balance_id)
            if code == "op_success":
                self.created_balance_id = balance_id
            return code
        if isinstance(op, ClaimClaimableBalance):
            return self.claimable.claim(op, source)
        return "op_not_supported"

    def payment(self, op: Payment, source: Account) -> str:
        amount_units = units(op.amount)
        destination_id = op.destination.account_id
        asset = op.asset
        destination = self.load(destination_id)
        key = asset_key(asset)
        moved = {"amount": format_amount(amount_units), **asset_fields(asset)}
        if key is None:
            if destination is None:
                return "op_no_destination"
            if source.available_stroops() < amount_units:
                return "op_underfunded"
            if destination.account_id != source.account_id and destination.balance_stroops > INT64_MAX - amount_units:
                return "op_line_full"
            self.touch(source).balance_stroops -= amount_units
            self.touch(destination).balance_stroops += amount_units
            self._effect(destination_id, "account_credited", **moved)
            self._effect(source.account_id, "account_debited", **moved)
            return "op_success"
        _code, issuer_id = key
        if source.account_id != issuer_id:
            line = source.trustlines.get(key)
            if line is None:
                return "op_src_no_trust"
            if not line.authorized:
                return "op_src_not_authorized"
            if line.balance_units < amount_units:
                return "op_underfunded"
        if destination is None:
            return "op_no_destination"
        if destination.account_id != issuer_id:
            dest_line = destination.trustlines.get(key)
            if dest_line is None:
                return "op_no_trust"
            if not dest_line.authorized:
                return "op_not_authorized"
            if dest_line.balance_units + amount_units > dest_line.limit_units:
                return "op_line_full"
        if self.load(issuer_id) is None:
            return "op_no_issuer"
        if source.account_id != issuer_id:
            line = self.touch(source).trustlines[key]
            line.balance_units -= amount_units
            line.last_modified_ledger = self.seq
        if destination.account_id != issuer_id:
            dest_line = self.touch(destination).trustlines[key]
            dest_line.balance_units += amount_units
            dest_line.last_modified_ledger = self.seq
        self._effect(destination_id, "account_credited", **moved)
        self._effect(source.account_id, "account_debited", **moved)
        return "op_success"

    def create_account(self, op: CreateAccount, source: Account) -> str:
        starting_stroops = units(op.starting_balance)
        if self.load(op.destination) is not None:
            return "op_already_exists"
        if starting_stroops < 2 * BASE_RESERVE_STROOPS:
            return "op_low_reserve"
        if source.available_stroops() < starting_stroops:
            return "op_underfunded"
        self.touch(source).balance_stroops -= starting_stroops
        # A new account's sequence starts at its creation ledger << 32, as on Stellar.
        self.create(
            Account(
                op.destination,
                starting_stroops,
                self.seq << 32,
                last_modified_ledger=self.seq,
                last_modified_time_s=self.now_s,
            )
        )
        amount = format_amount(starting_stroops)
        self._effect(op.destination, "account_created", starting_balance=amount)
        self._effect(source.account_id, "account_debited", asset_type="native", amount=amount)
        self._effect(op.destination, "signer_created", weight=1, public_key=op.destination, key="")
        return "op_success"

    def change_trust(self, op: ChangeTrust, source: Account) -> str:
        asset = op.asset
        if not isinstance(asset, Asset) or asset.issuer is None:  # refused by static_op_check
            return "op_malformed"
        issuer_id: str = asset.issuer
        key = (asset.code, issuer_id)
        limit_units = units(op.limit)
        line = source.trustlines.get(key)
        fields = {**asset_fields(asset), "limit": format_amount(limit_units)}
        if limit_units == 0:
            if line is None:
                return "op_invalid_limit"
            if line.balance_units > 0:
                return "op_invalid_limit"
            del self.touch(source).trustlines[key]
            self._effect(source.account_id, "trustline_removed", **fields)
            return "op_success"
        if line is not None:
            if limit_units < line.balance_units:
                return "op_invalid_limit"
            line = self.touch(source).trustlines[key]
            line.limit_units, line.last_modified_ledger = limit_units, self.seq
            self._effect(source.account_id, "trustline_updated", **fields)
            return "op_success"
        issuer = self.load(issuer_id)
        if issuer is None:
            return "op_no_issuer"
        if source.available_stroops() < BASE_RESERVE_STROOPS:
            return "op_low_reserve"
        flags = 0 if issuer.flags & AUTH_REQUIRED else TL_AUTHORIZED
        if issuer.flags & AUTH_CLAWBACK_ENABLED:
            flags |= TL_CLAWBACK_ENABLED
        self.touch(source).trustlines[key] = Trustline(asset.code, issuer_id, 0, limit_units, flags, self.seq)
        self._effect(source.account_id, "trustline_created", **fields)
        return "op_success"

    def trust_flags(
        self,
        issuer: Account,
        trustor_id: str,
        asset_code: str,
        set_flags: int,
        clear_flags: int,
        *,
        allow_trust: bool = False,
    ) -> str:
        auth_bits = TL_AUTHORIZED | TL_AUTHORIZED_TO_MAINTAIN_LIABILITIES
        if allow_trust and not issuer.flags & AUTH_REQUIRED and not issuer.flags & AUTH_REVOCABLE:
            return "op_not_required"
        trustor = self.load(trustor_id)
        line = trustor.trustlines.get((asset_code, issuer.account_id)) if trustor else None
        if trustor is None or line is None:
            return "op_no_trust"
        new_flags = (line.flags & ~clear_flags) | set_flags
        if new_flags & auth_bits == auth_bits:
            return "op_invalid_state" if not allow_trust else "op_malformed"
        revoking = (line.flags & TL_AUTHORIZED) and not new_flags & TL_AUTHORIZED
        if revoking and not issuer.flags & AUTH_REVOCABLE:
            return "op_cant_revoke"
        line = self.touch(trustor).trustlines[(asset_code, issuer.account_id)]
        line.flags, line.last_modified_ledger = new_flags, self.seq
        self._effect(
            issuer.account_id,
            "trustline_flags_updated",
            trustor=trustor_id,
            asset_type="credit_alphanum4" if len(asset_code) <= 4 else "credit_alphanum12",
            asset_code=asset_code,
            asset_issuer=issuer.account_id,
            authorized_flag=bool(new_flags & TL_AUTHORIZED),
            authorized_to_maintain_liabilites_flag=bool(new_flags & TL_AUTHORIZED_TO_MAINTAIN_LIABILITIES),
            clawback_enabled_flag=bool(new_flags & TL_CLAWBACK_ENABLED),
        )
        return "op_success"

    def set_options(self, op: SetOptions, source: Account) -> str:
        set_flags, clear_flags = int(op.set_flags or 0), int(op.clear_flags or 0)
        if (set_flags or clear_flags) and source.flags & AUTH_IMMUTABLE:
            return "op_cant_change"
        signers = dict(source.signers)
        signer_effect: tuple[str, str, int] | None = None
        if op.signer is not None:
            key = op.signer.signer_key.encoded_signer_key
            if op.signer.weight == 0:
                if signers.pop(key, None) is not None:
                    signer_effect = ("signer_removed", key, 0)
            else:
                if key not in signers:
                    if len(signers) >= MAX_SIGNERS:
                        return "op_too_many_signers"
                    if source.available_stroops() < BASE_RESERVE_STROOPS:
                        return "op_low_reserve"
                signer_effect = ("signer_updated" if key in signers else "signer_created", key, op.signer.weight)
                signers[key] = op.signer.weight
        if op.home_domain is not None and len(op.home_domain.encode()) > 32:
            return "op_invalid_home_domain"
        account = self.touch(source)
        account_id = account.account_id
        old_flags = account.flags
        account.signers = signers
        account.flags = (account.flags & ~clear_flags) | set_flags
        if op.home_domain is not None:
            account.home_domain = op.home_domain
            self._effect(account_id, "account_home_domain_updated", home_domain=op.home_domain)
        thresholds = {}
        for name, value in (
            ("low_threshold", op.low_threshold),
            ("med_threshold", op.med_threshold),
            ("high_threshold", op.high_threshold),
        ):
            if value is not None:
                setattr(account, name, value)
                thresholds[name] = value
        if thresholds:
            self._effect(account_id, "account_thresholds_updated", **thresholds)
        if account.flags != old_flags:
            changed = {
                f"{name}_flag": bool(account.flags & bit)
                for bit, name in _FLAG_NAMES.items()
                if (account.flags ^ old_flags) & bit
            }
            self._effect(account_id, "account_flags_updated", **changed)
        if op.master_weight is not None:
            account.master_weight = op.master_weight
            kind = "signer_removed" if op.master_weight == 0 else "signer_updated"
            self._effect(account_id, kind, weight=op.master_weight, public_key=account_id, key="")
        if signer_effect is not None:
            kind, key, weight = signer_effect
            self._effect(account_id, kind, weight=weight, public_key=key, key="")
        return "op_success"

    def manage_data(self, op: ManageData, source: Account) -> str:
        """Set, change or delete a data entry (stellar-core's ManageDataOpFrame): a new entry
        needs one more base reserve above the balance; deleting a missing one is refused."""
        name = op.data_name
        if op.data_value is None:
            if name not in source.data:
                return "op_data_name_not_found"
            del self.touch(source).data[name]
            self._effect(source.account_id, "data_removed", name=name)
            return "op_success"
        if name not in source.data:
            if source.balance_stroops < source.min_balance_stroops(extra_subentries=1):
                return "op_low_reserve"
            self.touch(source).data[name] = op.data_value
            self._effect(source.account_id, "data_created", name=name, value=_b64(op.data_value))
            return "op_success"
        self.touch(source).data[name] = op.data_value
        self._effect(source.account_id, "data_updated", name=name, value=_b64(op.data_value))
        return "op_success"


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def asset_fields(asset: Asset) -> dict:
    if asset.is_native():
        return {"asset_type": "native"}
    return {"asset_type": asset.type, "asset_code": asset.code, "asset_issuer": asset.issuer}
