"""Liveness of a field punch, judged by the hub with the kiosk's own code.

The hub draws the challenge (kiosk.face.liveness `pick_steps` from the system's CSPRNG: turn left / turn right /
blink, in a random order; or, in blink mode, any natural blink) before the phone films anything, so the phone
cannot choose it. The phone then sends its selfie clip in small pieces while the person does it; `LivenessCheck`
is run again over every frame so far (`ClipJudge`: the kept frames of the pieces before replayed, then each new
frame as it is looked at), with the phone's frame times (ms from the start of filming). Each new frame goes
through the kiosk's walk-up steps (sync/hub/faces.py `look`: detect, choose, and the 106-point landmarks only
while the check still waits for a blink, `LivenessCheck.needs_blink` as at the kiosk: a challenge of turns alone
runs none, one with a blink none after it; the replay is fed the same frames with or without landmarks as when
they were first judged, so it reaches the same state). The hub's own clock bounds the whole: the clip's pieces
are refused once the challenge's time and UPLOAD_GRACE_S have passed since it was drawn, plus the time the hub
itself spent judging its pieces.

Across the clip the face must stay one face: each face overlaps the one before as the kiosk's tracker requires
(kiosk.face.walkup `iou`, face.track_iou_min), it may not leave the picture for longer than FACE_GAP_S, and
the most frontal face of every piece is embedded and compared 1:1 with the phone owner's templates; the median of
those scores must reach the kiosk's 1:1 threshold (sync/hub/faces.py `threshold`), judged when the clip is live or
from MATCH_EARLY pieces on (another person is refused without finishing the challenge). A clip is one attempt:
the first refusal ends it (the person presses again and gets a new challenge); a live clip is spent by the one
punch it prepares.

Kept between pieces: each frame's time, face box, keypoints and (when they were run) landmarks, never an image
or an embedding; erased as soon as the clip is judged. The clip's 1:1 scores stay (the punch's score is their median).
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import math
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np

from kiosk.base.errors import Conflict, InvalidInput
from kiosk.base.timeutil import iso_utc, parse_iso, utc_now
from kiosk.face.config import FaceConfig, LivenessConfig
from kiosk.face.images import ImageRefused, decode_image, image_header
from kiosk.face.liveness import LivenessCheck, Step, Verdict, pick_steps, yaw_proxy_deg
from kiosk.face.types import Face
from kiosk.face.walkup import iou
from sync.errors import Forbidden, PayloadTooLarge, Unauthorized
from sync.hub.db.base import HubDb
from sync.hub.faces import FaceLook, TemplateMaker

log = logging.getLogger(__name__)

MAX_FPS = 15  # frames a second the hub judges at most (the page films at FILM_FPS)
FILM_FPS = 10
FRAME_PX = 480  # the longer side the page films at (a modest frame: the face fills most of a selfie)
MAX_FRAME_SIDE = 640
MIN_FRAME_SIDE = 120
MAX_FRAME_BYTES = 100_000
MAX_PIECE_FRAMES = 16
MATCH_EARLY = 3  # pieces after which a face that is not the owner's is refused without waiting for the challenge
FACE_GAP_S = 1.0  # the face may be lost this long (a blink of the detector), not longer
UPLOAD_GRACE_S = 10.0  # after the challenge's time is up, for the last piece and the punch to arrive
IOU_MIN = FaceConfig.model_fields["track_iou_min"].default

FAILURES = {
    "timeout": "the challenge was not done in time",
    "wrong_turn": "the head turned the wrong way (or turned when no turn was asked)",
}


def liveness_config(mode: str, steps: int, timeout_s: float) -> LivenessConfig:
    """The kiosk's liveness rules ([liveness] defaults) with the field's mode, steps and time."""
    return LivenessConfig(mode=mode, challenge_steps=steps, challenge_timeout_s=timeout_s, window_s=timeout_s)


def limit_s(cfg: LivenessConfig) -> float:
    return cfg.challenge_timeout_s if cfg.mode == "challenge" else cfg.window_s


def max_frames(cfg: LivenessConfig) -> int:
    return math.ceil(limit_s(cfg) * MAX_FPS) + 1


@dataclass(frozen=True)
class ClipFrame:
    """One frame the phone filmed: ms since filming started, and the JPEG."""

    t_ms: int
    jpeg: bytes


def decode_frames(raw: list[tuple[int, str]]) -> list[ClipFrame]:
    """The phone's (t_ms, base64 JPEG) pairs as frames; base64 that is not, is a clear 422."""
    frames = []
    for number, (t_ms, text) in enumerate(raw, 1):
        try:
            frames.append(ClipFrame(t_ms, base64.b64decode(text, validate=True)))
        except (binascii.Error, ValueError):
            raise InvalidInput(f"frame {number} is not base64", fix="Send each frame as base64 JPEG.") from None
    return frames


def new_clip(tx: Any, device_id: str, cfg: LivenessConfig) -> dict[str, Any]:
    """Draw the challenge (in the caller's transaction) and open the clip that must show it."""
    steps = pick_steps(secrets.SystemRandom(), cfg.challenge_steps) if cfg.mode == "challenge" else ()
    clip_id = secrets.token_urlsafe(16)
    now = utc_now()
    tx.run("INSERT INTO field_clips (id, device_id, steps, created_utc, expires_utc) VALUES (?, ?, ?, ?, ?)",
           [clip_id, device_id, ",".join(steps), iso_utc(now),
            iso_utc(now + timedelta(seconds=limit_s(cfg) + UPLOAD_GRACE_S))])
    tx.run("DELETE FROM field_clips WHERE expires_utc < ?", [iso_utc(now - timedelta(hours=1))])
    return {"clip_id": clip_id, "mode": cfg.mode, "steps": list(steps), "timeout_s": limit_s(cfg),
            "fps": FILM_FPS, "frame_px": FRAME_PX, "max_frames": max_frames(cfg),
            "max_piece_frames": MAX_PIECE_FRAMES}


def _check_frames(frames: list[ClipFrame], before: int, last_t_ms: int, cfg: LivenessConfig) -> list[np.ndarray]:
    """Bad input named, frame by frame (numbered from the clip's start): count, order, time, size, JPEG."""
    if not frames:
        raise InvalidInput("no frames in this piece of the clip", fix="Send 1 to "
                           f"{MAX_PIECE_FRAMES} frames per request.")
    if before + len(frames) > max_frames(cfg):
        raise PayloadTooLarge(f"the clip has {before + len(frames)} frames; at most {max_frames(cfg)} "
                              f"({MAX_FPS} a second for {limit_s(cfg):.0f} s)",
                              fix=f"Film at {FILM_FPS} frames a second and stop when the hub says live.")
    images = []
    for number, frame in enumerate(frames, before + 1):
        if frame.t_ms <= last_t_ms:
            raise InvalidInput(f"frame {number} is at {frame.t_ms} ms, not after the frame before ({last_t_ms} ms)",
                               fix="Send frames in the order filmed, with ms since filming started.")
        last_t_ms = frame.t_ms
        if len(frame.jpeg) > MAX_FRAME_BYTES:
            raise PayloadTooLarge(f"frame {number} is {len(frame.jpeg)} bytes; at most {MAX_FRAME_BYTES}",
                                  fix=f"Film at most {MAX_FRAME_SIDE} px a side, as JPEG.")
        source = f"frame {number}"
        try:
            header = image_header(frame.jpeg, source)
            if header.format != "jpeg":
                raise InvalidInput(f"{source} is a {header.format.upper()} image, not a JPEG",
                                   fix="Send each frame as JPEG.")
            if max(header.width, header.height) > MAX_FRAME_SIDE or min(header.width, header.height) < MIN_FRAME_SIDE:
                raise InvalidInput(f"{source} is {header.width}x{header.height} pixels; frames are "
                                   f"{MIN_FRAME_SIDE} to {MAX_FRAME_SIDE} px a side",
                                   fix=f"Film at about {FRAME_PX} px on the longer side.")
            images.append(decode_image(frame.jpeg, source))
        except ImageRefused as exc:
            raise InvalidInput(f"{exc.what}: each frame must be a JPEG", fix="Send each frame as JPEG.") from None
    return images


def _owner_vectors(tx: Any, maker: TemplateMaker, employee_id: str) -> tuple[str, np.ndarray, float]:
    models = maker.model_ids()
    rows = tx.rows("SELECT model_id, vector FROM templates WHERE employee_id = ? ORDER BY model_id", [employee_id])
    usable = sorted({r["model_id"] for r in rows} & set(models))
    if not usable:
        raise Forbidden("face not accepted: no face templates of this employee for the hub's face model",
                        fix="Ask HR to add a photo.")
    model_id = usable[0]
    vectors = np.stack([np.frombuffer(bytes(r["vector"]), dtype="<f4") for r in rows if r["model_id"] == model_id])
    return model_id, vectors, maker.threshold(model_id, 1)


class ClipJudge:
    """The kiosk's liveness check over a clip's frames, fed one look at a time in the order filmed, and one face
    throughout. Replaying the kept looks of the pieces before gives back the same state, so the check's need for
    the 106-point landmarks (``needs_landmarks``) is known before each new frame is looked at."""

    def __init__(self, steps: tuple[Step, ...], cfg: LivenessConfig) -> None:
        self.cfg = cfg
        self.check = LivenessCheck(cfg)
        self.check.reset(steps or None)
        self.previous: Face | None = None
        self.seen_s: float | None = None
        self.last_s: float | None = None
        self.verdict = Verdict.PENDING
        self.why = ""

    @property
    def needs_landmarks(self) -> bool:
        """Whether the next frame's face needs its 106-point landmarks: only while the clip is undecided and the
        check still waits for a blink (``LivenessCheck.needs_blink``, the kiosk's own rule); turns are judged on
        the detector's five keypoints."""
        return self.verdict is Verdict.PENDING and self.check.needs_blink

    def add(self, look: dict[str, Any]) -> None:
        """One frame's look as kept (``lmk`` only when it was needed); nothing after the clip is decided."""
        if self.verdict is not Verdict.PENDING:
            return
        t_s = self.last_s = look["t"] / 1000
        if look["bbox"] is None:
            if self.seen_s is not None and t_s - self.seen_s > FACE_GAP_S:
                self.verdict, self.why = Verdict.SPOOF, "the face left the picture"
            return
        face = Face(np.asarray(look["bbox"], np.float32), np.asarray(look["kps"], np.float32), 1.0)
        if self.previous is not None and iou(face, self.previous) < IOU_MIN:
            self.verdict, self.why = Verdict.SPOOF, "the face in the picture changed"
            return
        self.previous, self.seen_s = face, t_s
        lmk = look.get("lmk")
        self.verdict = self.check.update(t_s, None if lmk is None else np.asarray(lmk, np.float32), face.kps)
        if self.verdict is Verdict.SPOOF:
            challenge = self.check.challenge
            self.why = FAILURES.get(challenge.failure, challenge.failure) if challenge else "no blink was seen in time"

    def result(self) -> tuple[Verdict, str, int]:
        """(verdict, why not, challenge steps done) over the frames so far; a clip still undecided past its time
        (and FACE_GAP_S) is refused."""
        done = self.check.challenge.done if self.check.challenge is not None else 0
        if self.verdict is Verdict.PENDING and self.last_s is not None and self.last_s > limit_s(self.cfg) + FACE_GAP_S:
            return Verdict.SPOOF, "no face was seen" if self.previous is None else FAILURES["timeout"], done
        return self.verdict, self.why, done


def add_frames(db: HubDb, maker: TemplateMaker, employee_id: str, device_id: str, clip_id: str,
               frames: list[ClipFrame], cfg: LivenessConfig) -> dict[str, Any]:
    """One piece of a clip: its frames looked at, the whole clip judged again. Pending or live is the answer;
    a refusal (not live, another face, not the owner) is kept, ends the clip and is raised as Forbidden."""
    now = utc_now()
    with db.transaction(write=False) as tx:
        clip = tx.row("SELECT device_id, steps, created_utc, expires_utc, frames, last_t_ms, looks, scores, verdict, "
                      "reason, used_utc FROM field_clips WHERE id = ?", [clip_id])
        if clip is None or clip["device_id"] != device_id or clip["used_utc"] is not None:
            raise Unauthorized("this liveness challenge is unknown or already used", fix="Press the button again.")
        if clip["verdict"] == "spoof":
            raise Forbidden(f"not accepted: {clip['reason']}", fix="Press the button again for a new challenge.")
        if clip["verdict"] == "live":
            raise Conflict("this clip was already judged live", fix="Send the punch (prepare) now.")
        if clip["expires_utc"] < iso_utc(now):
            raise Forbidden("not accepted: the challenge's time ran out", fix="Press the button again.")
        owner = _owner_vectors(tx, maker, employee_id)
    images = _check_frames(frames, clip["frames"], clip["last_t_ms"], cfg)
    looks, scores = json.loads(clip["looks"]), json.loads(clip["scores"])
    steps = tuple(Step(s) for s in clip["steps"].split(",") if s)
    verdict, reason, done, mismatch = _piece(maker, owner, frames, images, looks, scores, steps, cfg)
    final = verdict is not Verdict.PENDING
    # The hub's own time on this piece is given back to the phone: a busy hub must not run a genuine
    # person's challenge out (the phone's frame times still bound the clip itself, in `ClipJudge.result`).
    expires = parse_iso(clip["expires_utc"]) + (utc_now() - now)
    with db.transaction() as tx:
        # Kept only while the clip is judged: its landmarks go once there is a verdict.
        changed = tx.run("UPDATE field_clips SET frames = ?, last_t_ms = ?, looks = ?, scores = ?, verdict = ?, "
                         "reason = ?, expires_utc = ? WHERE id = ? AND frames = ? AND verdict = 'pending'",
                         [len(looks), frames[-1].t_ms, "[]" if final else json.dumps(looks), json.dumps(scores),
                          verdict.value, reason, iso_utc(expires), clip_id, clip["frames"]])
    if changed != 1:
        raise Conflict("two pieces of this clip arrived at once", fix="Send the pieces one after the other.")
    if verdict is Verdict.SPOOF:
        log.info("field device %s: clip refused (%s)", device_id, reason)
        what = "face not accepted" if mismatch else "liveness not passed"
        raise Forbidden(f"{what}: {reason}", fix="Press the button again and follow the new challenge."
                        if not mismatch else "Punch with your own face, on your own phone.")
    return {"verdict": verdict.value, "frames": len(looks), "done": done, "steps": list(steps)}


def _piece(maker: TemplateMaker, owner: tuple[str, np.ndarray, float], frames: list[ClipFrame],
           images: list[np.ndarray], looks: list[dict[str, Any]], scores: list[float], steps: tuple[Step, ...],
           cfg: LivenessConfig) -> tuple[Verdict, str, int, bool]:
    """A piece's frames looked at and judged after the clip's frames before (appended to ``looks``, its most
    frontal face's 1:1 score to ``scores``), each with its landmarks only while the clip still needs them
    (``ClipJudge.needs_landmarks``): (verdict, why not, steps done, whether the face is not the owner's)."""
    model_id, vectors, threshold = owner
    clip = ClipJudge(steps, cfg)
    for look in looks:  # the pieces before, replayed: the check as it stood after them
        clip.add(look)
    seen = []
    for frame, image in zip(frames, images, strict=True):
        look = maker.look(image, model_id, embed=False, landmarks=clip.needs_landmarks)
        looks.append(kept_look(frame.t_ms, look))
        clip.add(looks[-1])
        if look is not None:
            seen.append((abs(yaw_proxy_deg(look.kps)), image))
    if seen:  # the piece's most frontal face, 1:1 (a turned face is not the kiosk's to match either)
        embedded = maker.look(min(seen, key=lambda item: item[0])[1], model_id, embed=True, landmarks=False)
        if embedded is not None and embedded.vector is not None:
            scores.append(round(float(np.max(vectors @ embedded.vector.astype(np.float32))), 4))
    verdict, reason, done = clip.result()
    mismatch = _not_the_owner(scores, threshold, verdict)
    if mismatch:
        return Verdict.SPOOF, "the face does not match this phone's owner", done, True
    return verdict, reason, done, False


def judge_whole_clip(db: HubDb, maker: TemplateMaker, employee_id: str, frames: list[ClipFrame],
                     cfg: LivenessConfig) -> tuple[Verdict, str, float | None]:
    """A clip judged in one go, without a challenge the hub drew (a punch made offline cannot have had one), so
    in blink mode whatever ``cfg`` says: (LIVE or SPOOF, why not, the median 1:1 score). Pieces of
    MAX_PIECE_FRAMES frames are judged as online, so the face is matched as often; a clip still undecided at
    its end is not live."""
    cfg = cfg.model_copy(update={"mode": "blink"})
    with db.transaction(write=False) as tx:
        owner = _owner_vectors(tx, maker, employee_id)
    images = _check_frames(frames, 0, -1, cfg)
    looks: list[dict[str, Any]] = []
    scores: list[float] = []
    verdict, reason = Verdict.PENDING, ""
    for start in range(0, len(frames), MAX_PIECE_FRAMES):
        piece = slice(start, start + MAX_PIECE_FRAMES)
        verdict, reason, _, _ = _piece(maker, owner, frames[piece], images[piece], looks, scores, (), cfg)
        if verdict is not Verdict.PENDING:
            break
    if verdict is Verdict.PENDING:
        verdict, reason = Verdict.SPOOF, "no blink was seen"
    return verdict, reason, round(float(np.median(scores)), 4) if scores else None


def _not_the_owner(scores: list[float], threshold: float, verdict: Verdict) -> bool:
    """The clip's face is not the owner's: the median of its pieces' 1:1 scores is under the kiosk's 1:1
    threshold, judged once the clip is live (or refused), or early from MATCH_EARLY pieces on."""
    if not scores or (verdict is Verdict.PENDING and len(scores) < MATCH_EARLY):
        return verdict is Verdict.LIVE
    return float(np.median(scores)) < threshold


def kept_look(t_ms: int, look: FaceLook | None) -> dict[str, Any]:
    """What is kept of a frame between pieces (``ClipJudge`` reads it): its time and, if a face was seen, its box
    and keypoints, and its landmarks when they were run, rounded to 0.1 px."""
    if look is None:
        return {"t": t_ms, "bbox": None}
    kept = {"t": t_ms, "bbox": _rounded(look.bbox), "kps": _rounded(look.kps)}
    if look.landmarks is not None:
        kept["lmk"] = _rounded(look.landmarks)
    return kept


def _rounded(values: np.ndarray) -> list[Any]:
    return np.round(np.asarray(values, np.float64), 1).tolist()


def live_clip_score(tx: Any, clip_id: str, device_id: str, lock: str = "") -> float:
    """The clip this phone filmed, judged live and not yet spent, or why not; its score is the median 1:1 score
    across it."""
    clip = tx.row("SELECT device_id, verdict, reason, scores, expires_utc, used_utc FROM field_clips WHERE id = ?"
                  + lock, [clip_id])
    if clip is None or clip["device_id"] != device_id or clip["used_utc"] is not None:
        raise Unauthorized("this liveness challenge is unknown or already used", fix="Press the button again.")
    if clip["verdict"] == "spoof":
        raise Forbidden(f"not accepted: {clip['reason']}", fix="Press the button again for a new challenge.")
    if clip["verdict"] != "live":
        raise Forbidden("liveness not passed: the clip has not shown the challenge yet",
                        fix="Follow the challenge on the screen until the page says done.")
    if clip["expires_utc"] < iso_utc(utc_now()):
        raise Forbidden("not accepted: the challenge's time ran out", fix="Press the button again.")
    return round(float(np.median(json.loads(clip["scores"]))), 4)


def spend_live_clip(tx: Any, clip_id: str, device_id: str) -> float:
    """In the transaction that hands out the punch's challenge: the live clip (checked again, locked), spent."""
    score = live_clip_score(tx, clip_id, device_id, tx.for_update)
    tx.run("UPDATE field_clips SET used_utc = ? WHERE id = ?", [iso_utc(utc_now()), clip_id])
    return score
