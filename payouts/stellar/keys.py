"""The only module that reads secret keys. Secrets stay inside `Keypair` objects and never
reach logs, the ledger, exports or error messages."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from stellar_sdk import FeeBumpTransactionEnvelope, Keypair
from stellar_sdk.exceptions import Ed25519SecretSeedInvalidError

from payouts.redact import has_seed, redact


class KeyFileError(ValueError):
    """A key file that cannot be used; the message never contains key material (a path shaped
    like a seed, pasted where the file's path belongs, is blanked out too)."""

    def __init__(self, message: str) -> None:
        super().__init__(redact(message))


def _refuse_seed_as_path(path: Path, what: str) -> None:
    if has_seed(str(path)):
        raise KeyFileError(
            f"the {what} path is shaped like a Stellar secret seed (S...): give the path of a file "
            "that holds the seed, never the seed itself, and treat this seed as exposed"
        )


def load_keypair(path: str | Path) -> Keypair:
    """Read a Stellar secret seed (one `S...` line) from a file only its owner can read."""
    path = Path(path)
    _refuse_seed_as_path(path, "key file")
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        raise KeyFileError(f"key file {path} does not exist") from None
    except (OSError, UnicodeDecodeError):
        raise KeyFileError(f"key file {path} cannot be read") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(f"key file {path} is readable by others (mode {stat.S_IMODE(mode):o}); run chmod 600 {path}")
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


class SigningKeys:
    """The hot keys a payment worker holds: the payout account's and the channels'."""

    def __init__(self, payout: Keypair, channels: list[Keypair] | None = None) -> None:
        self._payout = payout
        self._channels = {k.public_key: k for k in channels or []}

    @property
    def payout_account(self) -> str:
        return self._payout.public_key

    @property
    def channel_accounts(self) -> list[str]:
        return list(self._channels)

    def sign(self, envelope) -> None:
        """Sign with the transaction source's key, and the payout key for its operations; a
        fee bump only with its fee source's key (the inner transaction is signed already)."""
        if isinstance(envelope, FeeBumpTransactionEnvelope):
            fee_source = envelope.transaction.fee_source.account_id
            envelope.sign(self._channels.get(fee_source) or self._payout)
            return
        source = envelope.transaction.source.account_id
        if source in self._channels:
            envelope.sign(self._channels[source])
        envelope.sign(self._payout)

    def __repr__(self) -> str:  # never the secrets
        return f"SigningKeys(payout={self.payout_account}, channels={len(self._channels)})"

    @classmethod
    def from_accounts_file(cls, path: str | Path, *, channels: int | None = None) -> SigningKeys:
        """Keys from the file `payouts sandbox init` writes (mode 600)."""
        path = Path(path)
        _refuse_seed_as_path(path, "accounts file")
        try:
            mode = path.stat().st_mode
            text = path.read_text()
        except FileNotFoundError:
            raise KeyFileError(f"accounts file {path} does not exist") from None
        except (OSError, UnicodeDecodeError):
            raise KeyFileError(f"accounts file {path} cannot be read") from None
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise KeyFileError(f"accounts file {path} is readable by others; run chmod 600 {path}")
        try:
            document = json.loads(text)
            payout = Keypair.from_secret(document["payout"]["secret"])
            channel_keys = [Keypair.from_secret(c["secret"]) for c in document.get("channels", [])]
        except (ValueError, KeyError, TypeError):
            raise KeyFileError(f"accounts file {path} does not hold the payout and channel keys") from None
        return cls(payout, channel_keys[:channels] if channels is not None else channel_keys)
