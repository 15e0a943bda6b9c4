"""Rehearsal tools: `payouts keys new`, and reading a sandbox accounts file for `synth`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer

from payouts.files import write_atomic

keys_app = typer.Typer(
    help="Stellar keys for approvers, treasury signers and payout accounts.",
    no_args_is_help=True,
)


def sandbox_farmers(path: Path) -> list[str]:
    """The farmers' public keys of a `payouts sandbox init` accounts file (secrets are not read out)."""
    from payouts.cli.console import abort

    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        abort(f"--accounts {path}: {exc.strerror or exc}", code=2)
    except ValueError:
        abort(f"--accounts {path}: not JSON (expected a file written by `payouts sandbox init --out`)", code=2)
    farmers = document.get("farmers") if isinstance(document, dict) else None
    if not isinstance(farmers, list) or not farmers:
        abort(f"--accounts {path}: no farmers (expected a file written by `payouts sandbox init --out`)", code=2)
    addresses = [f.get("public_key") for f in farmers if isinstance(f, dict)]
    if not all(isinstance(a, str) and a.startswith("G") for a in addresses):
        abort(f"--accounts {path}: a farmer without a public key", code=2)
    return [str(a) for a in addresses]


def write_new_key(out: Path) -> str:
    """Write a new Stellar seed to `out` (mode 0600, all or nothing, never over an existing
    file); return its public key."""
    from stellar_sdk import Keypair

    keypair = Keypair.random()
    out = out.expanduser()
    if out.exists():
        raise FileExistsError(f"{out} already exists; a key file is never overwritten (choose another --out)")
    write_atomic(out, keypair.secret + "\n", private=True, overwrite=False)
    return keypair.public_key


@keys_app.command("new")
def new(
    out: Annotated[Path, typer.Option("--out", "-o", help="Key file to create (mode 600; never overwritten).")],
) -> None:
    """Make a new Stellar key: the seed goes to --out only, the public key to the terminal.

    Example (an approver's key, then the setting that trusts it):

    \b
      payouts keys new --out ~/keys/approver.key
      export PAYOUTS_APPROVERS=G...   # the public key printed above
    """
    from payouts.cli.console import abort, err_console

    try:
        public_key = write_new_key(out)
    except FileExistsError as exc:
        abort(str(exc), code=2)
    except OSError as exc:
        abort(f"cannot write {out}: {exc.strerror or exc}", code=2)
    typer.echo(public_key)
    err_console.print(f"secret seed written to {out} (mode 600); keep it offline")


def next_trigger(schedule_cron: str, every_s: float | None, now: datetime) -> datetime:
    """When beat next fires the monthly job (UTC), from PAYOUTS_SCHEDULE_CRON or _EVERY_S."""
    if every_s:
        return now + timedelta(seconds=every_s)
    from celery.schedules import crontab

    fields = schedule_cron.split()
    if len(fields) != 5:
        raise ValueError(f"PAYOUTS_SCHEDULE_CRON needs five fields (minute hour day month weekday), not {len(fields)}")
    minute, hour, day_of_month, month_of_year, day_of_week = fields
    # the next moment the schedule matches strictly after `now`, to the minute
    start = now.replace(second=0, microsecond=0)
    schedule = crontab(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month_of_year,
        day_of_week=day_of_week,
        nowfun=lambda: start,
    )
    return (start + schedule.remaining_estimate(start)).astimezone(UTC)


def human_utc(moment: datetime, now: datetime | None = None) -> str:
    """`Wed 2 Dec 2026 02:00 UTC (in 1 h 14 min)`: a time an operator reads at a glance."""
    moment = moment.astimezone(UTC)
    text = f"{moment:%a} {moment.day} {moment:%b %Y %H:%M} UTC"
    if now is not None:
        seconds = int((moment - now).total_seconds())
        if seconds >= 0:
            hours, rest = divmod(seconds, 3600)
            minutes = max(1, rest // 60) if hours == 0 else rest // 60
            text += f" (in {hours} h {minutes} min)" if hours else f" (in {minutes} min)"
    return text


def trigger_line(schedule_cron: str, every_s: float | None, period: str | None) -> str:
    """'the next trigger fires ...; to go now: payouts run --period P'."""
    now = datetime.now(UTC)
    try:
        when = human_utc(next_trigger(schedule_cron, every_s, now), now)
    except ValueError as exc:
        when = f"unknown ({exc})"
    go = f"payouts run --period {period}" if period else "payouts run --period YYYY-MM"
    return f"next trigger: {when}; to go now: {go}"
