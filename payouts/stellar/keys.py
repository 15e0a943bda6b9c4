"""The only module that reads secret keys. Secrets stay inside `Keypair` objects and never
reach logs, the ledger, exports or error messages."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from stellar_sdk import Keypair
from stellar_sdk.exceptions import Ed25519SecretSeedInvalidError


class KeyFileError(ValueError):
    """A key file that cannot be used; the message never contains key material."""


def load_keypair(path: str | Path) -> Keypair:
    """Read a Stellar secret seed (one `S...` line) from a file only its owner can read."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError):
        raise KeyFileError(f"key file {path} cannot be read") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"key file {path} is readable by others (mode {stat.S_IMODE(mode):o}); run chmod 600 {path}"
        )
    try:
        return Keypair.from_secret(text)
    except (Ed25519SecretSeedInvalidError, ValueError):
        raise KeyFileError(f"key file {path} does not hold a valid Stellar secret seed") from None


def write_keypair(path: str | Path, keypair: Keypair) -> None:
    """Write a secret seed to a new file readable only by its owner."""
    # created 0600 from the start: no moment where the file is readable by others
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(keypair.secret + "\n")
