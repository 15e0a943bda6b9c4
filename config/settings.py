"""All settings, read once from the environment (prefix PAYOUTS_) and an optional `.env`.

Settings are read at the edges (CLI callback, worker start, web start) with `load_settings` and
passed inward as plain values; the domain never reads the environment itself.

The `.env` file is the state folder's (`PAYOUTS_STATE_DIR/.env`) or the one `PAYOUTS_ENV_FILE`
names, never one in the current directory: a command started from another folder cannot pick up
somebody else's settings. On the main and test networks the state folder must be absolute.
A value shaped like a Stellar secret seed is refused in every setting, and no error message
repeats what was given (pydantic's own messages quote the input).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from config.errors import describe_settings
from payouts.redact import has_seed, redact
from payouts.strkey import is_valid_public_key

DEFAULT_STATE_DIR = Path("var")
#: networks that move real (or real-looking) money: stricter configuration
STRICT_NETWORKS = ("main", "test")
ENV_FILE_VARIABLE = "PAYOUTS_ENV_FILE"


class SettingsError(ValueError):
    """Settings that cannot be used; the message names each setting and never its value."""


class Settings(BaseSettings):
    # no `.env` by default: `load_settings` passes the state folder's (or PAYOUTS_ENV_FILE's)
    model_config = SettingsConfigDict(env_prefix="PAYOUTS_", env_file=None, env_file_encoding="utf-8", extra="ignore")

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
    #: Processes that read a large `/2` month's node lines for `payouts calculate` (the result
    #: is the same); 1 reads in one process.
    calculation_processes: int = Field(default=2, ge=1, le=64)
    #: Indexer and grid proxy URLs; None means the network's public endpoints.
    graphql_url: str | None = None
    gridproxy_url: str | None = None
    #: Minimal uptimes of farming policies the indexer has none for (payouts/sources/INDEXER.md).
    snapshot_policies_file: Path | None = None
    #: A TFChain node's HTTP JSON-RPC (`PAYOUTS_TFCHAIN_RPC_URL`): the timestamps of blocks without
    #: events at the period's edges; None: the snapshot's notes name the edge ambiguity.
    tfchain_rpc_url: str | None = None

    #: How often a held receipt is retried by later runs; none = until paid (the reference
    #: allowed one). Receipts past it stay held and are listed by `payouts held`.
    max_retries: int | None = Field(default=None, ge=0)
    #: Pay a destination whose only problem is a missing TFT trustline by a Stellar claimable
    #: balance (the farmer claims it once the trustline exists) instead of holding it. Off by
    #: default; a run pays this way only when its signed manifest records the policy.
    claimable_for_no_trustline: bool = False
    #: Days after which the payout account may take an unclaimed balance back (`payouts reclaim`);
    #: the receipt is then owed again and paid by a later run.
    claimable_reclaim_after_days: int = Field(default=90, ge=1, le=3650)

    #: The transition program: the first period paid from the treasury and an optional last
    #: one (operators extend it month by month); the monthly job never touches a period outside.
    first_period: str = "2025-11"
    last_period: str | None = None
    #: When beat fires the monthly job (cron fields, UTC): daily at 02:00 by default.
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
    #: Where the monthly job writes each period's farmer export; `state_dir`/exports by default.
    export_dir: Path | None = None

    log_format: Literal["auto", "console", "json"] = "auto"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    #: Review caps in TFT units (on by default: 100,000 TFT a node, 2,000,000 a farm, 10,000,000
    #: a run): a run exceeding one is approved only with the exceedance accepted in its manifest.
    cap_node_tft_units: int | None = Field(default=100_000 * 10**7, ge=0)
    cap_farm_tft_units: int | None = Field(default=2_000_000 * 10**7, ge=0)
    cap_run_tft_units: int | None = Field(default=10_000_000 * 10**7, ge=0)
    #: Review flag: a node or farm paid more than this many times its highest of the previous
    #: `review_outlier_months` months.
    review_outlier_factor: int = Field(default=3, ge=1)
    review_outlier_months: int = Field(default=3, ge=1)
    #: Hardware plausibility bounds (what one server holds): a paid node claiming more is an
    #: exceedance to accept like a cap. Cores (logical), memory, SSD and HDD in GiB.
    plausible_max_cores: int = Field(default=1024, ge=1)
    plausible_max_memory_gib: int = Field(default=24 * 1024, ge=1)
    plausible_max_ssd_gib: int = Field(default=1024 * 1024, ge=1)
    plausible_max_hdd_gib: int = Field(default=4 * 1024 * 1024, ge=1)
    #: A payout address that is new or changed against the previous period is flagged in review.
    flag_address_changes: bool = True

    @field_validator("*", mode="before")
    @classmethod
    def _no_secret_seed(cls, value: object) -> object:
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            text = item.get_secret_value() if isinstance(item, SecretStr) else str(item)
            if has_seed(text):
                raise ValueError(
                    "holds a value shaped like a Stellar secret seed (S...); a secret seed belongs in a "
                    "key file only its owner can read, and this setting never takes one (treat the seed "
                    "as exposed if it was shared)"
                )
        return value

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
            if not is_valid_public_key(key):
                raise ValueError(f"approver {redact(key)!r} is not a Stellar public key (G...)")
        return value

    @model_validator(mode="after")
    def _strict_networks(self) -> Settings:
        if self.network in STRICT_NETWORKS and not self.state_dir.is_absolute():
            raise ValueError(
                f"PAYOUTS_STATE_DIR must be an absolute path on the {self.network} network "
                f"(got a relative one, {redact(str(self.state_dir))!r}, which depends on the current directory)"
            )
        return self

    @property
    def strict(self) -> bool:
        """Main and test networks: the ledger must exist (`payouts db init`), paths are absolute."""
        return self.network in STRICT_NETWORKS

    def sqlite_ledger_path(self) -> Path | None:
        """The SQLite ledger file, or None when the ledger is another database."""
        from sqlalchemy.engine import make_url  # a command that never opens the ledger starts without it

        url = make_url(self.ledger_url())
        if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
            return None
        return Path(url.database)

    def ledger_url(self) -> str:
        if self.database_url is not None:
            return with_driver(self.database_url.get_secret_value())
        return f"sqlite:///{self.state_dir / 'payouts.sqlite3'}"

    def ledger_url_for_display(self) -> str:
        """The ledger URL with any password masked, safe for logs and error messages."""
        from sqlalchemy.engine import make_url

        url = make_url(self.ledger_url())
        if url.host and "@" in url.host:  # a password holding "@": the parser split it at the first one
            url = url.set(host=url.host.rpartition("@")[2])
        return url.render_as_string(hide_password=True)


def env_file_for(environ: dict[str, str] | None = None, state_dir: Path | None = None) -> Path:
    """The `.env` the settings read: PAYOUTS_ENV_FILE, else the state folder's."""
    environ = dict(os.environ) if environ is None else environ
    named = environ.get(ENV_FILE_VARIABLE)
    if named:
        return Path(named)
    folder = state_dir or Path(environ.get("PAYOUTS_STATE_DIR") or DEFAULT_STATE_DIR)
    return folder / ".env"


def describe_errors(exc: ValidationError) -> str:
    """Each failing setting once by its environment name with what is wrong, never its value."""
    return describe_settings(exc)


def load_settings(**values: Any) -> Settings:
    """The settings from the environment and the state folder's `.env` (or PAYOUTS_ENV_FILE);
    keyword values win. Raises SettingsError (naming the settings, never their values)."""
    state_dir = values.get("state_dir")
    env_file = env_file_for(state_dir=Path(state_dir) if state_dir is not None else None)
    if os.environ.get(ENV_FILE_VARIABLE) and not env_file.is_file():
        raise SettingsError(f"{ENV_FILE_VARIABLE} names {redact(str(env_file))}, which is not a file")
    try:
        return Settings(_env_file=env_file if env_file.is_file() else None, **values)
    except ValidationError as exc:
        raise SettingsError(describe_errors(exc)) from None


def with_driver(url: str) -> str:
    """`postgres://` and `postgresql://` (as hosting providers write them) use the psycopg driver."""
    for scheme in ("postgres://", "postgresql://"):
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url
