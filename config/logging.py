"""The one place structlog is configured (CLI, workers and web call `configure_logging`).

Output is a readable console in a terminal and JSON lines elsewhere. Context such as run_id,
period and task_id is bound with `structlog.contextvars` and merged into every line.
"""

from __future__ import annotations

import logging
import sys

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from payouts.redact import has_seed, redact

_SECRET_KEYS = ("secret", "password", "seed", "private_key", "database_url")


def _drop_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Last line of defence: a field whose name says it is secret is never written."""
    for key in list(event_dict):
        if any(marker in key.lower() for marker in _SECRET_KEYS):
            event_dict[key] = "**redacted**"
    return event_dict


def _scrub(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    if isinstance(value, BaseException) or (not isinstance(value, int | float | bool) and value is not None):
        text = str(value)
        return redact(text) if has_seed(text) else value
    return value


def _redact_seeds(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Whatever a field is called, a value shaped like a secret seed is blanked out."""
    for key, value in event_dict.items():
        event_dict[key] = _scrub(value)
    return event_dict


class _SeedFilter(logging.Filter):
    """The same for library loggers going through the standard library."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if has_seed(message):
            record.msg, record.args = redact(message), None
        return True


class _CurrentStderr:
    """Writes to whatever sys.stderr is at the time of the write (test runners swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


#: Loggers of libraries and their level: their INFO is chatter, their WARNING is worth a line.
_LIBRARY_LEVELS = {
    "celery": logging.INFO,
    "celery.redirected": logging.WARNING,
    "kombu": logging.WARNING,
    "amqp": logging.WARNING,
    "alembic": logging.WARNING,
    "sqlalchemy": logging.WARNING,
    "httpx": logging.WARNING,
    "httpcore": logging.WARNING,
    "redbeat": logging.INFO,
}


_HANDLER_NAME = "payouts.structlog"


def _logger_name(logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """The standard library's logger name as `logger` (a product line names its module itself)."""
    record = event_dict.get("_record")
    if record is not None and "logger" not in event_dict:
        event_dict["logger"] = record.name
    return event_dict


def configure_logging(fmt: str = "auto", level: str = "INFO", stream=None) -> None:
    """One log shape for every line of the process: structlog's and the standard library's
    (Celery, Alembic, Hypercorn) alike, JSON lines in production and a console in a terminal."""
    stream = stream or _CurrentStderr()
    use_json = fmt == "json" or (fmt == "auto" and not stream.isatty())
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _drop_secrets,
        _redact_seeds,
    ]
    renderer: list[Processor]
    if use_json:
        renderer = [structlog.processors.dict_tracebacks, _redact_seeds, structlog.processors.JSONRenderer()]
    else:
        renderer = [
            structlog.processors.format_exc_info,
            _redact_seeds,
            structlog.dev.ConsoleRenderer(colors=stream.isatty()),
        ]
    structlog.configure(
        processors=[*shared, *renderer],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        logger_factory=structlog.PrintLoggerFactory(file=stream),
        cache_logger_on_first_use=False,
    )
    # the standard library's loggers (Celery, Alembic, Hypercorn) render through the same chain
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.ExtraAdder(), _logger_name, *shared],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    handler.set_name(_HANDLER_NAME)
    handler.addFilter(_SeedFilter())  # a library's line never shows a seed either
    root = logging.getLogger()
    for old in list(root.handlers):
        if old.get_name() == _HANDLER_NAME:  # ours from an earlier call; others' handlers stay
            root.removeHandler(old)
    root.addHandler(handler)
    for other in root.handlers:  # a handler someone else added (a test runner, a host) too
        if not any(isinstance(f, _SeedFilter) for f in other.filters):
            other.addFilter(_SeedFilter())
    root.setLevel(logging.getLevelName(level))
    logging.captureWarnings(True)  # a library's warning is a WARNING line of the same shape
    for name, library_level in _LIBRARY_LEVELS.items():
        logging.getLogger(name).setLevel(max(library_level, logging.getLevelName(level)))
