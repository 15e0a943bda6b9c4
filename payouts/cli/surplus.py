"""The payout account's TFT that no open run needs (two-tier), for `runs` and `reconcile`."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx

from payouts.cli.context import CliContext

if TYPE_CHECKING:  # the payment side (stellar_sdk) loads only in two-tier, where a line is due
    from payouts.runs.sweep import Surplus
    from payouts.stellar.horizon import HorizonClient


def payout_surplus_now(cli: CliContext, client: HorizonClient | None = None) -> Surplus | None:
    """The payout account's balance against open runs' needs; None in single tier."""
    settings = cli.settings
    if not settings.two_tier:
        return None
    from payouts.runs.sweep import payout_surplus
    from payouts.wiring import horizon, pay_config, signing_keys

    payout = signing_keys(settings).payout_account
    config = pay_config(settings, settings.network)
    if client is None:
        with horizon(settings) as own:
            account = own.account(payout)
    else:
        account = client.account(payout)
    line = account.trustline(config.asset_code, config.asset_issuer) if account is not None else None
    with cli.session() as session:
        return payout_surplus(session, line.balance_units if line is not None else 0)


def surplus_warning(cli: CliContext) -> str | None:
    """One line when the payout account holds TFT no open run needs (best effort: no line when
    the chain or the keys cannot be read)."""
    if not cli.settings.two_tier:
        return None
    from payouts.stellar.horizon import StellarError
    from payouts.stellar.keys import KeyFileError

    try:
        surplus = payout_surplus_now(cli)
    except (StellarError, KeyFileError, ValueError, OSError, httpx.HTTPError):
        return None
    if surplus is None or not surplus.surplus_units:
        return None
    return f"[bold yellow]warning:[/] {surplus.describe()}"
