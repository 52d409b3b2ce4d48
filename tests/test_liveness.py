"""Liveness on real videos: natural blinks pass; still photos (printed, on screens, moved, tilted) never do.

The judgement of each genuine clip without a clear blink (real_live) and of each screen replay
(spoof_screen) is reported (run pytest with -s to see it): the active check is not meant to stop a
video replay of a blinking person, and the README says so.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from daemon_support import compose, copy_home, enrol, run_daemon

from kiosk.face.config import LivenessConfig
from kiosk.face.landmarks import Landmarks106
from kiosk.face.liveness import LivenessCheck, Verdict, eye_openness

SAMPLE_FPS = 15.0
MAX_CLIP_S = 25.0


@dataclass
class Judgement:
    clip: str
    frames: int
    faces: int
    live_at_s: float | None
    attempts: int


def _manifest(video_data: Path) -> list[dict]:
    with (video_data / "MANIFEST.tsv").open() as fh:
        return list(csv.DictReader(fh, delimiter="\t"))


def _clips(kind: str) -> list[str]:
    from conftest import _video_dir
    root = _video_dir()
    if not (root / "MANIFEST.tsv").exists():
        return []
    return [row["file"] for row in _manifest(root) if row["kind"] == kind]


@pytest.fixture(scope="module")
def landmarks(face_engine) -> Landmarks106:
    return Landmarks106(face_engine)


def judge(engine, landmarks, frames, cfg: LivenessConfig) -> Judgement:  # noqa: ANN001
    """Feed (t_s, image) frames through detect -> choose -> landmarks -> liveness, as the daemon does;
    a window that runs out starts a new attempt, as at the kiosk."""
    check = LivenessCheck(cfg)
    count = faces = attempts = 0
    for t_s, image in frames:
        count += 1
        face = engine.choose(engine.detect(image), image.shape)
        if face is None:
            continue
        faces += 1
        attempts += int(check.started is None)
        verdict = check.update(t_s, landmarks(image, face.bbox), face.kps)
        if verdict is Verdict.LIVE:
            return Judgement("", count, faces, t_s, attempts)
        if verdict is Verdict.SPOOF:
            check.reset()
    return Judgement("", count, faces, None, attempts)


def video_frames(path: Path, max_s: float = MAX_CLIP_S):
    cap = cv2.VideoCapture(str(path))
    fps = cap.get(cv2.CAP_PROP_FPS) or 30.0
    step = max(1, round(fps / SAMPLE_FPS))
    index = 0
    try:
        while index / fps <= max_s:
            ok, image = cap.read()
            if not ok:
                return
            if index % step == 0:
                yield index / fps, image
            index += 1
    finally:
        cap.release()


def held_photo_frames(image: np.ndarray, seconds: float, rng: np.random.Generator):
    """A still picture held up to the camera: shaky, tilting back and forth, zooming a little."""
    for i in range(int(seconds * SAMPLE_FPS)):
        squash = 1.0 - 0.15 * abs(np.sin(i / 6))
        tilted = cv2.resize(image, (image.shape[1], max(1, int(image.shape[0] * squash))))
        shift = (int(rng.integers(-4, 5)), int(rng.integers(-3, 4)))
        noisy = compose(tilted, shift=shift, scale=float(rng.uniform(0.97, 1.03)))
        noisy = cv2.add(noisy, rng.integers(0, 6, noisy.shape, dtype=np.uint8))
        yield i / SAMPLE_FPS, noisy


@pytest.mark.parametrize("clip", _clips("blink"))
def test_blink_clips_pass(clip: str, video_data: Path, face_engine, landmarks) -> None:
    result = judge(face_engine, landmarks, video_frames(video_data / clip), LivenessConfig())
    assert result.live_at_s is not None, f"{clip}: no blink accepted in {result.frames} frames"


@pytest.mark.parametrize("still", _clips("spoof_print") + _clips("spoof_screen_still") +
                         [c for c in _clips("spoof_screen") if c.endswith(".jpg")] + _clips("real_still"))
def test_still_pictures_never_pass(still: str, video_data: Path, face_engine, landmarks) -> None:
    image = cv2.imread(str(video_data / still))
    frames = held_photo_frames(image, seconds=20, rng=np.random.default_rng(7))
    result = judge(face_engine, landmarks, frames, LivenessConfig(window_s=5))
    assert result.faces > 200, "the face must be seen for the test to mean anything"
    assert result.live_at_s is None and result.attempts >= 3


def test_identical_frames_never_pass(face_photos, face_engine, landmarks) -> None:
    person = next(iter(face_photos.people.values()))[0].image
    frame = compose(person)
    frames = ((i / SAMPLE_FPS, frame) for i in range(150))
    result = judge(face_engine, landmarks, frames, LivenessConfig(window_s=3))
    assert result.faces == 150 and result.live_at_s is None


def test_eye_openness_dips_in_a_blink(video_data: Path, face_engine, landmarks) -> None:
    """Around the documented blink at frame ~42 of the phone selfie, openness falls by over a third."""
    values = {}
    for t_s, image in video_frames(video_data / "blink_liveportrait_d13_phone_selfie.mp4", max_s=3.2):
        face = face_engine.choose(face_engine.detect(image), image.shape)
        values[round(t_s * 30)] = eye_openness(landmarks(image, face.bbox))
    open_eyes = np.median([v for f, v in values.items() if f < 30])
    closed = min(v for f, v in values.items() if 38 <= f <= 48)
    assert closed < 0.65 * open_eyes


def test_report_replays_and_live_clips(video_data: Path, face_engine, landmarks, capsys) -> None:
    lines = []
    for kind in ("real_live", "spoof_screen"):
        for clip in _clips(kind):
            if not clip.endswith((".mp4", ".mov")):
                continue
            result = judge(face_engine, landmarks, video_frames(video_data / clip, max_s=20), LivenessConfig())
            verdict = f"live after {result.live_at_s:.1f} s" if result.live_at_s is not None else "never live"
            lines.append(f"{kind:13} {clip:42} {verdict:18} faces {result.faces}/{result.frames}, "
                         f"{result.attempts} attempt(s)")
            assert result.faces > 0
    with capsys.disabled():
        print("\nliveness judgement of genuine clips without a clear blink and of screen replays:")
        print("\n".join(lines))
    clips = [c for k in ("real_live", "spoof_screen") for c in _clips(k) if c.endswith((".mp4", ".mov"))]
    assert len(lines) == len(clips)


def test_daemon_punches_a_blinking_person(video_data: Path, tmp_path: Path, enrolled_from_video) -> None:
    """End to end: the person in a blink clip is enrolled; the clip is the camera; liveness is on."""
    config, clip = enrolled_from_video
    home = copy_home(config, tmp_path / "kiosk")
    proc, events = run_daemon(home, f"camera.source='file:{clip}?fps=0'", "liveness.enabled=true")
    assert proc.returncode == 0, proc.stderr[-2000:]
    punched = [e for e in events if e["kind"] == "punched"]
    assert len(punched) == 1 and punched[0]["employee_id"] == "V001"


@pytest.fixture(scope="module")
def enrolled_from_video(tmp_path_factory: pytest.TempPathFactory, video_data: Path) -> tuple[Path, Path]:
    from conftest import run_kiosk
    clip = video_data / "blink_liveportrait_d13_phone_selfie.mp4"
    root = tmp_path_factory.mktemp("video")
    cap = cv2.VideoCapture(str(clip))
    ok, first = cap.read()
    cap.release()
    assert ok
    photo = root / "enrol.jpg"
    cv2.imwrite(str(photo), first)
    run_kiosk("init", str(root / "kiosk"), check=True)
    config = root / "kiosk" / "kiosk.toml"
    enrol(config, "V001", "Selfie Person", [photo])
    return config, clip


def _constant_liveness_model(path: Path, probability: float) -> Path:
    """A real ONNX file with insightface's passive-liveness signature: [N,3,80,80] -> [N] probability."""
    import onnx
    from onnx import TensorProto, helper
    x = helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, 80, 80])
    y = helper.make_tensor_value_info("live", TensorProto.FLOAT, [1])
    axes = helper.make_tensor("axes", TensorProto.INT64, [3], [1, 2, 3])
    nodes = [helper.make_node("ReduceMean", ["input", "axes"], ["m"], keepdims=0),
             helper.make_node("Mul", ["m", "zero"], ["z"]),
             helper.make_node("Add", ["z", "p"], ["live"])]
    inits = [axes, helper.make_tensor("zero", TensorProto.FLOAT, [1], [0.0]),
             helper.make_tensor("p", TensorProto.FLOAT, [1], [probability])]
    model = helper.make_model(helper.make_graph(nodes, "liveness", [x], [y], inits),
                              opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 9
    onnx.save(model, path)
    return path


@pytest.mark.parametrize("probability,expect_live", [(0.1, False), (0.95, True)])
def test_passive_model_is_used_when_supplied(probability: float, expect_live: bool, tmp_path: Path,
                                             video_data: Path, face_engine, landmarks) -> None:
    from kiosk.face.liveness import PassiveModel
    model = PassiveModel(_constant_liveness_model(tmp_path / "live.onnx", probability), threshold=0.8)
    check = LivenessCheck(LivenessConfig(), model)
    live = False
    for t_s, image in video_frames(video_data / "blink_liveportrait_d13_phone_selfie.mp4", max_s=4):
        face = face_engine.choose(face_engine.detect(image), image.shape)
        if face is not None and check.update(t_s, landmarks(image, face.bbox), face.kps, image) is Verdict.LIVE:
            live = True
            break
    assert live is expect_live
    assert check.passive_scores and abs(check.passive_scores[0] - probability) < 1e-6


def test_bad_passive_model_is_a_clear_error(tmp_path: Path) -> None:
    from kiosk.base.errors import KioskError
    from kiosk.face.liveness import PassiveModel
    with pytest.raises(KioskError, match="does not exist"):
        PassiveModel(tmp_path / "missing.onnx", 0.8)
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a model")
    with pytest.raises(KioskError, match="cannot be loaded"):
        PassiveModel(junk, 0.8)
