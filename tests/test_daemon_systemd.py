"""The daemon speaks systemd's notify protocol (READY, WATCHDOG, STATUS, STOPPING) and keeps evidence right."""

from __future__ import annotations

import socket
from datetime import timedelta
from pathlib import Path

from daemon_support import start_daemon
from waiting import wait_for

from kiosk.base.events import Event, EventKind
from kiosk.base.timeutil import iso_utc, utc_now
from kiosk.config import load_config
from kiosk.runtime.pipeline import face_thumbnail
from kiosk.store.punches import PunchDraft


def test_notify_ready_watchdog_stopping(kiosk_home: Path, tmp_path: Path) -> None:
    sock_path = tmp_path / "notify.sock"
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(str(sock_path))
    server.setblocking(False)
    messages: list[str] = []

    def received() -> list[str]:
        """Every datagram the daemon has sent so far (they queue on the socket until read)."""
        while True:
            try:
                messages.append(server.recv(4096).decode())
            except BlockingIOError:
                return messages

    daemon = start_daemon(kiosk_home, "rfid.port='fake:'",
                          env={"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "1000000"})
    try:
        wait_for(lambda: any("WATCHDOG=1" in m for m in received()), 120, interval_s=0.05,
                 what=lambda: f"a watchdog ping (got {messages})")
    finally:
        code = daemon.stop()
        received()  # the daemon has exited: whatever it sent is on the socket
        server.close()
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=mode face_or_card" in ready and "rfid" in ready
    assert "STOPPING=1" in messages[-1]
    assert code == 0, daemon.log()[-2000:]


def test_evidence_is_written_in_the_punch_transaction(fresh_store, kiosk_home: Path) -> None:
    """One durable commit per punch: the thumbnail is stored with the punch, or neither is."""
    import pytest

    from kiosk.base.errors import StoreError
    from kiosk.punching.record import record_punch
    from kiosk.time.trusted import clock_for
    fresh_store.roster.add("E001", "Li")
    clock = clock_for(load_config(kiosk_home), fresh_store)
    punch = record_punch(fresh_store, clock, "E001", "face", score=0.8, evidence=b"\xff\xd8thumb").punch
    assert fresh_store.query("SELECT jpeg FROM evidence WHERE punch_id = ?", [punch.id])[0]["jpeg"] == b"\xff\xd8thumb"
    with fresh_store.atomic() as db:
        db.execute("DROP TABLE evidence")  # the evidence write will fail: the punch must not stay alone
    with pytest.raises(StoreError):
        record_punch(fresh_store, clock, "E001", "face", score=0.8, evidence=b"\xff\xd8thumb")
    assert fresh_store.punches.count() == 1 and fresh_store.punches.verify().ok


def test_evidence_thumbnail_is_small_encrypted_and_expires(fresh_store, kiosk_home: Path) -> None:
    import numpy as np
    fresh_store.roster.add("E001", "Li")
    punch = fresh_store.punches.append(PunchDraft("E001", "face", score=0.8))
    frame = np.random.default_rng(1).integers(0, 255, (480, 640, 3), dtype=np.uint8)
    fresh_store.evidence.add(punch.id, face_thumbnail(frame, np.array([200, 100, 360, 300], dtype=np.float32)))
    row = fresh_store.query("SELECT jpeg FROM evidence WHERE punch_id = ?", [punch.id])[0]
    assert row["jpeg"][:2] == b"\xff\xd8" and len(row["jpeg"]) < 20_000
    assert len(face_thumbnail(frame, np.array([200, 100, 360, 300]))) == len(row["jpeg"])
    assert fresh_store.evidence.purge(retention_days=30) == 0
    old = iso_utc(utc_now() - timedelta(days=40))
    with fresh_store.atomic() as db:
        db.execute("UPDATE evidence SET created_utc = ?", [old])
    assert fresh_store.evidence.purge(retention_days=30) == 1
    assert fresh_store.query("SELECT count(*) AS n FROM evidence")[0]["n"] == 0
    thumbnail = face_thumbnail(frame, np.array([200, 100, 360, 300]))
    fresh_store.close()
    # The thumbnail is encrypted at rest: none of its bytes appear on disk.
    assert thumbnail[:64] not in load_config(kiosk_home).store.path.read_bytes()


def test_event_never_carries_images() -> None:
    event = Event(EventKind.PUNCHED, employee_id="E001", name="Li", score=0.7)
    assert set(event.to_dict()) <= {"kind", "ts_utc", "employee_id", "name", "local_time", "method", "score",
                                    "punch_id", "latency_ms", "detail"}
