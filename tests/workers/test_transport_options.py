"""How soon the Redis transport offers a dead worker's task again: about the visibility timeout
after it was taken, whatever that timeout is."""

from __future__ import annotations

import pytest

from workers.celery_app import broker_transport_options


def _sweep_s(options: dict[str, int]) -> int:
    # the transport looks every `interval` seconds and scans on every `throttle`-th look
    return options["unacked_restore_interval"] * options["unacked_restore_throttle"]


@pytest.mark.parametrize("visibility_timeout_s", [1, 5, 30, 60, 300, 3600, 86400])
def test_scans_for_dead_workers_tasks_are_a_fifth_of_the_timeout_apart_at_most(visibility_timeout_s):
    options = broker_transport_options(visibility_timeout_s)
    assert options["visibility_timeout"] == visibility_timeout_s
    assert 1 <= _sweep_s(options) <= max(1, visibility_timeout_s // 5)
    assert _sweep_s(options) <= 100


def test_the_default_timeout_keeps_the_transports_own_pace():
    options = broker_transport_options(3600)
    assert (options["unacked_restore_interval"], options["unacked_restore_throttle"]) == (10, 10)
