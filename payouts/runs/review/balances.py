"""The payout and treasury accounts' TFT against what the run still has to pay, read from
Horizon when it answers; "unavailable" (with why) otherwise, never an error."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from payouts.stellar.horizon import AccountInfo

AccountLookup = Callable[[str], AccountInfo | None]


@dataclass(frozen=True)
class Balance:
    role: str  # "payout" or "treasury"
    account_id: str | None
    #: None when it could not be read (see `unavailable`)
    tft_units: int | None
    due_tft_units: int
    unavailable: str = ""

    @property
    def short_tft_units(self) -> int | None:
        """How much is missing to pay what is due (0: enough), None when unknown."""
        return None if self.tft_units is None else max(0, self.due_tft_units - self.tft_units)


def read_balances(
    lookup: AccountLookup | None,
    accounts: list[tuple[str, str | None]],
    due_tft_units: int,
    asset: tuple[str, str] | None,
) -> list[Balance]:
    balances = []
    for role, account_id in accounts:
        if account_id is None:
            balances.append(Balance(role, None, None, due_tft_units, "no account configured"))
            continue
        if lookup is None or asset is None:
            balances.append(Balance(role, account_id, None, due_tft_units, "Horizon not configured"))
            continue
        try:
            info = lookup(account_id)
        except Exception as exc:  # noqa: BLE001 - any failure to read is "unavailable", said plainly
            balances.append(
                Balance(role, account_id, None, due_tft_units, f"Horizon unreachable ({type(exc).__name__})")
            )
            continue
        if info is None:
            balances.append(Balance(role, account_id, None, due_tft_units, "the account does not exist on the network"))
            continue
        line = info.trustline(*asset)
        if line is None:
            balances.append(Balance(role, account_id, 0, due_tft_units, "no TFT trustline"))
            continue
        balances.append(Balance(role, account_id, line.balance_units, due_tft_units))
    return balances
