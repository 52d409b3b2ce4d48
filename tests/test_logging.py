"""The log an admin reads: one line per event with ids (never names), libraries' routine noise at DEBUG,
OpenCV's own warnings kept off stderr (our lines say what happened)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import REPO, run_kiosk
from kiosk.base.events import Event, EventKind


def test_an_event_is_one_readable_line_with_ids_and_never_a_name() -> None:
    punched = Event(EventKind.PUNCHED, employee_id="E003", name="Wang Li", method="face", score=0.714,
                    latency_ms=151.4, punch_id="0192c1d2-0000-7000-8000-000000000001", local_time="08:57",
                    direction="IN")
    assert punched.log_line() == ("punched E003 by face IN in 151 ms "
                                  "(score 0.71, punch 0192c1d2-0000-7000-8000-000000000001)")
    lines = [punched.log_line(),
             Event(EventKind.ALREADY_PUNCHED, employee_id="E003", name="Wang Li", method="face",
                   local_time="08:57").log_line(),
             Event(EventKind.CAMERA_OFFLINE, detail="no frame for 10 s; reopening").log_line(),
             Event(EventKind.TIME_UNVERIFIED, punch_id="p1").log_line(),
             Event(EventKind.READER_ONLINE).log_line()]
    assert lines[1:] == ["already_punched E003 at 08:57", "camera_offline: no frame for 10 s; reopening",
                         "time_unverified (punch p1)", "reader_online"]
    assert all("Wang" not in line and line == line.strip() and "  " not in line for line in lines)


SCHEDULER = textwrap.dedent("""
    import sys, threading, time
    from apscheduler.schedulers.background import BackgroundScheduler
    from kiosk.cli.util import configure_logging
    configure_logging(sys.argv[1])
    done = threading.Event()
    def slow():  # longer than its interval, as a watch tick on a loaded machine
        time.sleep(0.3)
        done.set()
    scheduler = BackgroundScheduler(job_defaults={"coalesce": True, "max_instances": 1})
    scheduler.add_job(slow, "interval", seconds=0.05)
    scheduler.start()
    done.wait(30)
    time.sleep(0.3)
    scheduler.shutdown(wait=True)
""")


def run_scheduler(level: str) -> str:
    proc = subprocess.run([sys.executable, "-c", SCHEDULER, level], capture_output=True, text=True, timeout=60,
                          cwd=REPO, env={"PYTHONPATH": str(REPO)})
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


def test_a_skipped_scheduler_tick_is_routine_not_a_warning() -> None:
    quiet = run_scheduler("INFO")
    assert "maximum number of running instances" not in quiet and "WARNING" not in quiet
    debugging = run_scheduler("DEBUG")
    skipped = [line for line in debugging.splitlines() if "maximum number of running instances" in line]
    assert skipped and all(" DEBUG apscheduler." in line for line in skipped)


def test_opencvs_own_warnings_stay_off_stderr_and_our_reason_is_there(tmp_path) -> None:  # noqa: ANN001
    """A camera that cannot be opened is retried: OpenCV would print a '[ WARN:0@...]' line per try."""
    result = run_kiosk("hw", "read", "camera", "--source", f"v4l2:{tmp_path}/video9", "--count", "1",
                       "--timeout", "3")
    assert result.returncode == 1
    assert "[ WARN" not in result.stderr and "VIDEOIO" not in result.stderr
    assert f"cannot open v4l2:{tmp_path}/video9" in result.stdout + result.stderr


def test_a_punch_is_one_info_line_that_says_the_clock_is_unverified(caplog) -> None:  # noqa: ANN001
    from kiosk.base.events import EventBus
    from kiosk.punching.policy import punch_detail

    bus = EventBus(stdout_json=False)
    with caplog.at_level("DEBUG", logger="kiosk.base.events"):
        bus.publish(Event(EventKind.PUNCHED, employee_id="E001", name="Li Na", method="card", punch_id="p1",
                          detail=punch_detail("", "unverified")))
        bus.publish(Event(EventKind.TIME_UNVERIFIED, punch_id="p1"))
    info = [r.getMessage() for r in caplog.records if r.levelname == "INFO"]
    assert info == ["event punched E001 by card (punch p1, clock unverified)"]
    assert punch_detail("outside_geofence", "verified") == "outside_geofence"


def test_stdout_events_carry_ids_and_method_never_a_name_or_score() -> None:
    punched = Event(EventKind.PUNCHED, employee_id="E003", name="Wang Li", method="face", score=0.714)
    assert punched.stdout_dict() == {"kind": "punched", "ts_utc": punched.ts_utc, "employee_id": "E003",
                                     "method": "face"}
    assert punched.stdout_dict(personal=True)["name"] == "Wang Li"


def test_the_daemons_stdout_by_default_has_no_name(kiosk_home, invoke) -> None:
    """The reported leak: every punch's name went to the plaintext journal through stdout."""
    from daemon_support import start_daemon
    added = invoke("employee", "add", "X1", "--name", "Wang Li", "--card", "4000", "--config", str(kiosk_home))
    assert added.exit_code == 0, added.output
    daemon = start_daemon(kiosk_home, "rfid.port='fake:?cards=0000004000&every_s=0.5&repeats=1'")
    try:
        punched = daemon.wait_events(lambda events: next((e for e in events if e["kind"] == "punched"), None),
                                     60, "the card's punch on stdout")
    finally:
        assert daemon.stop() == 0, daemon.log()
    assert (punched["employee_id"], punched["method"]) == ("X1", "card")
    assert "name" not in punched and "score" not in punched
    assert "Wang" not in "".join(daemon.out.lines) and "Wang" not in daemon.log()
