"""The payout account's TFT that no open run needs (two-tier), for `runs` and `reconcile`."""

from __future__ import annotations

import httpx

from payouts.cli.context import CliContext
from payouts.runs.sweep import Surplus, payout_surplus
from payouts.stellar.horizon import HorizonClient, StellarError
from payouts.stellar.keys import KeyFileError
from payouts.wiring import horizon, pay_config, signing_keys


def payout_surplus_now(cli: CliContext, client: HorizonClient | None = None) -> Surplus | None:
    """The payout account's balance against open runs' needs; None in single tier."""
    settings = cli.settings
    if not settings.two_tier:
        return None
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
    try:
        surplus = payout_surplus_now(cli)
    except (StellarError, KeyFileError, ValueError, OSError, httpx.HTTPError):
        return None
    if surplus is None or not surplus.surplus_units:
        return None
    return f"[bold yellow]warning:[/] {surplus.describe()}"
