"""The agent's APScheduler jobs: watch, push, roster, heartbeat and retention, one thread pool."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

if TYPE_CHECKING:
    from sync.agent import Agent

RETENTION_INTERVAL_S = 3600
JOB_DEFAULTS = {"coalesce": True, "max_instances": 1, "misfire_grace_time": 30}


def build_scheduler(agent: Agent) -> BackgroundScheduler:
    """Jobs of one agent. Hub calls go through ``agent.guarded`` (shared backoff, never raises)."""
    cfg = agent.cfg
    scheduler = BackgroundScheduler(executors={"default": ThreadPoolExecutor(4)}, job_defaults=JOB_DEFAULTS,
                                    timezone="UTC")
    now = datetime.now().astimezone()
    scheduler.add_job(agent.watch, "interval", id="watch", name="watch for new punches",
                      seconds=cfg.watch_interval_ms / 1000)
    scheduler.add_job(agent.scheduled_push, "interval", id="push", name="push punches",
                      seconds=cfg.push_interval_s, next_run_time=now)
    scheduler.add_job(agent.guarded, "interval", args=["roster", agent.pull_roster], id="roster",
                      name="pull roster", seconds=cfg.roster_interval_s, next_run_time=now + timedelta(seconds=1))
    scheduler.add_job(agent.guarded, "interval", args=["enrolments", agent.send_enrolments], id="enrolments",
                      name="send kiosk enrolments", seconds=cfg.roster_interval_s,
                      next_run_time=now + timedelta(seconds=1))
    scheduler.add_job(agent.guarded, "interval", args=["heartbeat", agent.heartbeat], id="heartbeat",
                      name="heartbeat", seconds=cfg.heartbeat_interval_s, next_run_time=now + timedelta(seconds=2))
    if cfg.retention_days > 0:
        scheduler.add_job(agent.local, "interval", args=["retention", agent.retention], id="retention",
                          name="retention purge", seconds=RETENTION_INTERVAL_S,
                          next_run_time=now + timedelta(seconds=30))
    return scheduler
