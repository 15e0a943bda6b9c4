"""Preflight: before anything is sent, the payout account must cover the run and every
destination must be able to receive (SPEC section 5).

A payout account short of TFT or XLM stops the run with a clear error; a destination that
cannot receive is held with its reason (`no_account`, `no_trustline`, `not_authorized`,
`line_full`), never silently dropped. So is one that cannot really receive a farmer's payout:
our own accounts (`payout_account`, `channel_account`, `treasury_account`), the TFT issuer
(`issuer_account`: a payment to it burns the TFT), and an account that requires a memo (SEP-29
`memo_required`, typical of exchange deposit addresses: the receipt-hash memo would lose the
farmer's attribution).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from payouts.money import format_tft
from payouts.stellar.horizon import HorizonClient, StellarError
from payouts.stellar.network import BASE_RESERVE_STROOPS


class PreflightError(StellarError):
    """The payout account cannot cover the run: the run stops before anything is sent."""


@dataclass(frozen=True)
class Asset:
    code: str
    issuer: str


def check_payout_account(
    client: HorizonClient,
    payout_account: str,
    asset: Asset,
    *,
    total_units: int,
    fee_budget_stroops: int,
    data_entries: Iterable[str] = (),
) -> None:
    """Raise PreflightError when the payout account lacks TFT for the total or XLM for fees.
    `data_entries`: entries the payer will write (the period's claim); each one it does not
    hold yet needs a base reserve more."""
    account = client.account(payout_account)
    if account is None:
        raise PreflightError(f"the payout account {payout_account} does not exist on this network")
    line = account.trustline(asset.code, asset.issuer)
    if line is None:
        raise PreflightError(f"the payout account {payout_account} has no {asset.code} trustline")
    if line.balance_units < total_units:
        raise PreflightError(
            f"the payout account holds {format_tft(line.balance_units)} {asset.code}, the run needs "
            f"{format_tft(total_units)} (short by {format_tft(total_units - line.balance_units)})"
        )
    # 2 base reserves plus one per subentry (trustlines, data entries, extra signers), and one
    # for each data entry the run will add (the payer's claim)
    new_entries = sum(1 for name in set(data_entries) if name not in account.data)
    reserve = BASE_RESERVE_STROOPS * (2 + account.subentries + new_entries)
    spendable = account.native_balance_stroops - reserve
    if spendable < fee_budget_stroops:
        raise PreflightError(
            f"the payout account has {format_tft(max(spendable, 0))} XLM above its reserve, fees "
            f"need up to {format_tft(fee_budget_stroops)} XLM"
        )


def check_destinations(
    client: HorizonClient,
    asset: Asset,
    amounts: Iterable[tuple[str, int]],
    own_accounts: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Destinations that cannot receive, with the reason; an absent key means it can.

    `amounts` are (destination, amount in units) pairs; a destination's total must fit under
    its trustline limit. `own_accounts` maps the scheduler's own accounts (payout, channels,
    treasury) to the reason a payment to them is held.
    """
    totals: dict[str, int] = defaultdict(int)
    for destination, amount_units in amounts:
        totals[destination] += amount_units
    refused = {asset.issuer: "issuer_account", **(own_accounts or {})}
    held: dict[str, str] = {}
    for destination, total_units in totals.items():
        if destination in refused:
            held[destination] = refused[destination]
            continue
        account = client.account(destination)
        if account is None:
            held[destination] = "no_account"
            continue
        if account.memo_required:
            held[destination] = "memo_required"
            continue
        line = account.trustline(asset.code, asset.issuer)
        if line is None:
            held[destination] = "no_trustline"
        elif not line.is_authorized:
            held[destination] = "not_authorized"
        elif line.room_units < total_units:
            held[destination] = "line_full"
    return held
