"""The Celery app: Redis broker, settings for money work, structured logs with task context."""

from __future__ import annotations

import structlog
from celery import Celery, signals
from celery.schedules import crontab

from config.logging import configure_logging
from config.settings import Settings, load_settings


def create_app(settings: Settings | None = None) -> Celery:
    settings = settings or load_settings()
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
        broker_transport_options={"visibility_timeout": settings.visibility_timeout_s},
        broker_connection_retry_on_startup=True,
        worker_hijack_root_logger=False,
    )
    # beat: one active scheduler across processes (RedBeat's lock in Redis); it fires the
    # reconciler, which is harmless when late, missed or doubled
    minute, hour, day_of_month, month_of_year, day_of_week = _cron_fields(settings.schedule_cron)
    app.conf.update(
        beat_scheduler="redbeat.RedBeatScheduler",
        redbeat_redis_url=settings.broker_url.get_secret_value(),
        redbeat_key_prefix="payouts:redbeat",
        # a standby beat takes over once the active one's lock lapses
        redbeat_lock_timeout=settings.beat_lock_timeout_s,
        beat_max_loop_interval=max(1, settings.beat_lock_timeout_s // 5),
        beat_schedule={
            "payouts-reconciler": {
                "task": "payouts.advance_due",
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


def _cron_fields(text: str) -> list[str]:
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"schedule_cron {text!r} needs five fields: minute hour day month weekday")
    return fields


app = create_app()


@signals.worker_process_init.connect
@signals.worker_init.connect
def _configure_worker_logging(**_kwargs) -> None:
    settings = app.conf.payouts_settings
    configure_logging(settings.log_format, settings.log_level)


@signals.task_prerun.connect
def _bind_task_context(task_id=None, task=None, **_kwargs) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(task_id=task_id, task=getattr(task, "name", None))


@signals.task_postrun.connect
def _clear_task_context(**_kwargs) -> None:
    structlog.contextvars.clear_contextvars()
