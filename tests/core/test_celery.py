"""Celery is configured for at-least-once delivery, and a real worker + beat produce heartbeats."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.core.cache import cache

from marketplace.celery import app
from marketplace.core import health
from tests.fixtures import ROOT


def test_tasks_are_acknowledged_late_and_redelivered_if_a_worker_dies() -> None:
    conf = app.conf

    assert conf.task_acks_late is True
    assert conf.task_reject_on_worker_lost is True
    assert conf.broker_transport_options["visibility_timeout"] > conf.task_time_limit
    assert conf.broker_url == settings.REDIS_URL


def test_beat_schedules_the_heartbeat_from_settings() -> None:
    schedule = app.conf.beat_schedule
    app.loader.import_default_modules()  # what a worker does at start: autodiscover tasks

    assert schedule["heartbeat"]["task"] == "marketplace.tasks.heartbeat"
    assert schedule["heartbeat"]["schedule"] < settings.HEARTBEAT_MAX_AGE_SECONDS
    assert "marketplace.tasks.heartbeat" in app.tasks


@pytest.mark.stack
@pytest.mark.django_db
def test_a_real_worker_and_beat_write_the_heartbeat(tmp_path: Path) -> None:
    cache.delete(health.HEARTBEAT_KEY)
    env = {**os.environ, "HEARTBEAT_INTERVAL_SECONDS": "1"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "marketplace",
            "worker",
            "--beat",
            "--concurrency=1",
            "--loglevel=WARNING",
            f"--schedule={tmp_path / 'beat'}",
        ],
        cwd=ROOT,
        env=env,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while cache.get(health.HEARTBEAT_KEY) is None and time.monotonic() < deadline:
            assert process.poll() is None, "celery exited early"
            time.sleep(0.2)
        assert cache.get(health.HEARTBEAT_KEY) is not None
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(30)


def test_beat_expires_orders_and_offers() -> None:
    entry = app.conf.beat_schedule["market-expiry"]

    assert entry["task"] == "marketplace.tasks.expire_orders_and_offers"
    assert entry["schedule"] <= 60


def test_every_scheduled_task_is_registered() -> None:
    app.loader.import_default_modules()  # what a worker does at start: autodiscovery
    for entry in app.conf.beat_schedule.values():
        assert entry["task"] in app.tasks, entry["task"]
