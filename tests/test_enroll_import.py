"""`kiosk enroll import`: tight crops enrol; group, no-face and degraded photos are refused with the
right reason; a second enrolment of the same face is flagged; every row is tried; exit 1 if any failed."""

from __future__ import annotations

import csv
import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest
from face_support import blurred, darkened, downscaled

from conftest import CONSENT_ARGS, run_kiosk
from kiosk.config import load_config
from kiosk.store import open_store

ROSTER = """id,name,card,branch,photos
E101,Raj Koothrappali,0011223344,,raj1.png;raj2.png
E102,John Simm,,B002,simm.jpg
E103,Two People,,,group.jpg
E104,A Dog,,,dog.jpg
E105,Colin Degraded,,,colin_blurred.png;colin_dark.png;colin_small.png
E106,Raj Again,,,raj3.png
bad id!,Nobody,,,colin.jpg
E108,Missing Photo,,,not_there.jpg
E109,Colin Powell,0099887766,,colin.jpg;group.jpg
"""


@pytest.fixture
def photo_dir(tmp_path: Path, face_data: Path, face_engine) -> Path:  # noqa: ANN001
    """The photos the roster names, in the test's temp folder (links to the set, degraded copies)."""
    folder = tmp_path / "photos"
    folder.mkdir()
    links = {"raj1.png": "BBT_raj_Kunal_Nayyar/raj1.png", "raj2.png": "BBT_raj_Kunal_Nayyar/raj2.png",
             "raj3.png": "BBT_raj_Kunal_Nayyar/raj3.png", "simm.jpg": "John_Simm/000288_00470387.jpg",
             "group.jpg": "_groups/face_recog_two_people.jpg", "dog.jpg": "_nofaces/dog.jpg",
             "colin.jpg": "Colin_Powell/Colin_Powell_0001.jpg"}
    for name, source in links.items():
        (folder / name).symlink_to(face_data / source)
    colin = cv2.imread(str(folder / "colin.jpg"))
    width = face_engine.choose(face_engine.detect(colin), colin.shape).width
    degraded = (("colin_blurred.png", blurred), ("colin_dark.png", darkened), ("colin_small.png", downscaled))
    for name, degrade in degraded:
        factor = 3 if degrade is blurred else 1  # clearly out of focus, not just soft
        cv2.imwrite(str(folder / name), degrade(colin, width * factor))
    return folder


def import_roster(kiosk_home: Path, tmp_path: Path, photo_dir: Path, roster: str, *extra: str):  # noqa: ANN201
    path = tmp_path / "roster.csv"
    path.write_text(roster, encoding="utf-8")
    return run_kiosk("enroll", "import", "--csv", str(path), "--photos", str(photo_dir), "--config",
                     str(kiosk_home), *CONSENT_ARGS, "--consent-date", "2026-01-05", *extra)


def test_import_reports_each_refusal_and_enrols_the_rest(kiosk_home: Path, tmp_path: Path, photo_dir: Path) -> None:
    report = tmp_path / "report.csv"
    result = import_roster(kiosk_home, tmp_path, photo_dir, ROSTER, "--report", str(report))
    assert result.returncode == 1, result.stderr  # some rows failed...
    out = result.stdout
    assert "3 enrolled, 0 skipped, 6 failed" in out  # ...after every row was tried
    assert "refused group.jpg: several_faces" in out and "refused dog.jpg: no_face" in out
    assert "refused colin_blurred.png: poor_quality [blurry]" in out
    dark_line = next(line for line in out.splitlines() if "refused colin_dark.png" in line)
    assert "poor_quality [" in dark_line and "too_dark" in dark_line
    assert "refused colin_small.png: poor_quality [too_small" in out
    assert "refused raj3.png: other_employee: this face matches employee E101" in out
    assert "line 8 bad id!: employee id 'bad id!' is not valid" in out
    assert "refused not_there.jpg: unreadable" in out
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    verdicts = {(r["employee_id"], r["photo"]): (r["photo_status"], r["reason"], r["quality"]) for r in rows}
    assert verdicts[("E101", "raj1.png")] == ("ok", "", "")
    assert verdicts[("E105", "colin_small.png")][:2] == ("refused", "poor_quality")
    assert verdicts[("E109", "group.jpg")] == ("refused", "several_faces", "")
    with open_store(load_config(kiosk_home)) as store:
        people = {e.id: e for e in store.roster.list(include_inactive=True)}
        assert set(people) == {"E101", "E102", "E109"}  # failed rows stored nothing
        assert people["E101"].templates == 2 and people["E101"].cards == ("0011223344",)
        assert people["E102"].templates == 1 and people["E102"].branch == "B002"  # a tight 150 px chip
        assert people["E109"].templates == 1 and people["E101"].branch == "B001"
        assert [r["action"] for r in store.audit_log(50)].count("enroll.import") == 3


def test_a_second_run_skips_people_already_enrolled(kiosk_home: Path, tmp_path: Path, photo_dir: Path) -> None:
    roster = "id,name,card,branch,photos\nE101,Raj Koothrappali,,,raj1.png\n"
    first = import_roster(kiosk_home, tmp_path, photo_dir, roster, "--json")
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout.splitlines()[0])["status"] == "enrolled"
    second = import_roster(kiosk_home, tmp_path, photo_dir, roster)
    assert second.returncode == 0 and "0 enrolled, 1 skipped, 0 failed" in second.stdout


def test_a_roster_without_the_needed_columns_changes_nothing(kiosk_home: Path, tmp_path: Path, photo_dir: Path) -> None:
    result = import_roster(kiosk_home, tmp_path, photo_dir, "person,fullname\nE1,X\n")
    assert result.returncode == 1 and "lacks the column(s) id, name, photos" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_report_in_a_missing_folder_is_refused_before_importing(kiosk_home: Path, tmp_path: Path,
                                                                   photo_dir: Path) -> None:
    roster = "id,name,card,branch,photos\nE101,Raj Koothrappali,,,raj1.png\n"
    result = import_roster(kiosk_home, tmp_path, photo_dir, roster, "--report", str(tmp_path / "nope" / "r.csv"))
    assert result.returncode == 1 and "cannot write the report" in result.stderr
    assert "what to do:" in result.stderr and "Traceback" not in result.stderr
    with open_store(load_config(kiosk_home)) as store:
        assert store.roster.list(include_inactive=True) == []


def test_the_progress_bar_shows_on_a_terminal(kiosk_home: Path, tmp_path: Path, photo_dir: Path) -> None:
    path = tmp_path / "roster.csv"
    path.write_text("id,name,card,branch,photos\nE201,Raj K,,,raj1.png\nE202,Nobody,,,dog.jpg\n", encoding="utf-8")
    main, child = pty.openpty()  # stderr is a real terminal: click draws the bar there
    proc = subprocess.Popen([sys.executable, "-m", "kiosk", "enroll", "import", "--csv", str(path), "--photos",
                             str(photo_dir), "--config", str(kiosk_home), *CONSENT_ARGS, "--consent-date",
                             "2026-01-05"],
                            stdout=subprocess.PIPE, stderr=child, text=True)
    os.close(child)
    stdout, _ = proc.communicate(timeout=120)
    terminal = b""
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        terminal += chunk
    os.close(main)
    assert proc.returncode == 1 and "1 enrolled, 0 skipped, 1 failed" in stdout
    assert b"importing" in terminal and b"2/2" in terminal and b"#" in terminal
    # Log lines print above the bar, each on a line of its own, never glued to a half-drawn bar.
    logged = [line.rstrip(b"\r").split(b"\r")[-1] for line in terminal.split(b"\n") if b" INFO " in line]
    assert logged and all(re.match(rb"\d{4}-\d\d-\d\d ", line) for line in logged), logged


def test_an_imported_row_keeps_its_best_three_photos(kiosk_home: Path, tmp_path: Path, face_data: Path) -> None:
    folder = tmp_path / "five"
    folder.mkdir()
    names = []
    for i, source in enumerate(sorted((face_data / "Colin_Powell").iterdir())[:5]):
        names.append(f"colin{i}.jpg")
        (folder / names[-1]).symlink_to(source)
    report = tmp_path / "report.csv"
    result = import_roster(kiosk_home, tmp_path, folder, f"id,name,photos\nE120,Colin Powell,{';'.join(names)}\n",
                           "--report", str(report))
    assert result.returncode == 0, result.stderr
    assert "enrolled line 2 E120: 3 template(s)" in result.stdout
    assert result.stdout.count("only the 3 best photos are stored") == 2
    rows = list(csv.DictReader(report.open(encoding="utf-8")))
    assert sorted(r["photo_status"] for r in rows) == ["not_kept", "not_kept", "ok", "ok", "ok"]
    with open_store(load_config(kiosk_home)) as store:
        assert store.roster.get("E120").templates == 3
