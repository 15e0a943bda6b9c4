"""The sandbox Stellar network: a loopback Horizon subset backed by a ledger model that
validates real signed envelopes. Used by the demo, the tests and operators' rehearsals."""

from payouts.sandbox.network import SANDBOX_NETWORK_PASSPHRASE, root_keypair
from payouts.sandbox.server import SandboxConfig, SandboxServer, running_sandbox

__all__ = ["SANDBOX_NETWORK_PASSPHRASE", "SandboxConfig", "SandboxServer", "root_keypair", "running_sandbox"]
