"""The real daemon (`kiosk run`) on image-sequence cameras built from real photos, fake readers at the edge."""

from __future__ import annotations

import json
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from daemon_support import copy_home, enrol, kinds, run_daemon, start_daemon, write_sequence
from ui_support import free_port
from waiting import wait_for, wait_state

from conftest import skip_or_fail
from hardware.device import DeviceState
from hardware.rfid_protocols import encode_em4100
from kiosk.base.events import EventBus, EventKind
from kiosk.config import load_config
from kiosk.runtime.daemon import KioskDaemon
from kiosk.store import open_store

CARD_A = "0008075634"


@pytest.fixture(scope="module")
def people(face_data: Path) -> dict[str, list[Path]]:
    def photos(identity: str) -> list[Path]:
        return sorted((face_data / identity).iterdir())
    return {"A": photos("Ariel_Sharon"), "B": photos("Alex_Lacamoire"), "stranger": photos("Arnold_Schwarzenegger")}


@pytest.fixture(scope="module")
def enrolled_home(tmp_path_factory: pytest.TempPathFactory, people) -> Path:
    """A kiosk home with A (photos 1-2, card) and B (photo 1) enrolled through the real CLI."""
    from conftest import run_kiosk
    home = tmp_path_factory.mktemp("enrolled") / "kiosk"
    run_kiosk("init", str(home), check=True)
    config = home / "kiosk.toml"
    enrol(config, "E001", "Ariel Sharon", people["A"][:2], "--card", CARD_A)
    enrol(config, "E002", "Alex Lacamoire", people["B"][:1])
    return config


@pytest.fixture
def home(enrolled_home: Path, tmp_path: Path) -> Path:
    return copy_home(enrolled_home, tmp_path / "kiosk")


def _punches(config: Path) -> list:
    with open_store(load_config(config)) as store:
        assert store.punches.verify().ok
        return list(store.punches.iter())


def test_enrolled_punches_once_stranger_never_repeat_is_debounced(home: Path, tmp_path: Path, people) -> None:
    camera = write_sequence(tmp_path / "cam", [
        (None, 3), (people["A"][2], 8), (None, 8),
        (people["stranger"][0], 8), (None, 8),
        (people["A"][3], 8), (None, 8)])
    proc, events = run_daemon(home, f"camera.source='images:{camera}?fps=0'", "liveness.enabled=false",
                              "punch.debounce_s=600", "store.evidence_thumbnails=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert kinds(events) == ["punched", "not_recognised", "already_punched"]
    punches = _punches(home)
    assert [(p.employee_id, p.method) for p in punches] == [("E001", "face")]
    assert punches[0].score > 0.4
    with open_store(load_config(home)) as store:  # the face thumbnail came with the punch, in its transaction
        (row,) = store.query("SELECT punch_id, jpeg FROM evidence")
    assert row["punch_id"] == punches[0].id and row["jpeg"][:2] == b"\xff\xd8"


def test_a_masked_stranger_is_asked_to_lower_the_mask_then_not_recognised(home: Path, tmp_path: Path, people,
                                                                           face_engine) -> None:  # noqa: ANN001
    """A mask the recogniser cannot see past: the screen asks for it to come off (once), and the walk-up ends
    as not recognised as before; nobody punches."""
    import cv2

    from kiosk.face.conditions import CONDITIONS
    from kiosk.face.images import read_image

    photo = read_image(people["stranger"][1])
    face = face_engine.choose(face_engine.detect_photo(photo), photo.shape)
    masked = tmp_path / "masked.png"
    cv2.imwrite(str(masked), CONDITIONS["mask"](photo, face, 0))
    camera = write_sequence(tmp_path / "cam", [(None, 3), (masked, 16), (None, 8)])
    proc, events = run_daemon(home, f"camera.source='images:{camera}?fps=0'", "liveness.enabled=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert kinds(events) == ["uncover_face", "not_recognised"]
    asked = next(e for e in events if e["kind"] == "uncover_face")
    assert asked["detail"] == "mask" and _punches(home) == []


def test_still_photo_never_punches_with_liveness_on(home: Path, tmp_path: Path, people, video_data: Path) -> None:
    """A printed/screen photo held up, slightly moved and tilted, over many frames."""
    import cv2
    from daemon_support import compose
    folder = tmp_path / "attack"
    folder.mkdir()
    photo = cv2.imread(str(people["A"][2]))
    index = 0
    for step in range(60):
        # A hand-held photo: small shifts, a little zoom, and vertical squash as it tilts back.
        squash = 1.0 - 0.12 * abs(((step % 20) - 10) / 10)
        tilted = cv2.resize(photo, (photo.shape[1], max(1, int(photo.shape[0] * squash))))
        frame = compose(tilted, shift=(step % 5 - 2, step % 3 - 1), scale=1.0 + 0.01 * (step % 4))
        cv2.imwrite(str(folder / f"{index:05d}.jpg"), frame)
        index += 1
    proc, events = run_daemon(home, f"camera.source='images:{folder}?fps=15'", "liveness.enabled=true",
                              "liveness.mode=blink", "liveness.window_s=3")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "punched" not in kinds(events)
    assert "not_live" in kinds(events)
    assert _punches(home) == []


def test_card_and_face_refuses_the_wrong_face(home: Path, tmp_path: Path, people) -> None:
    wrong = write_sequence(tmp_path / "wrong", [(None, 10), (people["B"][0], 30), (None, 6)])
    sets = ["punch.mode='card_and_face'", "liveness.enabled=false", "rfid.port='fake:?cards=8075634&start_s=0.2'"]
    proc, events = run_daemon(home, f"camera.source='images:{wrong}?fps=10'", *sets)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "show_face" in kinds(events) and "punched" not in kinds(events)
    assert _punches(home) == []
    right = write_sequence(tmp_path / "right", [(None, 10), (people["A"][3], 30), (None, 6)])
    proc, events = run_daemon(home, f"camera.source='images:{right}?fps=10'", *sets)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [(p.employee_id, p.method) for p in _punches(home)] == [("E001", "card+face")]


def _covered(face_engine, photo: Path, condition: str, folder: Path) -> Path:  # noqa: ANN001
    """``photo`` in a camera frame with a drawn mask or sunglasses (kiosk.face.conditions), written to ``folder``."""
    import cv2

    from kiosk.face.conditions import CONDITIONS
    from kiosk.face.images import read_image

    image = read_image(photo)
    face = face_engine.choose(face_engine.detect_photo(image), image.shape)
    path = folder / f"{condition}_{photo.stem}.png"
    cv2.imwrite(str(path), CONDITIONS[condition](image, face, 0))
    return path


def test_card_and_face_checks_a_masked_card_holder(home: Path, tmp_path: Path, people, face_engine) -> None:  # noqa: ANN001
    """A mask does not stop the 1:1 check of card and face (quality.covered_faces = advise, as the walk-up's
    search): the masked card holder punches, a masked other person does not."""
    sets = ["punch.mode='card_and_face'", "liveness.enabled=false", "rfid.port='fake:?cards=8075634&start_s=0.2'"]
    masked_b = _covered(face_engine, people["B"][0], "mask", tmp_path)
    wrong = write_sequence(tmp_path / "wrong", [(None, 10), (masked_b, 30), (None, 6)])
    proc, events = run_daemon(home, f"camera.source='images:{wrong}?fps=10'", *sets)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "show_face" in kinds(events) and "punched" not in kinds(events)
    assert _punches(home) == []
    masked_a = _covered(face_engine, people["A"][3], "mask", tmp_path)
    right = write_sequence(tmp_path / "right", [(None, 10), (masked_a, 30), (None, 6)])
    proc, events = run_daemon(home, f"camera.source='images:{right}?fps=10'", *sets)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert [(p.employee_id, p.method) for p in _punches(home)] == [("E001", "card+face")]


def test_sunglasses_hiding_the_blink_are_asked_off(home: Path, tmp_path: Path, people, face_engine) -> None:  # noqa: ANN001
    """Sunglasses hide the blink the liveness check waits for: the screen asks for them to come off even though
    the face is recognised with them; without liveness the same frames punch and nothing is asked."""
    shaded = _covered(face_engine, people["A"][9], "sunglasses", tmp_path)
    camera = write_sequence(tmp_path / "cam", [(None, 3), (shaded, 16), (None, 8)])
    proc, events = run_daemon(home, f"camera.source='images:{camera}?fps=0'", "liveness.enabled=true",
                              "liveness.mode=blink")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert kinds(events) == ["uncover_face", "not_live"] and _punches(home) == []
    assert next(e for e in events if e["kind"] == "uncover_face")["detail"] == "sunglasses"
    proc, events = run_daemon(home, f"camera.source='images:{camera}?fps=0'", "liveness.enabled=false")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert kinds(events) == ["punched"]


def after(seen: list):  # noqa: ANN201
    """The kinds of the events published from now on (not those already in ``seen``)."""
    start = len(seen)
    return lambda: [e.kind for e in seen[start:]]


def test_camera_stall_card_still_works(home: Path) -> None:
    config = load_config(home, ["camera.source='fake:?fps=15'", "camera.stall_timeout_s=0.5",
                                "rfid.port='fake:'", "events.stdout_json=false"])
    bus = EventBus(stdout_json=False)
    seen: list = []
    bus.subscribe(seen.append)
    daemon = KioskDaemon(config, bus=bus)
    runner = threading.Thread(target=daemon.run, name="test-daemon")
    runner.start()
    try:
        wait_state(daemon.camera, DeviceState.RUNNING)
        wait_state(daemon.rfid, DeviceState.RUNNING)
        then = after(seen)
        daemon.camera.fake.go_silent()
        wait_for(lambda: EventKind.CAMERA_OFFLINE in then(), 60, what="camera offline event")
        then = after(seen)
        daemon.rfid.fake.present(8075634)
        wait_for(lambda: EventKind.PUNCHED in then(), 60, what="the card punch")
        punched = [e for e in seen if e.kind is EventKind.PUNCHED]
        assert [(e.method, e.employee_id) for e in punched] == [("card", "E001")]
        then = after(seen)
        daemon.camera.fake.resume()
        wait_for(lambda: EventKind.CAMERA_ONLINE in then(), 60, what="camera online event")
    finally:
        daemon.stop_event.set()
        runner.join(60)
    assert not runner.is_alive()
    assert [p.method for p in _punches(home)] == ["card"]


def test_card_reader_and_gps_going_offline_are_published(home: Path) -> None:
    """The screen's "card reader offline" banner and the health log need these events."""
    config = load_config(home, ["rfid.port='fake:'", "gps.port='fake:?lat=31.23&lon=121.47'",
                                "events.stdout_json=false"])
    bus = EventBus(stdout_json=False)
    seen: list = []
    bus.subscribe(seen.append)
    daemon = KioskDaemon(config, bus=bus)
    runner = threading.Thread(target=daemon.run, name="test-daemon")
    runner.start()
    try:
        wait_state(daemon.rfid, DeviceState.RUNNING)
        wait_state(daemon.gps, DeviceState.RUNNING)
        daemon.rfid.fake.unplug()
        wait_for(lambda: EventKind.READER_OFFLINE in [e.kind for e in seen], 60, what="reader offline event")
        daemon.rfid.fake.replug()
        wait_for(lambda: EventKind.READER_ONLINE in [e.kind for e in seen], 60, what="reader online event")
        daemon.gps.fake.unplug()
        wait_for(lambda: EventKind.GPS_OFFLINE in [e.kind for e in seen], 60, what="GPS offline event")
        daemon.gps.fake.replug()
        wait_for(lambda: EventKind.GPS_ONLINE in [e.kind for e in seen], 60, what="GPS online event")
    finally:
        daemon.stop_event.set()
        runner.join(60)
    assert not runner.is_alive()
    changes = [e.kind for e in seen if e.kind in (EventKind.READER_OFFLINE, EventKind.READER_ONLINE,
                                                   EventKind.GPS_OFFLINE, EventKind.GPS_ONLINE)]
    assert changes == [EventKind.READER_OFFLINE, EventKind.READER_ONLINE, EventKind.GPS_OFFLINE, EventKind.GPS_ONLINE]


def test_sigterm_mid_walkup_loses_no_acknowledged_punch(home: Path, tmp_path: Path, people) -> None:
    camera = write_sequence(tmp_path / "loop", [
        (people["A"][2], 6), (None, 7), (people["B"][1], 6), (None, 7)])
    daemon = start_daemon(home, f"camera.source='images:{camera}?fps=30&loop=1'", "liveness.enabled=false",
                          "punch.debounce_s=0")
    try:
        daemon.wait_events(lambda events: len(punched_ids(events)) >= 4, 240, what="four punches")
    finally:
        code = daemon.stop()  # SIGTERM while the looping camera keeps bringing people to the kiosk
    assert code == 0, daemon.log()[-2000:]
    acknowledged = punched_ids(daemon.events())
    # A clean stop announces every punch it stored, and stores every punch it announced.
    assert sorted(acknowledged) == sorted(p.id for p in _punches(home))
    assert "kiosk stopped" in daemon.log()


def tap_direction(url: str, choice_id: str, direction: str, header: bool = True) -> tuple[int, dict]:
    """The screen's 上班 / 下班 tap: POST /api/direction, as screen.js sends it."""
    request = urllib.request.Request(url + "api/direction", method="POST",
                                     data=json.dumps({"choice_id": choice_id, "direction": direction}).encode(),
                                     headers={"content-type": "application/json",
                                              **({"x-kiosk-screen": "1"} if header else {})})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_buttons_take_the_preselected_direction_after_the_timeout_or_the_tapped_one(
        home: Path, tmp_path: Path, people) -> None:
    """direction = buttons with the screen served but no browser looking: the first walk-up is recorded
    as pre-selected (IN) when the time runs out; on the next, pre-selected OUT, a tap on 上班 records IN."""
    camera = write_sequence(tmp_path / "loop", [(people["A"][2], 6), (None, 10)])
    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    daemon = start_daemon(home, f"camera.source='images:{camera}?fps=8&loop=1'", "liveness.enabled=false",
                          "punch.debounce_s=0", "punch.direction='buttons'", "punch.direction_buttons_timeout_s=8",
                          "ui.enabled=true", f"ui.port={port}")

    def choices(events: list[dict]) -> list[dict]:
        first_seen: dict[str, dict] = {}
        for event in events:
            if event["kind"] == "choose_direction":
                first_seen.setdefault(event["choice_id"], event)
        return list(first_seen.values())

    def punches(events: list[dict]) -> list[dict]:
        return [e for e in events if e["kind"] == "punched"]

    try:
        (first,) = daemon.wait_events(lambda events: choices(events)[:1], 240, what="the first 上班 / 下班 question")
        assert (first["employee_id"], first["direction"]) == ("E001", "IN") and "name" not in first  # ids on stdout
        (timed_out,) = daemon.wait_events(lambda events: punches(events)[:1], 120, what="the timed-out punch")
        assert timed_out["direction"] == "IN"  # nobody tapped: the pre-selected one
        code, body = tap_direction(url, first["choice_id"], "OUT")
        assert (code, body["error"]) == (409, "conflict")  # too late: it is recorded, never rewritten
        second = daemon.wait_events(lambda events: choices(events)[1:2], 120, what="the second question")[0]
        assert second["direction"] == "OUT"  # auto's choice for the second punch of the day
        code, body = tap_direction(url, second["choice_id"], "IN", header=False)
        assert code == 403  # a cross-site form cannot tap for the person at the kiosk
        code, body = tap_direction(url, second["choice_id"], "IN")
        assert code == 200 and (body["event"]["kind"], body["event"]["direction"]) == ("punched", "IN")
        daemon.wait_events(lambda events: len(punches(events)) >= 2, 60, what="the tapped punch")
    finally:
        code = daemon.stop()
    assert code == 0, daemon.log()[-2000:]
    stored = _punches(home)
    assert [(p.employee_id, p.method, p.direction) for p in stored[:2]] == [("E001", "face", "IN")] * 2
    assert [p.id for p in stored[:2]] == [e["punch_id"] for e in punches(daemon.events())[:2]]
    # A question still open at SIGTERM is recorded as pre-selected, never dropped.
    assert len(stored) == len(punches(daemon.events())) == len(choices(daemon.events()))


def punched_ids(events: list[dict]) -> list[str]:
    return [e["punch_id"] for e in events if e["kind"] == "punched"]


def logged(*fragments: str):  # noqa: ANN201
    """A predicate over log lines: some line holds every fragment."""
    return lambda lines: any(all(f in line for f in fragments) for line in lines)


def test_clock_set_back_keeps_seq_and_flags_punches(home: Path, serial_pty) -> None:  # noqa: ANN001
    """First a punch on a GPS-verified clock, then the wall clock is set back two days."""
    libs = sorted(Path("/usr/lib").glob("*/faketime/libfaketime.so.1"))
    if not libs:
        skip_or_fail("libfaketime (Debian package faketime) is needed to set the daemon's clock back")
    reader = serial_pty("ttyUSB0")
    sets = [f"rfid.port='{reader.path}'", "gps.port='fake:?lat=31.23&lon=121.47'", "punch.debounce_s=0"]

    def one_punch(*ready: tuple[str, ...], env: dict | None = None) -> None:
        daemon = start_daemon(home, *sets, env=env)
        try:
            for fragments in ready:
                daemon.err.wait(logged(*fragments), 120, what=f"log line with {fragments}")
            reader.write(encode_em4100(8075634))  # the card, once the reader listens
            daemon.wait_events(punched_ids, 120, what="the card punch")
        finally:
            assert daemon.stop() == 0, daemon.log()[-2000:]

    # The card comes only once the GPS has verified the clock (no NTP here) and the reader listens.
    one_punch(("clock is verified", "source gps"), ("rfid: ", "-> running"))
    # The daemon's wall clock two days back; its monotonic clock untouched, as after a manual change.
    one_punch(("rfid: ", "-> running"),
              env={"LD_PRELOAD": str(libs[0]), "FAKETIME": "-2d", "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
    first, second = _punches(home)
    assert first.clock_state == "verified" and "clock_behind_floor" not in first.flags
    assert first.lat == pytest.approx(31.23, abs=1e-3) and first.lon == pytest.approx(121.47, abs=1e-3)
    assert second.seq == first.seq + 1 and second.ts_utc < first.ts_utc
    assert second.clock_state == "unverified" and "clock_behind_floor" in second.flags
