"""The decision threshold comes from the pack's calibration, the roster's size and face.target_fpir."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from daemon_support import copy_home, enrol, run_daemon, write_sequence

from kiosk.config import load_config
from kiosk.face import evaluation as ev
from kiosk.face.calibration import (
    BUNDLED,
    CALIBRATION_FILE,
    at_point,
    calibration_for,
    fit,
    operating_point,
)
from kiosk.face.config import FaceConfig, MatchConfig
from kiosk.face.gallery import Gallery
from kiosk.face.images import image_files, read_image
from kiosk.face.pack import resolve_pack
from kiosk.store import open_store

NO_FLOOR = MatchConfig(threshold=0.0)
PEOPLE = ("Ariel_Sharon", "Colin_Powell", "Junichiro_Koizumi", "Megawati_Sukarnoputri", "Roh_Moo-hyun",
          "Yoriko_Kawaguchi", "Tony_Blair", "Laura_Bush")


@pytest.fixture(scope="module")
def pack():  # noqa: ANN201
    return resolve_pack(FaceConfig())


@pytest.fixture(scope="module")
def real(face_engine, face_data: Path) -> dict[str, list[np.ndarray]]:
    """Embeddings of four photos each of PEOPLE from ../shared/faces."""
    out = {}
    for name in PEOPLE:
        out[name] = []
        for path in image_files(face_data / name)[:4]:
            image = read_image(path)
            face = face_engine.choose(face_engine.detect_photo(image), image.shape, policy="center")
            out[name].append(face_engine.embed(image, face))
    return out


def test_threshold_rises_with_roster_size_and_a_stricter_target(pack) -> None:  # noqa: ANN001
    def at(employees: int, target: float, match: MatchConfig = NO_FLOOR) -> float:
        return operating_point(pack, FaceConfig(target_fpir=target), match, employees).threshold

    assert at(10, 1e-4) < at(50, 1e-4) < at(1000, 1e-4) < at(1000, 1e-6)
    assert at(50, 1e-3) < at(50, 1e-4)
    # The bundled calibration's figures, as the README and the example config state them.
    assert at(50, 1e-4) == pytest.approx(0.402, abs=1e-9)
    assert at(1000, 1e-4) == pytest.approx(0.481, abs=1e-9)
    # match.threshold is a floor: a small roster runs at 0.40, a large one above it.
    assert at(5, 1e-4, MatchConfig()) == 0.40 and at(1000, 1e-4, MatchConfig()) == at(1000, 1e-4)
    line = operating_point(pack, FaceConfig(), MatchConfig(), 1000).describe()
    assert line.startswith("face threshold 0.481 for 1000 employee(s) at target FPIR 0.0001") and "2026-11-29" in line


def test_the_bundled_calibration_is_what_the_rule_measures_on_the_shared_faces(face_engine, face_data) -> None:  # noqa: ANN001
    items = ev.photo_set(face_data)
    vectors = ev.embed_labelled(face_engine, items)
    measured = fit(ev.impostor_scores(items, vectors), face_engine.model_id, "shared", "today")
    shipped = BUNDLED[face_engine.model_id]
    assert (measured.impostor_pairs, measured.strong_threshold) == (shipped.impostor_pairs, shipped.strong_threshold)
    for key in ("tail_start", "tail_fraction", "tail_scale"):
        assert getattr(measured, key) == pytest.approx(getattr(shipped, key), abs=2e-4), key
    # The tail model is conservative where the data can still be counted: at the set's own 99.99th
    # percentile it predicts at least the measured 1e-4.
    scores = ev.impostor_scores(items, vectors)
    assert shipped.far_at(float(np.quantile(scores, 0.9999))) >= 1e-4


def _blend_to(probe: np.ndarray, towards: np.ndarray, template: np.ndarray, score: float) -> np.ndarray:
    """``probe`` moved along the great circle towards ``towards`` until its cosine with ``template``
    is ``score`` (bisection; both ends are real photos' embeddings)."""
    lo, hi = 0.0, 1.0
    for _ in range(60):
        mid = (lo + hi) / 2
        vec = (1 - mid) * probe + mid * towards
        vec /= np.linalg.norm(vec)
        lo, hi = (mid, hi) if float(vec @ template) > score else (lo, mid)
    return vec


@pytest.mark.parametrize("employees", [len(PEOPLE), 1000])
def test_a_probe_just_above_the_derived_threshold_is_accepted_and_just_below_refused(
        pack, real, employees: int) -> None:  # noqa: ANN001
    point = operating_point(pack, FaceConfig(), NO_FLOOR, employees)
    gallery = Gallery(pack.model_id, at_point(NO_FLOOR, point))
    for name in PEOPLE[:-1]:
        gallery.add(name, real[name][0])
    assert gallery.cfg.threshold == point.threshold == point.calibrated
    name, stranger = PEOPLE[0], real[PEOPLE[-1]][1]  # the last person is not enrolled
    genuine = real[name][1]
    assert float(genuine @ real[name][0]) > point.threshold + 0.01  # the real photo is a clear match
    above = gallery.search(_blend_to(genuine, stranger, real[name][0], point.threshold + 0.002))
    below = gallery.search(_blend_to(genuine, stranger, real[name][0], point.threshold - 0.002))
    assert above.employee_id == name and above.accepted and above.reason == "match", above
    assert below.employee_id == name and not below.accepted and below.reason == "below_threshold", below


def test_by_gallery_decides_with_the_kiosk_rule_at_the_derived_threshold(pack, face_engine, face_data) -> None:  # noqa: ANN001
    items = [i for i in ev.photo_set(face_data) if i.identity in PEOPLE]
    vectors = ev.embed_labelled(face_engine, items)

    def config_for(size: int) -> MatchConfig:
        return at_point(MatchConfig(), operating_point(pack, FaceConfig(), MatchConfig(), size))

    result = ev.by_gallery(items, vectors, pack.model_id, config_for, sizes=(50, 3), splits=2)
    assert result["50"]["size"] == len(PEOPLE) - 1 and result["3"]["size"] == 3
    assert result["50"]["stranger_probes"] == 2 * len(items)  # every photo a stranger once per split
    assert result["50"]["fpir"] == 0 and result["50"]["fnir"] < 0.1
    assert result["50"]["threshold"] == config_for(len(PEOPLE) - 1).threshold
    lowest = result["50"]["threshold_for_fpir_1e-4"]
    assert lowest is not None and lowest <= result["50"]["threshold"]
    # At the lowest threshold this set allows, a rerun accepts no stranger; 0.002 lower, one.
    at_lowest = ev.by_gallery(items, vectors, pack.model_id, lambda s: MatchConfig(threshold=lowest),
                              sizes=(50,), splits=2)
    below = ev.by_gallery(items, vectors, pack.model_id, lambda s: MatchConfig(threshold=lowest - 0.002),
                          sizes=(50,), splits=2)
    assert at_lowest["50"]["fpir"] == 0 < below["50"]["fpir"]


def test_a_pack_calibration_file_sets_its_threshold(tmp_path, pack) -> None:  # noqa: ANN001
    own = tmp_path / "pack"
    own.mkdir()
    for path in (pack.detector, pack.recognizer):
        (own / path.name).symlink_to(path)
    mine = resolve_pack(FaceConfig(pack_dir=own))
    data = {"model_id": mine.model_id, "strong_threshold": 0.6, "dataset": "site photos", "measured": "2026-11-01",
            "impostor_pairs": 1000, "tail_start": 0.2, "tail_fraction": 0.01, "tail_scale": 0.03}
    (own / CALIBRATION_FILE).write_text(json.dumps(data))
    assert calibration_for(mine).dataset == "site photos"
    point = operating_point(mine, FaceConfig(), NO_FLOOR, 100)
    assert point.threshold == pytest.approx(0.2 + 0.03 * np.log(0.01 / 1e-6), abs=0.001)
    # A file with only the strong threshold (the older form) leaves the decision at match.threshold.
    (own / CALIBRATION_FILE).write_text(json.dumps({"model_id": mine.model_id, "strong_threshold": 0.6}))
    assert operating_point(mine, FaceConfig(), MatchConfig(threshold=0.37), 100).threshold == 0.37


def test_config_check_prints_the_threshold_for_the_roster(invoke, kiosk_home) -> None:  # noqa: ANN001
    result = invoke("config", "check", str(kiosk_home))
    assert result.exit_code == 0, result.output
    assert "face threshold 0.400 for 0 employee(s) at target FPIR 0.0001 per walk-up" in result.output
    result = invoke("config", "check", str(kiosk_home), "--set", "match.threshold=0.1",
                    "--set", "face.target_fpir=1e-6")
    expected = operating_point(resolve_pack(FaceConfig()), FaceConfig(target_fpir=1e-6), MatchConfig(threshold=0.1), 0)
    assert f"face threshold {expected.threshold:.3f} for 0 employee(s)" in result.output


def test_config_check_counts_the_people_with_faces(invoke, kiosk_home, face_data, tmp_path) -> None:  # noqa: ANN001
    """The roster size is people, not templates; a store with a migration due is migrated first (the full
    open), and one that cannot be read says why."""
    home = copy_home(kiosk_home, tmp_path / "home")
    enrol(home, "E001", "Ariel Sharon", image_files(face_data / "Ariel_Sharon")[:2])
    enrol(home, "E002", "Colin Powell", image_files(face_data / "Colin_Powell")[:1])
    result = invoke("config", "check", str(home))
    assert result.exit_code == 0, result.output
    assert "face threshold 0.400 for 2 employee(s) at target FPIR 0.0001" in result.output
    with open_store(load_config(home)) as store, store.atomic() as db:
        db.execute("DROP INDEX punches_directed")
        db.execute("DELETE FROM _migrations WHERE name = 'punches_directed_index'")
    result = invoke("config", "check", str(home))
    assert "face threshold 0.400 for 2 employee(s)" in result.output
    with open_store(load_config(home)) as store:
        assert store.query("SELECT name FROM _migrations WHERE name = 'punches_directed_index'") != []
    (home.parent / "kiosk-db.key").write_text("00" * 32)
    result = invoke("config", "check", str(home))
    assert result.exit_code == 0, result.output
    assert "face threshold: store not readable (" in result.output and "cannot be decrypted" in result.output


def test_the_daemon_prints_the_threshold_it_runs_at(kiosk_home, face_data, tmp_path) -> None:  # noqa: ANN001
    home = copy_home(kiosk_home, tmp_path / "home")
    enrol(home, "E001", "Ariel Sharon", image_files(face_data / "Ariel_Sharon")[:1])
    enrol(home, "E002", "Colin Powell", image_files(face_data / "Colin_Powell")[:1])
    camera = write_sequence(tmp_path / "cam", [(None, 2)])
    proc, _ = run_daemon(home, f"camera.source='images:{camera}?fps=0'", "liveness.enabled=false",
                         "match.threshold=0.1", "face.target_fpir=1e-5", "ui.enabled=false")
    expected = operating_point(resolve_pack(FaceConfig()), FaceConfig(target_fpir=1e-5), MatchConfig(threshold=0.1), 2)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"face threshold {expected.threshold:.3f} for 2 employee(s) at target FPIR 1e-05" in proc.stderr
