"""Secret seeds never leave the process in words: anything shaped like a Stellar secret seed
(`S` and 55 base32 characters) is blanked out of text that goes to a user, a log or a file.

The settings, the CLI, the key loader and the log processors all call `redact`; a value that is
a seed where a public key or a path belongs is refused without being echoed.

Two shapes count as a seed:
- upper case, as StrKey writes it: `S` and 55 base32 characters, checksum or not (a seed with a
  typo is still most of a secret), anywhere in a text, inside a longer run of base32 too;
- any other case (a seed lower-cased or mixed by an editor, a shell or a form): 56 letters and
  digits 2-7 that read, upper-cased, as a valid secret seed (version byte and CRC16 checksum).
  The checksum keeps base64 (XDR), whose letters are mixed case, from looking like one by chance.
Only the standard library is used: this module is imported by `payouts --help`.
"""

from __future__ import annotations

import base64
import binascii
import re

#: the shape of an ed25519 secret seed in StrKey form (upper case), anywhere in a text; the
#: base32 characters after it are blanked too, so a seed preceded by an `S` is never half shown
SEED_SHAPE = re.compile(r"S[A-Z2-7]{55,}")
#: runs of base32 letters in any case, long enough to hold a seed
_FOLDED_RUN = re.compile(r"[A-Za-z2-7]{56,}")
REDACTED = "S**redacted-secret-seed**"
#: StrKey version byte of an ed25519 secret seed (18 << 3): its first character is `S`
_SEED_VERSION = 18 << 3


def _is_seed(candidate: str) -> bool:
    """Whether 56 base32 characters (upper case) are a valid StrKey secret seed."""
    try:
        raw = base64.b32decode(candidate)  # 56 characters: 35 bytes, no padding
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 35 or raw[0] != _SEED_VERSION:
        return False
    # StrKey's checksum: CRC16-XModem of version and payload, little-endian
    return binascii.crc_hqx(raw[:33], 0) == int.from_bytes(raw[33:], "little")


def _spans(text: str) -> list[tuple[int, int]]:
    """Where seeds are in `text`: (start, end) pairs, sorted, not overlapping."""
    spans = [match.span() for match in SEED_SHAPE.finditer(text)]
    for run in _FOLDED_RUN.finditer(text):
        value = run.group()
        if value.isupper() or not ("s" in value or "S" in value):
            continue  # upper case is SEED_SHAPE's; no `s`, no seed
        start = 0
        while (offset := _next_s(value, start)) != -1 and offset + 56 <= len(value):
            if _is_seed(value[offset : offset + 56].upper()):
                spans.append((run.start() + offset, run.start() + offset + 56))
                start = offset + 56
            else:
                start = offset + 1
    spans.sort()
    merged: list[tuple[int, int]] = []
    for begin, end in spans:
        if merged and begin <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((begin, end))
    return merged


def _next_s(value: str, start: int) -> int:
    lower, upper = value.find("s", start), value.find("S", start)
    if lower == -1 or upper == -1:
        return max(lower, upper)
    return min(lower, upper)


def has_seed(text: object) -> bool:
    """Whether `text` (any value; its str is looked at) contains something shaped like a seed."""
    return bool(_spans(str(text)))


def redact(text: str) -> str:
    """`text` with every seed-shaped run replaced by a fixed marker."""
    spans = _spans(text)
    if not spans:
        return text
    parts: list[str] = []
    position = 0
    for begin, end in spans:
        parts += [text[position:begin], REDACTED]
        position = end
    parts.append(text[position:])
    return "".join(parts)
