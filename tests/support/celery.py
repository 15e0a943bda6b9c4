"""Pointing this process's Celery app (producer and in-thread workers) at a test's broker."""

from __future__ import annotations

from config.settings import Settings
from workers.base import PayoutTask
from workers.celery_app import app, broker_transport_options


def use_settings(settings: Settings) -> None:
    app.conf.update(
        broker_url=settings.broker_url.get_secret_value(),
        payouts_settings=settings,
        broker_transport_options=broker_transport_options(settings.visibility_timeout_s),
    )
    if app._pool is not None:  # connections to an earlier test's broker
        app._pool.force_close_all()
        app._pool = None
    app.amqp._producer_pool = None
    PayoutTask._engine = None
