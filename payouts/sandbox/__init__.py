"""The sandbox Stellar network: a loopback Horizon-compatible server (records, paged
collections, effects, error documents, server-sent events) backed by a ledger model that
validates real signed envelopes. Used by the demo, the tests and operators' rehearsals with
any Stellar client (checked with the JavaScript and Python SDKs)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from payouts.sandbox.network import SANDBOX_NETWORK_PASSPHRASE, root_keypair

if TYPE_CHECKING:
    from payouts.sandbox.server import SandboxConfig, SandboxServer, running_sandbox

__all__ = ["SANDBOX_NETWORK_PASSPHRASE", "SandboxConfig", "SandboxServer", "root_keypair", "running_sandbox"]


def __getattr__(name: str) -> Any:
    # the server (and the HTTP stack under it) loads on first use: `payouts sandbox --help` needs
    # only the passphrase
    if name in ("SandboxConfig", "SandboxServer", "running_sandbox"):
        from payouts.sandbox import server

        return getattr(server, name)
    raise AttributeError(f"module 'payouts.sandbox' has no attribute {name!r}")
