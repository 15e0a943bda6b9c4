"""The sandbox network's identity: its passphrase, root account and protocol constants."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stellar_sdk import Keypair

#: The sandbox is a network of its own: envelopes signed for testnet or mainnet fail here with
#: tx_bad_auth, and envelopes signed here are worthless anywhere else.
SANDBOX_NETWORK_PASSPHRASE = "TFT Payouts Sandbox ; 2025"

#: Lumens created at genesis, held by the root account (as on Stellar's own networks).
TOTAL_COINS_STROOPS = 100_000_000_000 * 10**7
BASE_FEE_STROOPS = 100
BASE_RESERVE_STROOPS = 5_000_000
MAX_OPS_PER_TX = 100
MAX_SIGNERS = 20
PROTOCOL_VERSION = 22
INT64_MAX = 2**63 - 1


def root_keypair(network_passphrase: str = SANDBOX_NETWORK_PASSPHRASE) -> Keypair:
    """The root account's key, derived from the passphrase as stellar-core's standalone network
    does, so any tool that knows the passphrase can fund accounts without a shared secret."""
    from stellar_sdk import Keypair

    return Keypair.from_raw_ed25519_seed(hashlib.sha256(network_passphrase.encode()).digest())


def network_id(network_passphrase: str) -> bytes:
    return hashlib.sha256(network_passphrase.encode()).digest()
