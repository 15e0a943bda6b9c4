"""The sandbox network's identity: its passphrase, root account and protocol constants."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stellar_sdk import Keypair

# the service's own names for the network and its protocol values, re-exported for the sandbox
from payouts.stellar.network import BASE_FEE_STROOPS, BASE_RESERVE_STROOPS, SANDBOX_NETWORK_PASSPHRASE

__all__ = [
    "BASE_FEE_STROOPS",
    "BASE_RESERVE_STROOPS",
    "INT64_MAX",
    "MAX_OPS_PER_TX",
    "MAX_SIGNERS",
    "PROTOCOL_VERSION",
    "SANDBOX_NETWORK_PASSPHRASE",
    "TOTAL_COINS_STROOPS",
    "network_id",
    "root_keypair",
]

#: Lumens created at genesis, held by the root account (as on Stellar's own networks).
TOTAL_COINS_STROOPS = 100_000_000_000 * 10**7
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
