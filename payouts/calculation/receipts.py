"""Receipts in minting_v3's byte layout, and their BLAKE2b-256 hashes.

The bytes are compact JSON with keys in the reference's struct order, floats written the way
Rust's serde_json (ryu) writes an f64, strings with `json.dumps(..., ensure_ascii=False)`'s
escapes. Same bytes, same hash: a farmer's existing tools find the receipt by its memo.
"""

from __future__ import annotations

import hashlib
import json
import math

FLOAT_GROUPS = ("cloud_units", "resource_units", "resource_utilization")
_MINTING_KEYS = (
    "period",
    "node_id",
    "twin_id",
    "farm_id",
    "farm_name",
    "stellar_payout_address",
    "measured_uptime",
    "tft_connection_price",
    "cloud_units",
    "resource_units",
    "resource_utilization",
    "reward",
    "carbon_offset",
    "node_type",
    "farming_policy_id",
    "resource_rewards",
)
_GROUP_KEYS = {
    "period": ("start", "end"),
    "failed_payout_period": ("start", "end"),
    "retry_period": ("start", "end"),
    "cloud_units": ("cu", "su", "nu"),
    "resource_units": ("cru", "mru", "hru", "sru"),
    "resource_utilization": ("cru", "mru", "hru", "sru", "ip"),
    "reward": ("musd", "tft"),
    "resource_rewards": ("cu", "su", "nu", "ipv4"),
}
_RETRY_KEYS = (
    "failed_payout_period",
    "retry_period",
    "farm_id",
    "previous_stellar_payout_address",
    "stellar_payout_address",
    "retry_for_receipt",
    "reward",
)


def format_f64(value: float) -> str:
    """An f64 as serde_json writes it (ryu): `16.0`, `0.00005`, `1e-6`, `2.5e-7`, `1e16`.

    Both write the shortest digits that read back as the same f64; only the layout differs.
    The digits and exponent are read from `repr` (as `Decimal(repr(value)).normalize()` would
    give them, tests/calculation/test_receipts.py compares the two)."""
    value = float(value)
    if not math.isfinite(value):
        return "null"  # serde_json writes non-finite floats as null
    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    # a month repeats many values (unit counts, utilizations); zero is never kept (0.0 == -0.0)
    known = _F64_TEXTS.get(value)
    if known is None:
        if len(_F64_TEXTS) >= _F64_TEXTS_KEPT:
            _F64_TEXTS.clear()
        known = _F64_TEXTS[value] = _format_nonzero_f64(value)
    return known


#: format_f64's texts of non-zero finite values seen, at most _F64_TEXTS_KEPT
_F64_TEXTS: dict[float, str] = {}
_F64_TEXTS_KEPT = 100_000


def _format_nonzero_f64(value: float) -> str:
    shown = repr(value)
    sign = shown.startswith("-")
    mantissa, _, power = shown.lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    text = (whole + fraction).lstrip("0")
    exponent = (int(power) if power else 0) - len(fraction)
    stripped = text.rstrip("0")
    exponent += len(text) - len(stripped)
    text = stripped
    # scientific exponent of the first digit: value = d.ddd x 10^point
    point = len(text) + exponent - 1
    prefix = "-" if sign else ""
    if -5 <= point < 16:
        if exponent >= 0:
            return f"{prefix}{text}{'0' * exponent}.0"
        if point >= 0:
            return f"{prefix}{text[: point + 1]}.{text[point + 1 :]}"
        return f"{prefix}0.{'0' * (-point - 1)}{text}"
    mantissa = text[0] + ("." + text[1:] if len(text) > 1 else "")
    return f"{prefix}{mantissa}e{point}"


def _string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _int(value: int) -> str:
    if type(value) is not int:
        raise ValueError(f"expected an integer, got {value!r}")
    return str(value)


#: the keys of the layouts, written once
_KEY_TEXTS = {
    key: _string(key)
    for key in (*_MINTING_KEYS, *_RETRY_KEYS, *(name for names in _GROUP_KEYS.values() for name in names))
}


def _object(pairs: list[tuple[str, str]]) -> str:
    texts = _KEY_TEXTS
    return "{" + ",".join(f"{texts[key] if key in texts else _string(key)}:{text}" for key, text in pairs) + "}"


#: per group: its keys with their texts and colon (a month writes every group of every receipt)
_GROUP_MEMBERS = {name: tuple((key, _KEY_TEXTS[key] + ":") for key in keys) for name, keys in _GROUP_KEYS.items()}
_GROUP_KEY_SETS = {name: frozenset(keys) for name, keys in _GROUP_KEYS.items()}


def _group(name: str, values: dict, floats: bool) -> str:
    if not _GROUP_KEY_SETS[name].issubset(values):
        missing = [key for key in _GROUP_KEYS[name] if key not in values]
        raise ValueError(f"{name} lacks {', '.join(missing)}")
    members = _GROUP_MEMBERS[name]
    if floats:
        return "{" + ",".join([lead + format_f64(values[key]) for key, lead in members]) + "}"
    return "{" + ",".join([lead + _int(values[key]) for key, lead in members]) + "}"


def minting_receipt_bytes(receipt: dict) -> bytes:
    """Canonical bytes of a MintingReceipt given as a dict (values as the reference has them:
    ints for integers, floats for the float groups, None for carbon_offset)."""
    missing = [key for key in _MINTING_KEYS if key not in receipt]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    pairs = []
    for key in _MINTING_KEYS:
        value = receipt[key]
        if key in _GROUP_KEYS:
            text = _group(key, value, floats=key in FLOAT_GROUPS)
        elif key in ("farm_name", "stellar_payout_address", "node_type"):
            if not isinstance(value, str):
                raise ValueError(f"{key} must be a string")
            text = _string(value)
        elif key == "carbon_offset":
            text = "null" if value is None else _string(value)
        else:
            text = _int(value)
        pairs.append((key, text))
    return _object(pairs).encode("utf-8")


def retry_receipt_bytes(receipt: dict) -> bytes:
    """Canonical bytes of a RetryPayoutReceipt (minting_v3 layout)."""
    missing = [key for key in _RETRY_KEYS if key not in receipt]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    pairs = []
    for key in _RETRY_KEYS:
        value = receipt[key]
        if key in _GROUP_KEYS:
            text = _group(key, value, floats=False)
        elif key == "farm_id":
            text = _int(value)
        else:
            if not isinstance(value, str):
                raise ValueError(f"{key} must be a string")
            text = _string(value)
        pairs.append((key, text))
    return _object(pairs).encode("utf-8")


def receipt_hash(receipt_bytes: bytes) -> str:
    """BLAKE2b-256 of the canonical bytes, hex: the receipt's id and its payment memo."""
    return hashlib.blake2b(receipt_bytes, digest_size=32).hexdigest()


def canonical_bytes_from_json(text: str) -> bytes:
    """Re-serialize a receipt JSON document (any spacing or key order) canonically."""
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise ValueError("expected a JSON object")  # noqa: TRY004 - callers report ValueError as a bad file
    if "retry_for_receipt" in document:
        return retry_receipt_bytes(document)
    return minting_receipt_bytes(document)
