"""Receipt bytes and hashes: the SPEC's test vector, ryu float formatting, re-serialization."""

from __future__ import annotations

import json

import pytest

from payouts.calculation.receipts import (
    canonical_bytes_from_json,
    format_f64,
    minting_receipt_bytes,
    receipt_hash,
    retry_receipt_bytes,
)
from tests.factories import EXAMPLE_ADDRESS

VECTOR_HASH = "4abbc2aa8a8416f76feba94c93b866e5da3847597a79c074953193bada82ac14"


def vector_receipt() -> dict:
    return {
        "period": {"start": 1735602280, "end": 1738233160},
        "node_id": 1234,
        "twin_id": 5678,
        "farm_id": 42,
        "farm_name": "my_farm",
        "stellar_payout_address": EXAMPLE_ADDRESS,
        "measured_uptime": 2628780,
        "tft_connection_price": 80,
        "cloud_units": {"cu": 3.75, "su": 5.461333, "nu": 0.0},
        "resource_units": {"cru": 4.0, "mru": 16.0, "hru": 4096.0, "sru": 512.0},
        "resource_utilization": {"cru": 0.0, "mru": 0.0, "hru": 0.0, "sru": 0.0, "ip": 0.0},
        "reward": {"musd": 14446, "tft": 1805817375},
        "carbon_offset": None,
        "node_type": "DIY",
        "farming_policy_id": 1,
        "resource_rewards": {"cu": 2400, "su": 1000, "nu": 30, "ipv4": 5},
    }


def test_spec_test_vector_hash():
    data = minting_receipt_bytes(vector_receipt())
    assert data.startswith(b'{"period":{"start":1735602280,"end":1738233160},"node_id":1234,')
    assert b'"cloud_units":{"cu":3.75,"su":5.461333,"nu":0.0}' in data
    assert receipt_hash(data) == VECTOR_HASH


def test_any_changed_field_changes_the_hash():
    changed = vector_receipt()
    changed["reward"]["tft"] += 1
    assert receipt_hash(minting_receipt_bytes(changed)) != VECTOR_HASH


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (16.0, "16.0"),
        (0.0, "0.0"),
        (3.75, "3.75"),
        (5.461333, "5.461333"),
        (1e-6, "1e-6"),
        (2.5e-7, "2.5e-7"),
        (0.00005, "0.00005"),
        (0.00001, "0.00001"),
        (9.99e-6, "9.99e-6"),
        (1e15, "1000000000000000.0"),
        (1e16, "1e16"),
        (1.5e16, "1.5e16"),
        (123456789012345.6, "123456789012345.6"),
        (0.1, "0.1"),
        (1 / 3, "0.3333333333333333"),
        (4096.0, "4096.0"),
        (-2.5, "-2.5"),
    ],
)
def test_floats_are_written_like_serde_json(value, text):
    assert format_f64(value) == text


def test_pretty_printed_or_reordered_receipt_reserializes_to_the_same_hash():
    document = vector_receipt()
    reordered = dict(reversed(list(document.items())))
    text = json.dumps(reordered, indent=4)
    text = text.replace('"cru": 4.0', '"cru": 4')  # another tool may drop the ".0"
    assert receipt_hash(canonical_bytes_from_json(text)) == VECTOR_HASH


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("[]", "object"),
        ("{", "not valid JSON"),
        ('{"node_id": 1}', "missing"),
        (json.dumps({**vector_receipt(), "node_id": "1234"}), "integer"),
    ],
)
def test_non_receipts_are_refused(text, words):
    with pytest.raises(ValueError, match=words):
        canonical_bytes_from_json(text)


def test_unicode_farm_names_are_raw_utf8_with_json_escapes():
    document = vector_receipt()
    document["farm_name"] = 'Ferme "été"\n'
    data = minting_receipt_bytes(document)
    assert '"farm_name":"Ferme \\"été\\"\\n"'.encode() in data


def test_retry_receipt_layout():
    retry = {
        "failed_payout_period": {"start": 1, "end": 2},
        "retry_period": {"start": 2, "end": 3},
        "farm_id": 42,
        "previous_stellar_payout_address": "",
        "stellar_payout_address": EXAMPLE_ADDRESS,
        "retry_for_receipt": VECTOR_HASH,
        "reward": {"musd": 14446, "tft": 1805817375},
    }
    data = retry_receipt_bytes(retry)
    assert data.startswith(b'{"failed_payout_period":{"start":1,"end":2},"retry_period":')
    assert data.endswith(
        b'"retry_for_receipt":"' + VECTOR_HASH.encode() + b'","reward":{"musd":14446,"tft":1805817375}}'
    )
    assert canonical_bytes_from_json(json.dumps(retry, indent=1)) == data


def _format_f64_by_decimal(value: float) -> str:
    """serde_json's layout from `Decimal(repr(value)).normalize()`: the reference for format_f64."""
    from decimal import Decimal

    if value == 0:
        return "-0.0" if str(value).startswith("-") else "0.0"
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    text = "".join(map(str, digits))
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


def test_format_f64_matches_the_decimal_reference_on_every_kind_of_float():
    import math
    import random
    import struct

    rng = random.Random(11)
    values = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308, 0.1, 1e16, 1e15]
    values += [10.0**k for k in range(-30, 31)] + [-(10.0**k) for k in range(-8, 20)]
    values += [float(rng.randrange(1, 2**64)) for _ in range(3000)]
    values += [rng.randrange(1, 2**40) / 2**30 for _ in range(3000)]  # resource units in GiB
    values += [rng.randrange(0, 10**7) / 10**6 for _ in range(3000)]  # cloud units
    values += [rng.randrange(1, 10**6) * 100.0 / rng.randrange(1, 10**4) for _ in range(3000)]  # utilization
    while len(values) < 30000:  # any bit pattern
        value = struct.unpack("<d", rng.randbytes(8))[0]
        if math.isfinite(value):
            values.append(value)
    for value in values:
        assert format_f64(value) == _format_f64_by_decimal(value), repr(value)
