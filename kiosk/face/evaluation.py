"""Accuracy evaluation: labelled photo sets, pairs, verification and open-set identification figures.

A photo set is a folder with one sub-folder per identity (``DIR/<identity>/<image>``); folders
starting with ``_`` are not identities. Where a photo holds several faces the one nearest the
centre is the labelled one. ``wheel_samples`` builds a small stand-in set from the photos shipped
with the bundled models when no photo set is present (each face a pseudo-identity, with
flipped/darkened/rotated copies) — a smoke test of the pipeline, not an accuracy figure.
"""

from __future__ import annotations

import csv
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from kiosk.base.errors import InvalidInput
from kiosk.face.engine import FaceEngine
from kiosk.face.gallery import Gallery
from kiosk.face.images import image_files, read_image
from kiosk.face.pack import sample_images
from kiosk.face.quality import worth_trying

PAIRS_SEED = 0
SAME_PAIRS_PER_IDENTITY = 10
SAMPLE_MIN_FACE_PX = 36
WHEEL_SAMPLES = "wheel-samples"
FAR_LEVELS = ("0.01", "0.001")


@dataclass(frozen=True)
class LabelledImage:
    identity: str
    path: str
    load: Callable[[], np.ndarray]


def photo_set(root: Path) -> list[LabelledImage]:
    """Every image of every identity folder under ``root``, sorted by identity then file name."""
    if not root.is_dir():
        raise InvalidInput(f"photo set {root} is not a folder",
                           fix=f"Pass a folder of identity folders, or `--data {WHEEL_SAMPLES}`.")
    items = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("_")):
        for file in image_files(folder):
            items.append(LabelledImage(folder.name, f"{folder.name}/{file.name}", lambda f=file: read_image(f)))
    if not items:
        raise InvalidInput(f"no identity folders with images in {root}",
                           fix="Lay the set out as DIR/<identity>/<image>.")
    return items


def _variants(crop: np.ndarray) -> list[np.ndarray]:
    h, w = crop.shape[:2]
    turn = cv2.getRotationMatrix2D((w / 2, h / 2), 8, 0.9)
    return [crop, cv2.flip(crop, 1), cv2.convertScaleAbs(crop, alpha=0.75),
            cv2.warpAffine(crop, turn, (w, h), borderMode=cv2.BORDER_REPLICATE)]


def wheel_samples(engine: FaceEngine) -> list[LabelledImage]:
    """Pseudo-identities cut from the bundled sample photos, four variants each."""
    items = []
    for path in sample_images():
        image = read_image(path)
        for i, face in enumerate(f for f in engine.detect_photo(image) if f.width >= SAMPLE_MIN_FACE_PX):
            cx, cy = face.center
            half = int(1.2 * max(face.width, face.height))
            y1, x1 = max(0, int(cy) - half), max(0, int(cx) - half)
            crop = image[y1:int(cy) + half, x1:int(cx) + half].copy()
            if len(engine.detect(crop)) != 1:
                continue  # a neighbour's face in the crop: not a clean sample
            identity = f"{path.stem}_{i:02d}"
            for j, variant in enumerate(_variants(crop)):
                items.append(LabelledImage(identity, f"{identity}/v{j}", lambda v=variant: v))
    return items


def embed_labelled(engine: FaceEngine, items: list[LabelledImage]) -> dict[str, np.ndarray | None]:
    """path -> embedding of the face nearest the centre (None when no face is found)."""
    out: dict[str, np.ndarray | None] = {}
    for item in items:
        image = item.load()
        face = engine.photo_face(image, policy="center")[0]
        out[item.path] = engine.embed(image, face) if face is not None else None
    return out


def read_pairs(path: Path) -> list[tuple[str, str, bool, str]]:
    """(path1, path2, same, kind) rows of a TSV with header path1 path2 same_person [pair_kind]."""
    with path.open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    if not rows or not {"path1", "path2", "same_person"} <= set(rows[0]):
        raise InvalidInput(f"{path} is not a pairs file", fix="Use a TSV with header path1 path2 same_person "
                           "[pair_kind], paths relative to --data.")
    return [(r["path1"], r["path2"], r["same_person"].strip() in {"1", "true", "True"},
             (r.get("pair_kind") or "all").strip() or "all") for r in rows]


def make_pairs(items: list[LabelledImage]) -> list[tuple[str, str, bool, str]]:
    """Same-person pairs (up to 10 per identity) and as many different-person pairs, fixed seed."""
    rng = random.Random(PAIRS_SEED)
    by_id: dict[str, list[str]] = {}
    for item in items:
        by_id.setdefault(item.identity, []).append(item.path)
    same = []
    for paths in by_id.values():
        combos = list(itertools.combinations(paths, 2))
        same += rng.sample(combos, min(SAME_PAIRS_PER_IDENTITY, len(combos)))
    names = sorted(by_id)
    different = []
    while len(different) < len(same) and len(names) > 1:
        a, b = rng.sample(names, 2)
        different.append((rng.choice(by_id[a]), rng.choice(by_id[b])))
    return [(a, b, True, "generated") for a, b in same] + [(a, b, False, "generated") for a, b in different]


def _cos(a: np.ndarray | None, b: np.ndarray | None) -> float:
    return float(a @ b) if a is not None and b is not None else -1.0


def verification(vectors: dict[str, np.ndarray | None], pairs: list[tuple[str, str, bool, str]]) -> dict:
    """Pair scores -> best accuracy and its threshold, EER, TAR at fixed FAR, accuracy per pair kind."""
    missing = sorted({p for a, b, _, _ in pairs for p in (a, b) if p not in vectors})
    if missing:
        raise InvalidInput(f"pairs file names {len(missing)} image(s) not in the set, e.g. {missing[0]}",
                           fix="Paths in the pairs file are relative to --data.")
    scores = np.array([_cos(vectors[a], vectors[b]) for a, b, _, _ in pairs])
    same = np.array([s for _, _, s, _ in pairs], dtype=bool)
    cuts = np.unique(np.concatenate([scores, [scores.max() + 1e-6]]))
    acc = np.array([np.mean((scores >= t) == same) for t in cuts])
    best = int(np.argmax(acc))
    far = np.array([np.mean(scores[~same] >= t) for t in cuts])
    frr = np.array([np.mean(scores[same] < t) for t in cuts])
    e = int(np.argmin(np.abs(far - frr)))
    tar = {}
    for level in FAR_LEVELS:
        ok = np.nonzero(far <= float(level))[0]
        tar[level] = round(float(np.mean(scores[same] >= cuts[ok[0]])), 4) if len(ok) else 0.0
    kinds = {}
    for kind in sorted({k for *_, k in pairs}):
        sel = np.array([k == kind for *_, k in pairs])
        kinds[kind] = {"pairs": int(sel.sum()),
                       "accuracy_at_best": round(float(np.mean((scores[sel] >= cuts[best]) == same[sel])), 4)}
    return {"pairs_same": int(same.sum()), "pairs_different": int((~same).sum()),
            "best_accuracy": round(float(acc[best]), 4), "best_threshold": round(float(cuts[best]), 4),
            "eer": round(float((far[e] + frr[e]) / 2), 4), "tar_at_far": tar, "by_pair_kind": kinds}


def split_probes(items: list[LabelledImage], enroll_k: int) -> tuple[list, list, list]:
    """(enrolled, mated probes, non-mated probes) as (identity, path): even-indexed identities are
    enrolled with their first K images and probed with the rest, odd ones are strangers."""
    by_id: dict[str, list[str]] = {}
    for item in items:
        by_id.setdefault(item.identity, []).append(item.path)
    enrolled, mated, non_mated = [], [], []
    for index, identity in enumerate(sorted(by_id)):
        paths = by_id[identity]
        if index % 2 == 0 and len(paths) >= 2:
            enrolled += [(identity, p) for p in paths[:enroll_k]]
            mated += [(identity, p) for p in paths[enroll_k:]]
        elif index % 2 == 1:
            non_mated += [(identity, p) for p in paths]
    return enrolled, mated, non_mated


def identification(items: list[LabelledImage], vectors: dict[str, np.ndarray | None], gallery: Gallery,
                   enroll_k: int) -> dict:
    """Open-set 1:N: even-indexed identities enrolled with their first K images, odd ones are strangers."""
    enrolled, mated, non_mated = split_probes(items, enroll_k)
    for identity, path in enrolled:
        if vectors[path] is not None:
            gallery.add(identity, vectors[path])
    rank1 = hits = false_accepts = 0
    for identity, path in mated:
        if vectors[path] is None:
            continue
        match = gallery.search(vectors[path])
        rank1 += match.employee_id == identity
        hits += match.accepted and match.employee_id == identity
    for _, path in non_mated:
        if vectors[path] is not None:
            false_accepts += gallery.search(vectors[path]).accepted
    return {"enrolled": gallery.employees, "mated_probes": len(mated), "non_mated_probes": len(non_mated),
            "rank1": round(rank1 / max(1, len(mated)), 4), "threshold": gallery.cfg.threshold,
            "fnir": round(1 - hits / max(1, len(mated)), 4),
            "fpir": round(false_accepts / max(1, len(non_mated)), 4)}


def impostor_scores(items: list[LabelledImage], vectors: dict[str, np.ndarray | None]) -> np.ndarray:
    """Cosine of every pair of photos of different people (the strong threshold's calibration data)."""
    kept = [(item.identity, vectors[item.path]) for item in items if vectors[item.path] is not None]
    if len(kept) < 2:
        return np.zeros(0)
    ids = np.array([identity for identity, _ in kept])
    matrix = np.stack([v for _, v in kept])
    scores = matrix @ matrix.T
    upper = np.triu_indices(len(kept), 1)
    return scores[upper][(ids[:, None] != ids[None, :])[upper]]


def walkup_frames(engine: FaceEngine, image: np.ndarray, count: int) -> list[np.ndarray | None]:
    """Embeddings of ``count`` frames of a still photo made different as camera frames are (the
    photo, mirrored, darker, turned a little), in that order, repeating."""
    frames = []
    for variant in _variants(image):
        face = engine.photo_face(variant, policy="center")[0]
        frames.append(engine.embed(variant, face) if face is not None else None)
    return [frames[i % len(frames)] for i in range(count)]


def walkup_decisions(engine: FaceEngine, items: list[LabelledImage], gallery: Gallery, enroll_k: int,
                     votes: dict[str, Callable[[], object]], frames: int) -> dict:
    """Each probe photo as a walk-up of ``frames`` frames, decided by each vote in ``votes`` (name ->
    a fresh FrameVote): right and wrong decisions of mated probes, false accepts of strangers, and
    the frames a right decision took. ``gallery`` holds the enrolled identities (``identification``)."""
    _, mated, non_mated = split_probes(items, enroll_k)
    loaders = {item.path: item.load for item in items}
    out = {name: {"right": 0, "wrong": 0, "false_accepts": 0, "frames_to_right": []} for name in votes}
    for identity, path in mated + non_mated:
        matches = [gallery.search(v) if v is not None else None for v in walkup_frames(engine, loaders[path](), frames)]
        for name, make in votes.items():
            vote, decided = make(), None
            for index, match in enumerate(matches, start=1):
                decision = vote.push(match)
                if decision.decided:
                    decided = (decision.employee_id, index)
                    break
            if decided is None:
                continue
            tally = out[name]
            if (identity, path) in non_mated:
                tally["false_accepts"] += 1
            elif decided[0] == identity:
                tally["right"] += 1
                tally["frames_to_right"].append(decided[1])
            else:
                tally["wrong"] += 1
    for tally in out.values():
        spent = tally.pop("frames_to_right")
        tally["mean_frames_to_right"] = round(float(np.mean(spent)), 3) if spent else None
    return {"mated_walkups": len(mated), "stranger_walkups": len(non_mated), "frames": frames, "votes": out}


FAR_CHECK_THRESHOLDS = (0.30, 0.35, 0.40, 0.45, 0.50)
GALLERY_SIZES = (50, 1000)
GALLERY_SPLITS = 5
GALLERY_SEED = 0
FPIR_TARGET = 1e-4


def open_set(impostors: np.ndarray, calibration=None) -> dict:  # noqa: ANN001 - Calibration | None
    """Every cross-identity pair's score: how many, the 99.99th percentile, and the FAR at a few
    thresholds, measured and (with a calibration) as its tail models it."""
    scores = np.asarray(impostors, dtype=np.float64)
    if scores.size == 0:
        return {"impostor_pairs": 0, "impostor_p9999": None, "far_at_threshold": {}}
    far = {}
    for t in FAR_CHECK_THRESHOLDS:
        modelled = calibration.far_at(t) if calibration is not None else None
        far[f"{t:.2f}"] = {"measured": float(np.mean(scores >= t)),
                           "tail_model": float(f"{modelled:.3g}") if modelled is not None else None}
    return {"impostor_pairs": int(scores.size), "impostor_mean": round(float(scores.mean()), 4),
            "impostor_sd": round(float(scores.std()), 4), "impostor_max": round(float(scores.max()), 4),
            "impostor_p9999": round(float(np.quantile(scores, 0.9999)), 4), "far_at_threshold": far}


def _lowest_threshold_for(stranger_scores: list[float], probes: int, fpir: float) -> float | None:
    """The least threshold at which at most ``fpir`` of ``probes`` stranger probes would be accepted,
    from the scores of those strangers the margin rule lets through (0.001 steps, rounded up)."""
    if probes == 0:
        return None
    allowed = int(fpir * probes)
    ordered = sorted(stranger_scores, reverse=True)
    if len(ordered) <= allowed:
        return None  # any threshold would do on this set
    return math.floor(ordered[allowed] * 1000) / 1000 + 0.001


def by_gallery(items: list[LabelledImage], vectors: dict[str, np.ndarray | None], model_id: str,
               threshold_for: Callable[[int], object], sizes: tuple[int, ...] = GALLERY_SIZES,
               splits: int = GALLERY_SPLITS, seed: int = GALLERY_SEED) -> dict:
    """Open-set identification at each roster size with the kiosk's own decision rule.

    ``threshold_for(size)`` gives the [match] config the kiosk would run with at that roster size
    (kiosk.face.calibration). Each split (fixed seed) shuffles the identities, enrols one random photo
    of each of ``size`` of them (all but one when there are fewer) and probes with every other photo:
    photos of enrolled people are mated probes (against the split's first gallery), of the rest
    strangers; the strangers rotate, so every identity is a stranger once per split. Each probe is
    decided by ``Gallery.search`` (threshold and margin), as one frame of a walk-up is."""
    by_id: dict[str, list[np.ndarray]] = {}
    for item in items:
        if vectors.get(item.path) is not None:
            by_id.setdefault(item.identity, []).append(vectors[item.path])
    names = sorted(by_id)
    out = {}
    for size in sizes:
        effective = max(1, min(size, len(names) - 1))
        cfg = threshold_for(effective)
        rng = random.Random(seed)
        mated = mated_hits = strangers = false_accepts = 0
        stranger_scores: list[float] = []
        for _ in range(splits):
            order = names[:]
            rng.shuffle(order)
            enrol_pick = {n: rng.randrange(len(by_id[n])) for n in order}
            out_count = len(order) - effective
            for start in range(0, len(order), out_count):
                out_ids = set(order[start:start + out_count])
                enrolled = [n for n in order if n not in out_ids][:effective]
                gallery = Gallery(model_id, cfg)
                gallery.add_many(enrolled, np.stack([by_id[n][enrol_pick[n]] for n in enrolled]))
                for name in enrolled if start == 0 else ():  # mated probes once per split
                    for i, vec in enumerate(by_id[name]):
                        if i == enrol_pick[name]:
                            continue
                        match = gallery.search(vec)
                        mated += 1
                        mated_hits += match.accepted and match.employee_id == name
                for name in out_ids:
                    for vec in by_id[name]:
                        match = gallery.search(vec)
                        strangers += 1
                        false_accepts += match.accepted
                        if match.margin >= cfg.margin:
                            stranger_scores.append(match.score)
        out[str(size)] = {
            "size": effective, "splits": splits, "threshold": cfg.threshold,
            "mated_probes": mated, "stranger_probes": strangers,
            "fpir": round(false_accepts / max(1, strangers), 6), "fnir": round(1 - mated_hits / max(1, mated), 4),
            "threshold_for_fpir_1e-4": _lowest_threshold_for(stranger_scores, strangers, FPIR_TARGET),
        }
    return out


def dimmed(image: np.ndarray, light: float) -> np.ndarray:
    """The image as a camera would give it with ``light`` times the light (0.3: 30 % brightness)."""
    return cv2.convertScaleAbs(image, alpha=light)


def gate_effect(engine: FaceEngine, gallery: Gallery, probes: list[tuple[str | None, np.ndarray]]) -> dict:
    """What the quality gate costs and saves on ``probes`` (identity or None for a stranger, camera
    frame): each frame is detected, gated and decided by ``gallery`` as one frame of a walk-up.
    ``ungated``: every detected face decided; ``gated``: only those the gate passes or still tries
    (quality.worth_trying). Right and wrong accepts of each, and the gate's reasons (tried or refused)."""
    out = {"probes": len(probes), "detected": 0, "refused": {},
           "ungated": {"right": 0, "wrong": 0}, "gated": {"right": 0, "wrong": 0}}
    for identity, frame in probes:
        face = engine.choose(engine.detect(frame), frame.shape)
        if face is None:
            continue
        out["detected"] += 1
        report = engine.assess_quality(frame, face, walkup=True)
        for reason in report.reasons:
            out["refused"][reason] = out["refused"].get(reason, 0) + 1
        match = gallery.search(engine.embed(frame, face))
        right = match.accepted and identity is not None and match.employee_id == identity
        wrong = match.accepted and not right
        for key, counted in (("ungated", True), ("gated", report.ok or worth_trying(report, engine.quality_cfg))):
            if counted:
                out[key]["right"] += right
                out[key]["wrong"] += wrong
    return out
