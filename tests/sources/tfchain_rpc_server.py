"""A loopback TFChain node for the builder's tests: HTTP JSON-RPC answering `chain_getBlockHash`
and `chain_getBlock` as a Substrate node does, for the chain the fake indexer serves (block h
stamped GENESIS_TS + 6 h). Each block's extrinsics hold a SCALE-encoded `Timestamp.set`
inherent (milliseconds) after another inherent-shaped extrinsic, so the decoder has to find it.
"""

from __future__ import annotations

import hashlib
from http.server import BaseHTTPRequestHandler

import orjson

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


class TfchainRpcServer(LoopbackHttp):
    def __init__(self, head: int) -> None:
        self.head = head
        self.asked: list[tuple[str, object]] = []
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
                if method == "chain_getBlockHash":
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
