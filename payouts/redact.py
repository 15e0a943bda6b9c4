"""Secret seeds never leave the process in words: anything shaped like a Stellar secret seed
(`S` and 55 base32 characters) is blanked out of text that goes to a user, a log or a file.

The settings, the CLI, the key loader and the log processors all call `redact`; a value that is
a seed where a public key or a path belongs is refused without being echoed.
"""

from __future__ import annotations

import re

#: the shape of an ed25519 secret seed in StrKey form, anywhere in a text (inside a path too);
#: upper case only, as StrKey writes it, so that base64 (XDR) never looks like one by chance
SEED_SHAPE = re.compile(r"S[A-Z2-7]{55}")
REDACTED = "S**redacted-secret-seed**"


def has_seed(text: object) -> bool:
    """Whether `text` (any value; its str is looked at) contains something shaped like a seed."""
    return SEED_SHAPE.search(str(text)) is not None


def redact(text: str) -> str:
    """`text` with every seed-shaped run replaced by a fixed marker."""
    return SEED_SHAPE.sub(REDACTED, text)
