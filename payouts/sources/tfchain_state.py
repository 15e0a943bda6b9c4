"""Farming policies' minimal uptime from TFChain's state, `TfgridModule.FarmingPoliciesMap`, at
a given block, through an archive node's HTTP JSON-RPC and substrate-interface.

The indexer stores `FarmingPolicy.minimalUptime` but never writes it (null everywhere); the
chain holds it in `FarmingPoliciesMap: StorageMap<Blake2_128Concat, u32, FarmingPolicy<BlockNumber>,
ValueQuery>` (pallet-tfgrid). substrate-interface reads the runtime's metadata from the node
(`state_getMetadata`) to build the storage key and decode the value, so the layout follows the
runtime of that block. With `ValueQuery` a policy the chain does not have decodes as the
default (id 0): that is told apart from a real policy by its id.

substrate-interface is imported inside `read_minimal_uptimes` only: the CLI stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from payouts.sources.errors import SourceError


class TfchainStateError(SourceError):
    """The node could not give a policy's minimal uptime; names the node (no credentials) and the policy."""


@dataclass(frozen=True)
class ChainPolicyValues:
    #: policy id -> minimal uptime (permille of the period, as the chain stores it)
    minimal_uptime: dict[int, int]
    url: str  # without credentials
    block_height: int
    block_hash: str

    def source(self) -> dict:
        return {
            "rpc_url": self.url,
            "block_height": self.block_height,
            "block_hash": self.block_hash,
            "policies": sorted(self.minimal_uptime),
        }


def url_without_credentials(url: str) -> str:
    """The node's URL as it may be shown and recorded: no user, password or query (tokens)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a malformed URL)"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


def read_minimal_uptimes(url: str, policy_ids: list[int], *, block_height: int) -> ChainPolicyValues:
    """Each policy's `minimal_uptime` from `TfgridModule.FarmingPoliciesMap` at block `block_height`."""
    shown = url_without_credentials(url)
    names = ", ".join(str(i) for i in policy_ids)

    def fail(problem: str) -> TfchainStateError:
        return TfchainStateError(
            f"TFChain RPC {shown}: farming policy {names}: cannot read TfgridModule.FarmingPoliciesMap "
            f"at block {block_height}: {problem}"
        )

    # substrate-interface and its decoder raise many kinds of errors (requests', the node's
    # JSON-RPC errors, scalecodec's decoding errors): each becomes one line naming node and policy
    try:
        from substrateinterface import SubstrateInterface
        from substrateinterface.exceptions import StorageFunctionNotFound
    except ImportError as exc:  # pragma: no cover - a broken install
        raise fail(f"substrate-interface is not installed ({exc})") from None
    try:
        substrate = SubstrateInterface(url=url, auto_discover=False, use_remote_preset=False, auto_reconnect=False)
    except Exception as exc:  # noqa: BLE001 - see above
        raise fail(f"the node cannot be reached ({_words(exc, url, shown)})") from None
    try:
        try:
            block_hash = substrate.get_block_hash(block_height)
        except Exception as exc:  # noqa: BLE001
            raise fail(f"the node cannot be reached or refused the block hash ({_words(exc, url, shown)})") from None
        if not isinstance(block_hash, str) or not block_hash.startswith("0x"):
            raise fail(f"the node has no block {block_height} (an archive node keeps every block's state)")
        values: dict[int, int] = {}
        for policy_id in policy_ids:
            try:
                answer = substrate.query("TfgridModule", "FarmingPoliciesMap", [policy_id], block_hash=block_hash)
            except StorageFunctionNotFound as exc:
                raise fail(
                    f"the runtime's metadata at block {block_hash} has no such storage ({_words(exc, url, shown)})"
                ) from None
            except Exception as exc:  # noqa: BLE001
                raise fail(f"the node's answer could not be read or decoded ({_words(exc, url, shown)})") from None
            value = getattr(answer, "value", None)
            if not isinstance(value, dict) or type(value.get("minimal_uptime")) is not int:
                raise fail(f"policy {policy_id} decoded as {value!r}, without an integer minimal_uptime")
            if value.get("id") != policy_id:
                raise fail(f"the chain has no policy {policy_id} at block {block_hash} (the map's default came back)")
            values[policy_id] = value["minimal_uptime"]
    finally:
        try:
            substrate.close()
        except Exception:  # noqa: BLE001, S110 - closing a connection that failed is not an error worth a word
            pass
    return ChainPolicyValues(values, shown, block_height, block_hash)


def _words(exc: BaseException, url: str, shown: str) -> str:
    """The error's own words on one line, the node's credentials never among them."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if url != shown:
        text = text.replace(url, shown)
        credentials = urlsplit(url).netloc.rpartition("@")[0]
        if credentials:
            text = text.replace(credentials, "***")
    return text[:300]
