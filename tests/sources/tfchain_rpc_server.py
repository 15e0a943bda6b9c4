"""A loopback TFChain node for the builder's tests: HTTP JSON-RPC answering `chain_getBlockHash`
and `chain_getBlock` as a Substrate node does, for the chain the fake indexer serves (block h
stamped GENESIS_TS + 6 h). Each block's extrinsics hold a SCALE-encoded `Timestamp.set`
inherent (milliseconds) after another inherent-shaped extrinsic, so the decoder has to find it.

It also serves TFChain state for a metadata-driven client (substrate-interface): runtime
metadata V14 built offline here (`state_getMetadata`: the TfgridModule pallet at index 11 with
its `FarmingPoliciesMap` storage, Blake2_128Concat over a u32 key, and pallet-tfgrid's
`FarmingPolicy<BlockNumber>` type, fields in the chain's order), the runtime version, and
`state_getStorage(At)` answers with SCALE-encoded policies under the keys the chain uses.
"""

from __future__ import annotations

import hashlib
from http.server import BaseHTTPRequestHandler

import orjson
import xxhash

from payouts.sources.tfchain_rpc import encode_compact, timestamp_inherent
from tests.sources.indexer_server import block_stamp
from tests.support.servers import LoopbackHttp

#: milliseconds past the second in every stamp: the decoder must floor to seconds
STAMP_MS_PAST_SECOND = 417


def block_hash(height: int) -> str:
    return "0x" + hashlib.blake2b(height.to_bytes(4, "little"), digest_size=32).hexdigest()


def _other_inherent(height: int) -> str:
    # a pallet-29 call 3 extrinsic with one compact argument: shaped like an inherent, not a timestamp
    body = bytes([0x04, 29, 3]) + encode_compact(height)
    return "0x" + (encode_compact(len(body)) + body).hex()


def _twox128(text: str) -> bytes:
    data = text.encode()
    return xxhash.xxh64(data, seed=0).digest()[::-1] + xxhash.xxh64(data, seed=1).digest()[::-1]


def policy_storage_key(policy_id: int) -> str:
    """`TfgridModule.FarmingPoliciesMap[policy_id]`: twox128 of pallet and item, then
    Blake2_128Concat of the SCALE u32 key (its blake2b-128, then the key itself)."""
    key = policy_id.to_bytes(4, "little")
    hashed = hashlib.blake2b(key, digest_size=16).digest() + key
    return "0x" + (_twox128("TfgridModule") + _twox128("FarmingPoliciesMap") + hashed).hex()


#: pallet-tfgrid's FarmingPolicy<BlockNumber = u32>, fields in declaration order, with the
#: type ids of `_metadata_types`
_POLICY_FIELDS = (
    ("version", 0),
    ("id", 0),
    ("name", 4),
    ("cu", 0),
    ("su", 0),
    ("nu", 0),
    ("ipv4", 0),
    ("minimal_uptime", 1),
    ("policy_created", 0),
    ("policy_end", 0),
    ("immutable", 3),
    ("default", 3),
    ("node_certification", 5),
    ("farm_certification", 6),
)


def _metadata_types() -> list[dict]:
    def entry(type_id: int, definition: dict, path: list[str] | None = None, params: list | None = None) -> dict:
        return {"id": type_id, "type": {"path": path or [], "params": params or [], "def": definition, "docs": []}}

    def enum(*names: str) -> dict:
        return {
            "variant": {"variants": [{"name": n, "fields": [], "index": i, "docs": []} for i, n in enumerate(names)]}
        }

    fields = [{"name": name, "type": type_id, "typeName": None, "docs": []} for name, type_id in _POLICY_FIELDS]
    return [
        entry(0, {"primitive": "u32"}),
        entry(1, {"primitive": "u16"}),
        entry(2, {"primitive": "u8"}),
        entry(3, {"primitive": "bool"}),
        entry(4, {"sequence": {"type": 2}}),
        entry(5, enum("Diy", "Certified"), ["tfchain_support", "types", "NodeCertification"]),
        entry(6, enum("NotCertified", "Gold"), ["tfchain_support", "types", "FarmCertification"]),
        entry(
            7,
            {"composite": {"fields": fields}},
            ["pallet_tfgrid", "types", "FarmingPolicy"],
            [{"name": "BlockNumber", "type": 0}],
        ),
        entry(8, {"tuple": []}),
    ]


def encode_policy(policy: dict) -> str:
    """A FarmingPolicy value as the chain stores it (SCALE)."""
    out = b""
    for name, type_id in _POLICY_FIELDS:
        value = policy[name]
        if type_id == 0:
            out += value.to_bytes(4, "little")
        elif type_id == 1:
            out += value.to_bytes(2, "little")
        elif type_id == 3:
            out += bytes([int(value)])
        elif type_id == 4:
            out += encode_compact(len(value)) + value
        else:
            out += bytes([value])
    return "0x" + out.hex()


def runtime_metadata(*, with_pallet: bool = True) -> str:
    """Runtime metadata V14 (hex, as `state_getMetadata` answers) with the TfgridModule pallet
    and its FarmingPoliciesMap (or, `with_pallet` off, a runtime without it)."""
    from scalecodec.base import RuntimeConfigurationObject
    from scalecodec.type_registry import load_type_registry_preset

    default = {name: 0 for name, _ in _POLICY_FIELDS} | {"name": b""}
    pallet = {
        "name": "TfgridModule" if with_pallet else "OtherModule",
        "storage": {
            "prefix": "TfgridModule" if with_pallet else "OtherModule",
            "entries": [
                {
                    "name": "FarmingPoliciesMap",
                    "modifier": "Default",  # ValueQuery
                    "type": {"Map": {"hashers": ["Blake2_128Concat"], "key": 0, "value": 7}},
                    "default": encode_policy(default),
                    "documentation": [],
                }
            ],
        },
        "calls": None,
        "event": None,
        "constants": [],
        "error": None,
        "index": 11,
    }
    metadata = {
        "types": {"types": _metadata_types()},
        "pallets": [pallet],
        "extrinsic": {"ty": 8, "version": 4, "signed_extensions": []},
        "runtime_type": 8,
    }
    config = RuntimeConfigurationObject()
    config.update_type_registry(load_type_registry_preset("core"))
    encoded = config.create_scale_object("MetadataVersioned").encode(["0x6d657461", {"V14": metadata}])
    return encoded.to_hex()


class TfchainRpcServer(LoopbackHttp):
    def __init__(
        self,
        head: int,
        *,
        policies: dict[int, dict] | None = None,
        with_pallet: bool = True,
        garbled_policy: int | None = None,
    ) -> None:
        """`policies` are FarmingPolicy values by id (the state at every block); `garbled_policy`
        is served as bytes that do not decode as a FarmingPolicy."""
        self.head = head
        self.asked: list[tuple[str, object]] = []
        storage = {policy_storage_key(i): encode_policy(p) for i, p in (policies or {}).items()}
        if garbled_policy is not None:
            storage[policy_storage_key(garbled_policy)] = "0x0102"
        metadata = runtime_metadata(with_pallet=with_pallet)
        version = {
            "specName": "substrate-threefold",
            "implName": "substrate-threefold",
            "authoringVersion": 1,
            "specVersion": 147,
            "implVersion": 1,
            "apis": [],
            "transactionVersion": 2,
            "stateVersion": 0,
        }
        by_hash: dict[str, int] = {}
        server_self = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                request = orjson.loads(self.rfile.read(length))
                method, params = request["method"], request.get("params") or []
                server_self.asked.append((method, params[0] if params else None))
                result: object = None
                if method in ("state_getMetadata",):
                    result = metadata
                elif method in ("state_getRuntimeVersion", "chain_getRuntimeVersion"):
                    result = version
                elif method in ("state_getStorage", "state_getStorageAt"):
                    result = storage.get(params[0])
                elif method == "chain_getHead" or method == "chain_getFinalizedHead":
                    result = block_hash(server_self.head)
                    by_hash[result] = server_self.head
                elif method == "chain_getHeader":
                    height = by_hash.get(params[0]) if params else server_self.head
                    if height is not None:
                        result = {"number": hex(height), "parentHash": block_hash(height - 1), "digest": {"logs": []}}
                elif method == "system_properties":
                    result = {"ss58Format": 42, "tokenDecimals": 7, "tokenSymbol": "TFT"}
                elif method == "system_chain":
                    result = "TFChain Loopback"
                elif method == "rpc_methods":
                    result = {"methods": []}
                elif method == "chain_getBlockHash":
                    height = params[0]
                    if 0 <= height <= server_self.head:
                        result = block_hash(height)
                        by_hash[result] = height
                elif method == "chain_getBlock":
                    height = by_hash.get(params[0])
                    if height is not None:
                        stamp_ms = block_stamp(height) * 1000 + STAMP_MS_PAST_SECOND
                        result = {
                            "block": {
                                "header": {"number": hex(height), "parentHash": block_hash(height - 1)},
                                "extrinsics": [_other_inherent(height), timestamp_inherent(stamp_ms)],
                            },
                            "justifications": None,
                        }
                body = orjson.dumps({"jsonrpc": "2.0", "id": request.get("id"), "result": result})
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        super().__init__(Handler)
