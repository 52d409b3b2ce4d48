"""`kiosk enroll add`, `kiosk identify` and the face benchmarks through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from conftest import CONSENT_ARGS, run_kiosk
from kiosk.config import load_config
from kiosk.face.images import image_files
from kiosk.store import open_store

IDENTIFY_KEYS = {"photo", "employee_id", "score", "margin", "accepted", "reason"}


def _files(tmp_path: Path, photos) -> list[str]:  # noqa: ANN001
    """The photos as files in the test's temp folder (never inside the repo)."""
    out = []
    for i, photo in enumerate(photos):
        path = tmp_path / f"{i:02d}_{Path(photo.name).stem}.png"
        cv2.imwrite(str(path), photo.image)
        out.append(str(path))
    return out


def _enrollable(engine, photos) -> bool:  # noqa: ANN001
    faces = [engine.choose(engine.detect_photo(p.image), p.image.shape) for p in photos]
    return len(photos) >= 3 and all(f is not None and engine.assess_quality(p.image, f).ok
                                    for p, f in zip(photos, faces, strict=True))


@pytest.fixture
def people(face_engine, face_photos, tmp_path: Path) -> dict[str, list[str]]:
    """Photo files of the identities whose first three photos all pass the quality gate."""
    out = {}
    for name in sorted(face_photos.people):
        if _enrollable(face_engine, face_photos.people[name][:3]):
            (tmp_path / name).mkdir()
            out[name] = _files(tmp_path / name, face_photos.people[name][:3])
    assert len(out) >= 2
    return out


def _json_lines(output: str) -> list[dict]:
    return [json.loads(line) for line in output.splitlines() if line.startswith("{")]


def test_enroll_then_identify(invoke, kiosk_home: Path, people) -> None:
    cfg = str(kiosk_home)
    a, stranger = sorted(people)[0], sorted(people)[1]
    result = invoke("enroll", "add", *CONSENT_ARGS, "--config", cfg, "--employee", "E001", "--name", "Wang Li",
                    "--card", "0012345678", "--photos", *people[a][:2])
    assert result.exit_code == 0, result.output
    assert "E001: stored 2 template(s), refused 0" in result.output
    with open_store(load_config(kiosk_home)) as store:
        employee = store.roster.get("E001")
        assert employee.templates == 2 and employee.cards == ("0012345678",)
    result = invoke("identify", "--config", cfg, "--json", people[a][2], people[stranger][0])
    assert result.exit_code == 0, result.output
    same, other = _json_lines(result.output)
    assert IDENTIFY_KEYS <= set(same) and IDENTIFY_KEYS <= set(other)
    assert same["employee_id"] == "E001" and same["accepted"] and same["reason"] == "match"
    assert same["score"] > 0.4 and same["margin"] > 0
    assert not other["accepted"] and other["reason"] == "below_threshold"
    result = invoke("identify", "--config", cfg, people[a][2])
    assert "E001 score" in result.output and "accepted" in result.output


def test_unusable_photos_are_refused_with_reasons(invoke, kiosk_home: Path, face_photos, tmp_path: Path) -> None:
    files = _files(tmp_path, [face_photos.no_faces[0], max(face_photos.groups, key=lambda p: p.image.size)])
    (tmp_path / "notes.jpg").write_text("not an image")
    result = invoke("enroll", "add", *CONSENT_ARGS, "--config", str(kiosk_home), "--employee", "E002",
                    "--name", "Chen Jing", "--photos", *files, str(tmp_path / "notes.jpg"))
    assert result.exit_code == 1
    assert "no_face" in result.output and "several_faces" in result.output and "unreadable" in result.output
    assert "nothing was stored" in result.output and "Traceback" not in result.output
    with open_store(load_config(kiosk_home)) as store:
        assert store.roster.get("E002") is None


def test_a_colleague_s_face_is_refused(invoke, kiosk_home: Path, people) -> None:
    cfg = str(kiosk_home)
    a, b = sorted(people)[:2]
    assert invoke("enroll", "add", *CONSENT_ARGS, "--config", cfg, "--employee", "E001", "--name", "A",
                  "--photos", people[a][0]).exit_code == 0
    result = invoke("enroll", "add", *CONSENT_ARGS, "--config", cfg, "--employee", "E009", "--name", "Someone Else",
                    "--json", "--photos", people[a][1])
    assert result.exit_code == 1
    assert _json_lines(result.output)[0]["reason"] == "other_employee"
    result = invoke("enroll", "add", *CONSENT_ARGS, "--config", cfg, "--employee", "E001", "--name", "A",
                    "--photos", people[b][0], people[a][2])
    assert result.exit_code == 0 and "not_same_person" in result.output
    assert "stored 1 template(s), refused 1" in result.output


def test_identify_without_a_face_and_with_an_empty_gallery(invoke, kiosk_home: Path, face_photos,
                                                           tmp_path: Path) -> None:
    nothing, someone = _files(tmp_path, [face_photos.no_faces[0], face_photos.clean[0]])
    result = invoke("identify", "--config", str(kiosk_home), "--json", nothing, someone)
    first, second = _json_lines(result.output)
    assert first["reason"] == "no_face" and first["employee_id"] is None
    assert second["reason"] == "empty_gallery" and not second["accepted"]


def test_bench_gallery_json(invoke) -> None:
    """Real embeddings (the wheels' sample faces) padded with distractors; every contender timed in rounds."""
    result = invoke("bench", "gallery", "--size", "3000", "--data", "wheel-samples", "--rounds", "2", "--json",
                    "--set", "match.exact_search_max=1000")
    data = json.loads(result.output.splitlines()[-1])
    assert data["size"] == 3000 and data["coarse_index"] and data["rounds"] == 2
    for key in ("p50_ms", "exact_einsum_p50_ms", "exact_ort_p50_ms", "speedup_vs_best_exact"):
        assert set(data[key]) == {"min", "median", "max"} and data[key]["min"] <= data[key]["max"]
    assert data["recall_at_1"] == 1.0 and data["rank1"]["gallery"] == data["rank1"]["exact_einsum"]
    assert {"cpu", "load_1_5_15", "cores_used"} <= set(data["machine"])


def test_bench_latency_json(invoke) -> None:
    result = invoke("bench", "latency", "--frames", "6", "--rounds", "2", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.splitlines()[-1])
    assert set(data["stages_to_decision_ms"]) == {"detect", "quality", "embed", "match", "beside"}
    head = data["per_frame_to_decision_ms"]
    assert set(head) == {"kiosk", "insightface", "ratio"} and head["ratio"]["median"] > 0
    # The kiosk's figure is liveness as shipped: a challenge with a blink, whose landmarks run on every frame.
    assert data["liveness"]["enabled"] and "blink" in data["liveness"]["steps"]
    assert data["without_landmarks"]["per_frame_to_decision_ms"]["ratio"]["median"] > 0
    assert data["det_size"] == 320 and data["floor"]["floor_ms"] > 0 and data["rounds"] == 2
    # The same photo, frame after frame, scores far above the calibrated strong threshold: two frames decide.
    assert data["decided_at_frame"] == [2, 2] and data["decided_employee"] == "PERSON"


def test_bench_latency_one_core() -> None:
    """--cores 1 pins the process and runs the models on one thread: the Pi-class budget per stage."""
    proc = run_kiosk("bench", "latency", "--frames", "5", "--rounds", "1", "--cores", "1", "--json", timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    data = json.loads(proc.stdout.splitlines()[-1])
    assert data["threads"] == 1 and data["machine"]["cores_used"] == 1
    assert data["stages_to_decision_cpu_ms"]["embed"]["median"] > 0
    # No spare core: the landmarks run in turn with recognition, their CPU time a stage of its own.
    assert data["stages_to_decision_cpu_ms"]["beside"]["median"] > 0


def test_bench_accuracy_json(invoke, face_photos, face_data_or_samples) -> None:
    result = invoke("bench", "accuracy", "--data", face_data_or_samples, "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.output.splitlines()[-1])
    assert {"model_id", "images", "no_face", "verification", "identification"} <= set(data)
    ver, ide = data["verification"], data["identification"]
    assert {"pairs_same", "pairs_different", "best_accuracy", "best_threshold", "eer", "tar_at_far",
            "by_pair_kind"} <= set(ver) and set(ver["tar_at_far"]) == {"0.01", "0.001"}
    assert {"enrolled", "mated_probes", "non_mated_probes", "rank1", "threshold", "fnir", "fpir"} <= set(ide)
    assert data["no_face"] == 0 and ver["best_accuracy"] >= 0.95 and ide["rank1"] >= 0.95
    # Open-set calibration: every cross-identity pair, and FPIR/FNIR per roster size at the derived threshold.
    opened = data["open_set"]
    assert {"impostor_pairs", "impostor_p9999", "far_at_threshold"} <= set(opened)
    images = data["images"]
    assert 0 < opened["impostor_pairs"] < images * (images - 1) // 2
    assert set(data["by_gallery"]) == {"50", "1000"}
    for figures in data["by_gallery"].values():
        assert {"size", "fpir", "fnir", "threshold_for_fpir_1e-4"} <= set(figures)
        assert figures["stranger_probes"] > 0 and 0 <= figures["fpir"] <= 1 and 0 <= figures["fnir"] <= 1
    assert data["calibration"]["model_id"] == data["model_id"] and data["calibration"]["tail_scale"] > 0


@pytest.fixture
def face_data_or_samples(face_photos, tmp_path: Path) -> str:
    """A small photo set: links to a few real identity folders, or the bundled samples."""
    if not face_photos.real:
        return "wheel-samples"
    from face_support import IDENTITIES, _data_dir

    subset = tmp_path / "subset"
    subset.mkdir()
    for name in IDENTITIES:
        (subset / name).symlink_to(_data_dir() / name, target_is_directory=True)
    return str(subset)


def test_identify_says_why_a_photo_is_unreadable(invoke, kiosk_home: Path, tmp_path: Path) -> None:
    text = tmp_path / "notes.jpg"
    text.write_text("not a photo")
    result = invoke("identify", "--config", str(kiosk_home), str(text), str(tmp_path / "absent.jpg"))
    assert result.exit_code == 0, result.output
    assert f"{text}: nobody (unreadable: photo {text} is not a JPEG, PNG or WebP file" in result.output
    assert "absent.jpg does not exist" in result.output


def test_bench_accuracy_with_a_missing_pairs_file(invoke, tmp_path: Path) -> None:
    result = invoke("bench", "accuracy", "--data", "wheel-samples", "--pairs", str(tmp_path / "pairs.tsv"))
    assert result.exit_code == 2 and "does not exist" in result.output


def test_a_gigantic_photo_is_refused_before_decoding(invoke, kiosk_home: Path, tmp_path: Path) -> None:
    """A 9000x9000 image would take ~250 MB to decode: refused from its header, with the size."""
    from PIL import Image
    huge = tmp_path / "huge.png"
    Image.new("L", (9000, 9000)).save(huge)
    result = invoke("enroll", "add", *CONSENT_ARGS, "--employee", "E1", "--name", "Li", "--photos", str(huge),
                    "--config", str(kiosk_home))
    assert result.exit_code != 0 and "9000x9000" in result.output and "Traceback" not in result.output


def test_a_truncated_jpeg_is_called_unreadable(invoke, kiosk_home: Path, tmp_path: Path, face_photos) -> None:
    import cv2
    photo = face_photos.clean[0].image
    ok, data = cv2.imencode(".jpg", photo)
    cut = tmp_path / "cut.jpg"
    cut.write_bytes(data.tobytes()[: len(data) // 2])
    result = invoke("enroll", "add", *CONSENT_ARGS, "--employee", "E1", "--name", "Li", "--photos", str(cut),
                    "--config", str(kiosk_home))
    assert result.exit_code != 0 and "cut short" in result.output and "Traceback" not in result.output


def test_look_alikes_are_refused_then_enrolled_with_card_and_face(invoke, kiosk_home: Path, face_data: Path) -> None:
    """Two ids with the same face are two people the engine cannot tell apart (as twins are): the second
    enrolment is refused with the way out; with --card-and-face both are flagged and punch with card + face."""
    photos = image_files(face_data / "Ariel_Sharon")
    other = image_files(face_data / "Colin_Powell")
    config = str(kiosk_home)
    assert invoke("enroll", "add", *CONSENT_ARGS, "--employee", "E001", "--name", "Twin A", "--photos", str(photos[0]),
                  "--config", config).exit_code == 0
    refused = invoke("enroll", "add", *CONSENT_ARGS, "--employee", "E002", "--name", "Twin B", "--photos",
                     str(photos[1]), "--config", config)
    assert refused.exit_code == 1
    assert "other_employee: this face matches employee E001" in refused.output and "--card-and-face" in refused.output
    flagged = invoke("enroll", "add", *CONSENT_ARGS, "--employee", "E002", "--name", "Twin B", "--photos",
                     str(photos[1]), "--card-and-face", "--config", config)
    assert flagged.exit_code == 0, flagged.output
    assert "look-alike: E002 matches E001 (score" in flagged.output
    assert "E002 and E001 now punch with card + face" in flagged.output
    # A different person is not a look-alike and keeps punching as punch.mode says.
    plain = invoke("enroll", "add", *CONSENT_ARGS, "--employee", "E003", "--name", "Someone", "--photos", str(other[0]),
                   "--config", config)
    assert plain.exit_code == 0 and "look-alike" not in plain.output
    listed = [json.loads(line) for line in invoke("employee", "list", "--json", "--config", config).output.splitlines()
              if line.startswith("{")]
    assert {e["id"]: e["card_and_face"] for e in listed} == {"E001": True, "E002": True, "E003": False}
    assert "now punches as punch.mode says" in invoke("employee", "card-and-face", "E001", "--off",
                                                      "--config", config).output


def test_photo_enrolment_keeps_the_best_three(invoke, kiosk_home: Path, face_data: Path) -> None:
    """Five usable photos: the three with the best quality score are stored, the other two are named."""
    photos = [str(p) for p in image_files(face_data / "Colin_Powell")[:5]]
    result = invoke("enroll", "add", *CONSENT_ARGS, "--config", str(kiosk_home), "--employee", "E010",
                    "--name", "Colin", "--photos", *photos)
    assert result.exit_code == 0, result.output
    quality = {line.split()[1]: float(line.split("quality ")[1].rstrip(")")) for line in result.output.splitlines()
               if line.startswith("ok ")}
    spare = [line.split()[2] for line in result.output.splitlines() if line.startswith("not kept ")]
    assert len(quality) == 5 and len(spare) == 2, result.output
    assert max(quality[p] for p in spare) <= min(q for p, q in quality.items() if p not in spare)
    assert "only the 3 best photos are stored" in result.output
    assert "E010: stored 3 template(s), refused 0 photo(s)" in result.output
    with open_store(load_config(kiosk_home)) as store:
        assert store.roster.get("E010").templates == 3
    four = [str(p) for p in image_files(face_data / "Ariel_Sharon")[:4]]
    result = invoke("enroll", "add", *CONSENT_ARGS, "--config", str(kiosk_home), "--employee", "E011",
                    "--name", "Ariel", "--json", "--photos", *four)
    lines = _json_lines(result.output)
    assert result.exit_code == 0 and lines[-1]["kept"] == 3 and len(lines[-1]["not_kept"]) == 1, result.output
