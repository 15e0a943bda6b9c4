"""The Celery app: Redis broker, settings for money work, structured logs with task context."""

from __future__ import annotations

import inspect
import sys

import structlog
from celery import Celery, signals
from celery.schedules import crontab

from config.logging import configure_logging
from config.settings import Settings, SettingsError, load_settings
from payouts.periods import Period


def create_app(settings: Settings | None = None) -> Celery:
    if settings is None:
        try:
            settings = load_settings()
        except SettingsError as exc:
            # a worker or beat with a bad setting says which, in one short message, and stops
            sys.stderr.write(f"error: {exc}\n")
            raise SystemExit(2) from None
    app = Celery("payouts", include=["workers.tasks"])
    app.conf.update(
        broker_url=settings.broker_url.get_secret_value(),
        # a task is acknowledged only when it finished; a killed worker's task comes back
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        task_ignore_result=True,
        enable_utc=True,
        timezone="UTC",
        broker_transport_options=broker_transport_options(settings.visibility_timeout_s),
        broker_connection_retry_on_startup=True,
        # one log shape: Celery's own loggers go through structlog's formatter (setup_logging
        # below); product events are structlog lines, never print()ed into "celery.redirected"
        worker_hijack_root_logger=False,
        worker_redirect_stdouts=False,
    )
    # beat: one active scheduler across processes (RedBeat's lock in Redis); it fires the
    # monthly job, which is harmless when late, missed or doubled
    minute, hour, day_of_month, month_of_year, day_of_week = _cron_fields(settings.schedule_cron)
    app.conf.update(
        beat_scheduler="redbeat.RedBeatScheduler",
        redbeat_redis_url=settings.broker_url.get_secret_value(),
        redbeat_key_prefix="payouts:redbeat",
        # a standby beat takes over once the active one's lock lapses
        redbeat_lock_timeout=settings.beat_lock_timeout_s,
        beat_max_loop_interval=max(1, settings.beat_lock_timeout_s // 5),
        # RedBeat deletes a static entry no longer named here (the old "payouts-reconciler")
        # when beat starts; a trigger it queued before runs under the old task name's alias
        beat_schedule={
            "payouts-monthly-job": {
                "task": "payouts.monthly_job",
                "schedule": settings.schedule_every_s
                or crontab(
                    minute=minute,
                    hour=hour,
                    day_of_month=day_of_month,
                    month_of_year=month_of_year,
                    day_of_week=day_of_week,
                ),
            },
        },
    )
    app.conf.payouts_settings = settings
    return app


def broker_transport_options(visibility_timeout_s: int) -> dict[str, int]:
    """Redis transport options: a task taken by a worker that died is offered again about
    `visibility_timeout_s` after it was taken.

    The transport looks for such tasks every `unacked_restore_interval` seconds but scans only
    on every `unacked_restore_throttle`-th look (10 s and 10 by default: every 100 s), so a short
    visibility timeout would otherwise wait up to 100 s more. The scans are kept about a fifth of
    the timeout apart, and never more than 100 s, as by default.
    """
    sweep_s = min(max(visibility_timeout_s // 5, 1), 100)
    interval_s = min(sweep_s, 10)
    return {
        "visibility_timeout": visibility_timeout_s,
        "unacked_restore_interval": interval_s,
        "unacked_restore_throttle": max(sweep_s // interval_s, 1),
    }


def _cron_fields(text: str) -> list[str]:
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"schedule_cron {text!r} needs five fields: minute hour day month weekday")
    return fields


app = create_app()


@signals.celeryd_init.connect
@signals.setup_logging.connect
@signals.worker_process_init.connect
@signals.beat_init.connect
def _configure_worker_logging(**_kwargs) -> None:
    # connected to setup_logging, Celery leaves the root logger to us (no plain-text handler)
    settings = app.conf.payouts_settings
    configure_logging(settings.log_format, settings.log_level)


#: task argument -> the context key it is logged under
_CONTEXT_ARGUMENTS = {"run_id": "run_id", "period_offset": "period"}


@signals.task_prerun.connect
def _bind_task_context(task_id=None, task=None, args=None, kwargs=None, **_kwargs) -> None:
    structlog.contextvars.clear_contextvars()
    context: dict[str, object] = {"task_id": task_id, "task": getattr(task, "name", None)}
    context.update(_task_arguments(task, args or (), kwargs or {}))
    structlog.contextvars.bind_contextvars(**context)


def _task_arguments(task, args, kwargs) -> dict[str, object]:
    """run_id and period from a task's arguments (the unit of work is injected, not passed)."""
    try:
        parameters = [p for p in inspect.signature(task.run).parameters if p not in {"self", "uow"}]
    except (TypeError, ValueError):
        return {}
    values = dict(zip(parameters, args, strict=False)) | dict(kwargs)
    found: dict[str, object] = {}
    for argument, key in _CONTEXT_ARGUMENTS.items():
        if argument in values:
            value = values[argument]
            if key == "period" and isinstance(value, int):
                value = Period(value).label
            found[key] = value
    return found


@signals.task_postrun.connect
def _clear_task_context(**_kwargs) -> None:
    structlog.contextvars.clear_contextvars()
