"""Block timestamps from a TFChain node over JSON-RPC (`chain_getBlockHash`, `chain_getBlock`).

A block's time is the argument of its `Timestamp.set` inherent, an unsigned extrinsic that every
block carries. Decoded here directly from the SCALE bytes rather than through a metadata-driven
client (substrate-interface): a generic client first downloads the runtime's metadata
(`state_getMetadata`) to learn the call layout, which ties every build to the node's metadata
and cannot be tested offline. The layout needed is small and fixed by TFChain's runtime
(`construct_runtime!`: `Timestamp: pallet_timestamp = 1`; `set` is the pallet's call 0, its only
argument `#[pallet::compact] now: Moment`, milliseconds as u64):

    compact(length) ++ 0x04 (extrinsic format 4, unsigned) ++ 0x01 (pallet) ++ 0x00 (call) ++ compact(now)

Extrinsic format 5 (a "bare" extrinsic, newer Substrate) begins with 0x05 and is read the same way.
"""

from __future__ import annotations

from payouts.sources.errors import IndexerQueryError, SourceError
from payouts.sources.graphql import JsonHttp, check_http_url
from payouts.sources.tfchain_state import url_without_credentials

#: TFChain's runtime: `Timestamp: pallet_timestamp = 1`, `set` is call 0
TIMESTAMP_PALLET_INDEX = 1
TIMESTAMP_SET_CALL_INDEX = 0
_UNSIGNED_FORMATS = (0x04, 0x05)


class TfchainRpcError(SourceError):
    """The node's answer cannot be used (no such block, or no timestamp in it)."""


def decode_compact(data: bytes, offset: int) -> tuple[int, int]:
    """(value, offset after it) of a SCALE compact integer at `offset`."""
    if offset >= len(data):
        raise ValueError("compact integer: no bytes left")
    first = data[offset]
    mode = first & 0b11
    if mode == 0:
        return first >> 2, offset + 1
    if mode == 1:
        if offset + 2 > len(data):
            raise ValueError("compact integer: 2 bytes expected")
        return int.from_bytes(data[offset : offset + 2], "little") >> 2, offset + 2
    if mode == 2:
        if offset + 4 > len(data):
            raise ValueError("compact integer: 4 bytes expected")
        return int.from_bytes(data[offset : offset + 4], "little") >> 2, offset + 4
    length = (first >> 2) + 4
    end = offset + 1 + length
    if end > len(data):
        raise ValueError(f"compact integer: {length} bytes expected")
    return int.from_bytes(data[offset + 1 : end], "little"), end


def encode_compact(value: int) -> bytes:
    """The SCALE compact encoding of a non-negative integer."""
    if value < 0:
        raise ValueError("compact integers are unsigned")
    if value < 1 << 6:
        return bytes([value << 2])
    if value < 1 << 14:
        return ((value << 2) | 1).to_bytes(2, "little")
    if value < 1 << 30:
        return ((value << 2) | 2).to_bytes(4, "little")
    raw = value.to_bytes((value.bit_length() + 7) // 8, "little")
    return bytes([((len(raw) - 4) << 2) | 3]) + raw


def timestamp_inherent(now_ms: int) -> str:
    """The hex extrinsic `Timestamp.set(now_ms)` as a node serves it in `chain_getBlock`."""
    body = bytes([0x04, TIMESTAMP_PALLET_INDEX, TIMESTAMP_SET_CALL_INDEX]) + encode_compact(now_ms)
    return "0x" + (encode_compact(len(body)) + body).hex()


def timestamp_ms_of(extrinsics: list[str]) -> int | None:
    """The `Timestamp.set` argument (ms) among a block's hex extrinsics, or None without one."""
    for text in extrinsics:
        try:
            data = bytes.fromhex(text.removeprefix("0x"))
            length, start = decode_compact(data, 0)
        except ValueError:
            continue
        body = data[start:]
        if len(body) != length or len(body) < 4:
            continue
        if body[0] in _UNSIGNED_FORMATS and body[1] == TIMESTAMP_PALLET_INDEX and body[2] == TIMESTAMP_SET_CALL_INDEX:
            try:
                value, end = decode_compact(body, 3)
            except ValueError:
                continue
            if end == len(body):
                return value
    return None


class TfchainRpc:
    """A TFChain node's JSON-RPC over HTTP (any full node serves block bodies)."""

    def __init__(self, url: str, http: JsonHttp) -> None:
        self.endpoint = check_http_url(url, "TFChain RPC")
        #: the endpoint as errors name it: an endpoint's credentials are never shown
        self.url = url_without_credentials(url)
        self.http = http
        self._next_id = 0

    def _call(self, method: str, params: list, *, what: str) -> object:
        self._next_id += 1
        try:
            answer = self.http.request_json(
                "POST",
                self.endpoint,
                body={"jsonrpc": "2.0", "id": self._next_id, "method": method, "params": params},
                what=what,
            )
        except SourceError as exc:
            if self.endpoint == self.url:
                raise
            raise type(exc)(str(exc).replace(self.endpoint, self.url)) from None
        if not isinstance(answer, dict):
            raise IndexerQueryError(f"{self.url}: {what}: expected a JSON-RPC object")
        if answer.get("error") is not None:
            raise TfchainRpcError(f"{self.url}: {what}: the node answered with an error: {answer['error']}")
        return answer.get("result")

    def block_timestamp_s(self, height: int) -> int:
        """The timestamp of the block at `height`, in unix seconds (minting's `current_time`)."""
        block_hash = self._call("chain_getBlockHash", [height], what=f"hash of block {height}")
        if not isinstance(block_hash, str) or not block_hash.startswith("0x"):
            raise TfchainRpcError(f"{self.url}: the node has no block {height} (hash {block_hash!r})")
        answer = self._call("chain_getBlock", [block_hash], what=f"block {height}")
        block = answer.get("block") if isinstance(answer, dict) else None
        extrinsics = block.get("extrinsics") if isinstance(block, dict) else None
        header = block.get("header") if isinstance(block, dict) else None
        if not isinstance(extrinsics, list) or not isinstance(header, dict):
            raise TfchainRpcError(f"{self.url}: block {height} ({block_hash}): no header or extrinsics in the answer")
        number = header.get("number")
        try:
            number_int = int(number, 16) if isinstance(number, str) else None
        except ValueError:
            number_int = None
        if number_int != height:
            raise TfchainRpcError(f"{self.url}: block {block_hash} has number {number!r}, asked for {height}")
        now_ms = timestamp_ms_of([e for e in extrinsics if isinstance(e, str)])
        if now_ms is None:
            raise TfchainRpcError(f"{self.url}: block {height} ({block_hash}) has no Timestamp.set inherent")
        return now_ms // 1000
