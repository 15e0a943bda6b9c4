"""Which Stellar network a setting names: passphrase and TFT issuer."""

from __future__ import annotations

import json
import math
from pathlib import Path

#: The sandbox is a network of its own: envelopes signed for testnet or mainnet fail there with
#: tx_bad_auth, and envelopes signed there are worthless anywhere else. Named here, with the
#: protocol constants below, because the service must know it; the sandbox takes it from here.
SANDBOX_NETWORK_PASSPHRASE = "TFT Payouts Sandbox ; 2025"
#: the network's minimum fee per operation and the reserve per account entry (protocol values)
BASE_FEE_STROOPS = 100
BASE_RESERVE_STROOPS = 5_000_000

TFT_CODE = "TFT"
TFT_ISSUERS = {
    "main": "GBOVQKJYHXRR3DX6NOX2RRYFRCUMSADGDESTDNBDS6CDVLGVESRTAC47",
    "test": "GA47YZA3PKFUZMPLQ3B5F2E3CJIB57TGGU7SPCQT2WAEYKN766PWIMB3",
}
PASSPHRASES = {
    # stellar_sdk's Network.PUBLIC_/TESTNET_NETWORK_PASSPHRASE, written out so that naming a
    # network does not load the SDK (tests/stellar/test_network.py compares them)
    "main": "Public Global Stellar Network ; September 2015",
    "test": "Test SDF Network ; September 2015",
    "dev": SANDBOX_NETWORK_PASSPHRASE,
}

#: the ledger close interval of the public networks (protocol target); the dev network (the
#: sandbox) closes at whatever interval it was started with, so it is measured there
DEFAULT_LEDGER_CLOSE_S = 5.0
LEDGER_CLOSE_S = {"main": DEFAULT_LEDGER_CLOSE_S, "test": DEFAULT_LEDGER_CLOSE_S}
#: the shortest close interval a measured one is taken as
MIN_LEDGER_CLOSE_S = 0.1


def bounded_ledger_close_s(measured: float | None) -> float:
    """A measured close interval kept within MIN_LEDGER_CLOSE_S..DEFAULT_LEDGER_CLOSE_S; the
    default when there is none, or it is not a positive number. The measurement comes from a
    Horizon that may lag or lie, and a transaction's ledger bound counts in it: far too short
    would keep a transaction's fate open for a very long time, far too long would make every
    transaction too late before it lands. Neither can pay twice (whether a transaction can still
    land is decided by the ledgers seen against its bound, never by time); the range keeps both
    away."""
    if measured is None or not math.isfinite(measured) or measured <= 0:
        return DEFAULT_LEDGER_CLOSE_S
    return min(max(measured, MIN_LEDGER_CLOSE_S), DEFAULT_LEDGER_CLOSE_S)


def tft_issuer(network: str, configured: str | None, accounts_file: Path | None) -> str:
    if configured:
        return configured
    if network in TFT_ISSUERS:
        return TFT_ISSUERS[network]
    if accounts_file is not None:
        return json.loads(Path(accounts_file).read_text())["asset"]["issuer"]
    raise ValueError("the sandbox's TFT issuer comes from PAYOUTS_STELLAR_ACCOUNTS_FILE or PAYOUTS_TFT_ISSUER")
