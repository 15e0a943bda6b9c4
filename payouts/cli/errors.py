"""Expected failures in an operator's words: what is wrong, where, and what to do.

`describe(error)` turns a failure an operator can cause or meet (a bad setting, the ledger,
Redis or Horizon unreachable, a key file) into one or two lines; anything else is a bug and keeps
its traceback. Nothing here imports a heavy module: a class is recognised by its module and
name along its MRO, so `payouts --help` stays quick.

Secrets never appear: a setting's value is never echoed (it may be a seed or a password), and
URLs are shown with their credentials masked.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from config.errors import describe_settings, setting_errors

__all__ = ["describe", "describe_settings", "mask_url", "setting_errors"]


@dataclass
class Invocation:
    """What the command line knows of the command that failed (set by the root callback)."""

    command: str | None = None
    horizon_url: str | None = None
    ledger_url: str | None = None
    broker_url: str | None = None


current = Invocation()


def mask_url(url: str) -> str:
    """`scheme://user:***@host/path`: a password (or a lone token) in a URL is never shown."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(a malformed URL)"
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    masked = f"{user}:***" if has_password else "***"
    return urlunsplit((parts.scheme, f"{masked}@{hostport}", parts.path, parts.query, parts.fragment))


def _class_names(error: BaseException) -> set[str]:
    return {f"{cls.__module__}.{cls.__qualname__}" for cls in type(error).__mro__}


def _is(error: BaseException, *names: str) -> bool:
    found = _class_names(error)
    return any(name in found for name in names)


def _rerun_hint() -> str:
    command = current.command
    if command in {"pay", "reconcile"}:
        return f"nothing was lost or paid twice; rerun `payouts {command}` when it answers (a rerun is safe)"
    if command:
        return f"rerun `payouts {command}` when it answers (a rerun is safe)"
    return "rerun the command when it answers (a rerun is safe)"


def _refused_or(text: str) -> str:
    lowered = text.lower()
    if "refused" in lowered:
        return "connection refused"
    if "timed out" in lowered or "timeout" in lowered:
        return "timed out"
    if "name or service not known" in lowered or "nodename nor servname" in lowered or "resolve" in lowered:
        return "host name not found"
    if "password authentication failed" in lowered:
        return "password authentication failed"
    if "does not exist" in lowered:
        match = re.search(r'database "([^"]+)" does not exist', text)
        return f"database {match.group(1)!r} does not exist" if match else "it does not exist"
    return "cannot connect"


def describe(error: BaseException) -> str | None:
    """The operator's message for an expected failure, or None for a bug (keep its traceback)."""
    if _is(error, "pydantic_core._pydantic_core.ValidationError") and _is_settings(error):
        return describe_settings(error)
    if _is(error, "payouts.stellar.horizon.HorizonUnavailable"):
        where = mask_url(current.horizon_url) if current.horizon_url else "PAYOUTS_HORIZON_URL"
        return f"Horizon at {where} did not answer ({error}).\n{_rerun_hint()}; check PAYOUTS_HORIZON_URL."
    if _is(error, "httpx.TransportError"):
        url = _httpx_url(error) or current.horizon_url or "?"
        return f"cannot reach {mask_url(url)}: {_refused_or(str(error))} ({type(error).__name__}).\n{_rerun_hint()}."
    if _is(error, "sqlalchemy.exc.OperationalError", "sqlalchemy.exc.DisconnectionError", "psycopg.OperationalError"):
        where = current.ledger_url or "the ledger"
        return (
            f"cannot open the ledger at {where}: {_refused_or(str(error))}.\n"
            "Start the database or fix PAYOUTS_DATABASE_URL, then rerun (a rerun is safe)."
        )
    if _is(error, "sqlalchemy.exc.ArgumentError", "sqlalchemy.exc.NoSuchModuleError") or (
        isinstance(error, ValueError) and _raised_in(error, "sqlalchemy/engine/url")  # a port like "abc"
    ):
        return (
            "PAYOUTS_DATABASE_URL is not a ledger URL this program can open: use "
            "postgresql://user:password@host/db (or postgres://, postgresql+psycopg://) or sqlite:///path."
        )
    if isinstance(error, ModuleNotFoundError) and _raised_in(error, "sqlalchemy/dialects"):
        return (
            f"PAYOUTS_DATABASE_URL names a database driver that is not installed ({error.name}): "
            "use postgresql://user:password@host/db or sqlite:///path."
        )
    if _is(error, "redis.exceptions.ConnectionError", "kombu.exceptions.OperationalError"):
        where = current.broker_url or "PAYOUTS_BROKER_URL"
        return (
            f"cannot reach Redis at {where}: {_refused_or(str(error))}.\n"
            "Start Redis or fix PAYOUTS_BROKER_URL, then rerun (a rerun is safe)."
        )
    if _is(error, "payouts.stellar.keys.KeyFileError"):
        return f"{error}\nCheck PAYOUTS_PAYOUT_KEY_FILE, PAYOUTS_STELLAR_ACCOUNTS_FILE or the --key file."
    if _is(error, "payouts.ledger.errors.AlreadyDone"):
        return f"already done: {error} (nothing changed)."
    return None


def _is_settings(error: BaseException) -> bool:
    return getattr(error, "title", "") == "Settings"


def _httpx_url(error: BaseException) -> str | None:
    try:
        request = error.request  # type: ignore[attr-defined]
    except (AttributeError, RuntimeError):
        return None
    return str(request.url) if request is not None else None


def _raised_in(error: BaseException, path_part: str) -> bool:
    tb = error.__traceback__
    while tb is not None:
        if path_part in tb.tb_frame.f_code.co_filename:
            return True
        tb = tb.tb_next
    return False
