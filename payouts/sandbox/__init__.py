"""The sandbox Stellar network: a loopback Horizon-compatible server (records, paged
collections, effects, error documents, server-sent events) backed by a ledger model that
validates real signed envelopes. Used by the demo, the tests and operators' rehearsals with
any Stellar client (checked with the JavaScript and Python SDKs)."""

from payouts.sandbox.network import SANDBOX_NETWORK_PASSPHRASE, root_keypair
from payouts.sandbox.server import SandboxConfig, SandboxServer, running_sandbox

__all__ = ["SANDBOX_NETWORK_PASSPHRASE", "SandboxConfig", "SandboxServer", "root_keypair", "running_sandbox"]
