"""All settings, read once from the environment (prefix PAYOUTS_) and an optional `.env`.

Settings are read at the edges (CLI callback, worker start, web start) and passed inward as
plain values; the domain never reads the environment itself.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import make_url
from stellar_sdk import StrKey

DEFAULT_STATE_DIR = Path("var")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PAYOUTS_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    #: Folder for the embedded defaults (SQLite ledger, exports) when no URL is given.
    state_dir: Path = DEFAULT_STATE_DIR
    #: SQLAlchemy URL of the ledger; SQLite in `state_dir` by default, PostgreSQL in production
    #: (postgresql+psycopg://user:password@host/db). Secret because it may hold a password.
    database_url: SecretStr | None = None
    #: Bring the ledger schema to the newest migration when a command opens it.
    auto_migrate: bool = True

    #: Celery broker (Redis). Tasks carry ids and paths only; the ledger decides "once".
    broker_url: SecretStr = SecretStr("redis://127.0.0.1:6379/0")
    #: Seconds before Redis hands an unacknowledged task to another worker; above the longest task.
    visibility_timeout_s: int = Field(default=3600, ge=1)

    #: Approvers' Stellar public keys (comma-separated G... keys in the environment).
    approvers: Annotated[list[str], NoDecode] = []
    #: Valid approvals a run needs before it can be paid; default 1 on the sandbox, else 2.
    approvals_required: int | None = Field(default=None, ge=1)

    #: Stellar: `network` picks the passphrase and the TFT issuer (dev = the sandbox).
    network: Literal["main", "test", "dev"] = "dev"
    horizon_url: str = "http://127.0.0.1:8000"
    #: Requests per second to Horizon (public servers rate-limit); none = unpaced.
    horizon_requests_per_s: float | None = Field(default=None, gt=0)
    #: TFT issuer; defaults to the mainnet or testnet issuer, or the sandbox accounts file's.
    tft_issuer: str | None = None
    #: Keys: the sandbox accounts file (`payouts sandbox init --out`), or key files.
    stellar_accounts_file: Path | None = None
    payout_key_file: Path | None = None
    channel_key_files: Annotated[list[Path], NoDecode] = []
    #: Two-tier mode: a multisig treasury funds the hot payout account per run (operators sign
    #: the funding transaction offline); single tier (the default) pays from a funded hot account.
    two_tier: bool = False
    treasury_account: str | None = None
    memo_mode: Literal["per_receipt", "batch"] = "per_receipt"
    batch_size: int = Field(default=100, ge=1, le=100)
    base_fee_stroops: int = Field(default=100, ge=100)
    max_fee_stroops: int = Field(default=10_000, ge=100)
    tx_timeout_s: int = Field(default=300, ge=10)

    #: Where the monthly run gets a period's frozen inputs: a file dropped in
    #: `snapshot_drop_folder`, or a snapshot built from TFChain's GraphQL indexer.
    snapshot_source: Literal["drop_folder", "indexer"] = "drop_folder"
    #: Files named `2025-11.json[.gz]` or `tfgrid-snapshot-91.json[.gz]`; default state_dir/snapshots.
    snapshot_drop_folder: Path = Field(default_factory=lambda data: data["state_dir"] / "snapshots")
    #: Largest snapshot read, in bytes after gzip decompression: a larger file is refused
    #: before it fills memory (a gzip bomb). `/2` files stream; `/1` files are held whole.
    snapshot_max_bytes: int = Field(default=4 * 2**30, ge=1)
    #: Indexer and grid proxy URLs; None means the network's public endpoints.
    graphql_url: str | None = None
    gridproxy_url: str | None = None

    #: How often a held receipt is retried by later runs; none = until paid (the reference
    #: allowed one). Receipts past it stay held and are listed by `payouts held`.
    max_retries: int | None = Field(default=None, ge=0)

    #: The transition program: the first period paid from the treasury and an optional last
    #: one (operators extend it month by month); the reconciler never touches a period outside.
    first_period: str = "2025-11"
    last_period: str | None = None
    #: When beat fires the reconciler (cron fields, UTC): daily at 02:00 by default.
    schedule_cron: str = "0 2 * * *"
    #: Fire every so many seconds instead of the cron schedule (rehearsals and tests).
    schedule_every_s: float | None = Field(default=None, gt=0)
    #: Seconds before a standby beat process takes over from one that died (RedBeat's lock).
    beat_lock_timeout_s: int = Field(default=300, ge=5)
    #: Seconds one payment task works before it hands over to the next (a small task comes back
    #: quickly when its worker dies); a payer's lease on a run lasts `lease_ttl_s` unrenewed.
    pay_task_budget_s: float = Field(default=240.0, gt=0)
    lease_ttl_s: float = Field(default=60.0, gt=0)
    #: Optional webhook (POST, JSON) for approval reminders and stopped runs; never gets secrets.
    alert_webhook_url: str | None = None
    #: Where the reconciler writes each period's farmer export; `state_dir`/exports by default.
    export_dir: Path | None = None

    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    #: Review caps in TFT units: a run exceeding one must be explicitly approved past it.
    cap_node_tft_units: int | None = Field(default=None, ge=0)
    cap_farm_tft_units: int | None = Field(default=None, ge=0)
    cap_run_tft_units: int | None = Field(default=None, ge=0)
    #: A payout address that is new or changed against the previous period is flagged in review.
    flag_address_changes: bool = True

    @field_validator("approvers", mode="before")
    @classmethod
    def _split_approvers(cls, value: object) -> object:
        if isinstance(value, str):
            return [key.strip() for key in value.split(",") if key.strip()]
        return value

    @field_validator("channel_key_files", mode="before")
    @classmethod
    def _split_paths(cls, value: object) -> object:
        if isinstance(value, str):
            return [Path(p.strip()) for p in value.split(",") if p.strip()]
        return value

    @field_validator("approvers")
    @classmethod
    def _check_approvers(cls, value: list[str]) -> list[str]:
        for key in value:
            if not StrKey.is_valid_ed25519_public_key(key):
                # never echo what was given: a pasted secret seed would end up in the error
                shown = "a secret seed (S...)" if key.startswith("S") else f"{len(key)} characters"
                raise ValueError(f"approver {value.index(key) + 1} is not a Stellar public key (G...); got {shown}")
        return value

    def ledger_url(self) -> str:
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.state_dir / 'payouts.sqlite3'}"

    def ledger_url_for_display(self) -> str:
        """The ledger URL with any password masked, safe for logs and error messages."""
        return make_url(self.ledger_url()).render_as_string(hide_password=True)


class SettingsError(ValueError):
    """A setting has a value it cannot take; the message names the settings, never the values."""


def load_settings() -> Settings:
    """The settings, or SettingsError naming each bad setting and why (without its value: a
    value may be a password or a seed put in the wrong place)."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [
            f"{_env_name(error['loc'])}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
            if error["type"] != "default_factory_not_called"
        ]
        raise SettingsError("bad settings: " + "; ".join(problems)) from None


def _env_name(loc: tuple[int | str, ...]) -> str:
    return "PAYOUTS_" + str(loc[0]).upper() if loc else "settings"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
