"""Stellar public keys (G...) checked without loading stellar_sdk.

`is_valid_public_key` answers exactly as stellar_sdk's `StrKey.is_valid_ed25519_public_key`
(the same steps: base32 with padding restored, round trip, version byte, 32 bytes, CRC16-XModem
little-endian); importing stellar_sdk costs more than a calculation's whole start-up should, and
settings, the calculation and retries only need this check. tests/test_strkey.py compares the two.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache

#: the version byte of an ed25519 public key: "G" is 6 << 3
_ED25519_PUBLIC_KEY = b"\x30"
_PAYLOAD_BYTES = 32


@lru_cache(maxsize=65536)  # a month's farms share a few thousand addresses
def is_valid_public_key(encoded: str) -> bool:
    """Whether `encoded` is a valid ed25519 public key in StrKey form (G...)."""
    try:
        data = encoded.encode("ascii")
        data += b"=" * ((8 - len(data) % 8) % 8)
        try:
            decoded = base64.b32decode(data)
        except binascii.Error:
            return False
        if data != base64.b32encode(decoded):
            return False
        if decoded[0:1] != _ED25519_PUBLIC_KEY or len(decoded[1:-2]) != _PAYLOAD_BYTES:
            return False
        checksum = binascii.crc_hqx(decoded[0:-2], 0).to_bytes(2, "little")
        return checksum == decoded[-2:]
    except (ValueError, TypeError):
        return False
