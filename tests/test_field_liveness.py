"""A field clip's liveness on the hub (sync/hub/field/liveness.py) needs the 106-point landmarks only while the
check waits for a blink, as at the kiosk: real videos (../shared/videos) sent piece by piece as a phone films them
(10 fps, 480 px JPEG, 8 frames a piece) to the hub's `add_frames`, the real landmark model's runs counted. Each
piece's answer is the one the same frames get with the landmarks of every frame (the hub's rule before), so
replaying the frames kept between pieces, with and without landmarks, gives the same verdicts."""

from __future__ import annotations

import pytest
from counting import record_calls

from kiosk.face.landmarks import Landmarks106
from kiosk.face.liveness import Step

pytest_plugins = ["face_support", "sync_support"]
pytestmark = pytest.mark.xdist_group("liveness_clips")

ZUBAIR = "real_live_zubair_webcam.mov"  # turns right then left from 6 s, no blink
D13 = "blink_liveportrait_d13_phone_selfie.mp4"  # a phone selfie, blinks, no turn
KATIE = "blink_sadtalker_hdtf_katiehill.mp4"  # frontal, talking, one blink near 1.2 s
REPLAY = "spoof_screen_zubair_phone_replay.mp4"  # ZUBAIR's video on a phone screen in front of him
OWNERS = {"F1": (ZUBAIR, [0.5, 3.0]), "F2": (D13, [0.0, 5.0]), "F3": (KATIE, [0.0, 4.0])}
L, R, B = Step.TURN_LEFT, Step.TURN_RIGHT, Step.BLINK
PIECE = 8

# (owner, clip, start s, mode, steps, the last piece's verdict, landmark runs: "none" or "fewer" than the frames
# judged with a face)
CASES = [
    ("F1", ZUBAIR, 6.0, "challenge", (R, L), "live", "none"),  # turns alone
    ("F1", ZUBAIR, 6.0, "challenge", (L, R), "spoof", "none"),  # the wrong order: refused at once
    ("F1", REPLAY, 0.0, "challenge", (R, L), "spoof", "none"),  # the face in the picture changes
    ("F1", ZUBAIR, 6.0, "challenge", (R, B), "spoof", "fewer"),  # a turn the wrong way while the blink is to come
    ("F2", D13, 0.0, "challenge", (B, L), "pending", "fewer"),  # none after the blink: the turn never comes
    ("F2", D13, 0.0, "blink", (), "live", "fewer"),
    ("F3", KATIE, 0.0, "blink", (), "live", "fewer"),
]
IDS = ["turns-live", "turns-wrong-order", "replay-turns", "turn-blink-wrong-turn", "blink-turn-pending",
       "blink-mode-selfie", "blink-mode-talking"]


@pytest.fixture(scope="module")
def field_hub(face_engine, video_data, tmp_path_factory, request):  # noqa: ANN001, ANN201
    """A real hub (SQLite) with the three owners enrolled from frames of their videos, and its template maker."""
    from field_support import enrolment_photos
    from sync_support import CONSENT, hub_config_data, start_hub

    from sync.hub.config import validate_hub_config
    from sync.hub.faces import EngineTemplateMaker
    tmp_path = tmp_path_factory.mktemp("field_liveness")
    config = validate_hub_config(hub_config_data("sqlite", tmp_path, request), "test", tmp_path)
    maker = EngineTemplateMaker.from_engines([face_engine])
    hub = start_hub(config, maker=maker)
    try:
        for employee_id, (clip, at_s) in OWNERS.items():
            made = hub.hr.post("/v1/hr/employees", json={"employee_id": employee_id, "name": employee_id,
                                                         "branches": ["B001"], "consent": CONSENT,
                                                         "photos": enrolment_photos(video_data / clip, at_s)})
            assert made.status_code == 201, made.text
        yield hub, maker
    finally:
        hub.hr.close()
        hub.server.stop()


@pytest.fixture
def landmark_runs(monkeypatch: pytest.MonkeyPatch) -> list:
    """Each run of the real 106-point landmark model (its own method, wrapped to count)."""
    return record_calls(monkeypatch, Landmarks106, "__call__")


def _hub_answers(hub, maker, owner: str, frames, steps, cfg) -> list[tuple[str, str, int]]:  # noqa: ANN001
    """The hub's answer to each piece, as the phone sees it, until the first that is not pending."""
    from kiosk.face.liveness import Verdict
    from sync.errors import Forbidden
    from sync.hub.field.liveness import add_frames, new_clip

    with hub.db.transaction() as tx:
        clip_id = new_clip(tx, "phone-1", cfg)["clip_id"]
        tx.run("UPDATE field_clips SET steps = ? WHERE id = ?", [",".join(steps), clip_id])  # the drawn challenge
    answers = []
    for start in range(0, len(frames), PIECE):
        try:
            answer = add_frames(hub.db, maker, owner, "phone-1", clip_id, frames[start:start + PIECE], cfg)
        except Forbidden as refused:
            answers.append((Verdict.SPOOF.value, refused.what, -1))
            break
        answers.append((answer["verdict"], "", answer["done"]))
        if answer["verdict"] != Verdict.PENDING.value:
            break
    return answers


def _answers_with_every_landmark(maker, model_id: str, frames, steps, cfg) -> list[tuple[str, str, int]]:  # noqa: ANN001
    """The same clip judged piece by piece with the landmarks of every frame, as the hub did before."""
    from kiosk.face.images import decode_image
    from kiosk.face.liveness import Verdict
    from sync.hub.field.liveness import ClipJudge, kept_look

    looks, answers = [], []
    for start in range(0, len(frames), PIECE):
        for frame in frames[start:start + PIECE]:
            looks.append(kept_look(frame.t_ms, maker.look(decode_image(frame.jpeg), model_id, embed=False,
                                                          landmarks=True)))
        clip = ClipJudge(steps, cfg)
        for look in looks:
            clip.add(look)
        verdict, why, done = clip.result()
        if verdict is Verdict.SPOOF:
            answers.append((verdict.value, f"liveness not passed: {why}", -1))
            break
        answers.append((verdict.value, "", done))
        if verdict is not Verdict.PENDING:
            break
    return answers


@pytest.mark.parametrize(("owner", "clip", "start_s", "mode", "steps", "last", "runs"), CASES, ids=IDS)
def test_field_clip_runs_landmarks_only_while_a_blink_is_awaited(field_hub, face_engine, video_data, landmark_runs,  # noqa: ANN001
                                                                 owner, clip, start_s, mode, steps, last,  # noqa: ANN001
                                                                 runs) -> None:  # noqa: ANN001
    from field_support import clip_frames

    from sync.hub.field.liveness import decode_frames, liveness_config

    hub, maker = field_hub
    cfg = liveness_config(mode, max(len(steps), 1), 8.0)
    frames = decode_frames([(f["t_ms"], f["jpeg_b64"]) for f in clip_frames(video_data / clip, start_s, 8.0)])
    answers = _hub_answers(hub, maker, owner, frames, steps, cfg)
    hub_runs = len(landmark_runs)
    before = _answers_with_every_landmark(maker, face_engine.model_id, frames[:len(answers) * PIECE], steps, cfg)
    every_frame_runs = len(landmark_runs) - hub_runs
    assert answers[-1][0] == last, answers
    assert answers == before, (answers, before)
    if runs == "none":
        assert hub_runs == 0, hub_runs
    else:
        assert 0 < hub_runs < every_frame_runs, (hub_runs, every_frame_runs)
