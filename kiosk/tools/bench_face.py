"""`kiosk bench accuracy|latency|gallery`: the face engine's figures, each beside the plain alternative."""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import click
import numpy as np

from kiosk.cli.util import ConfigRef, config_options, echo_json
from kiosk.config import KioskConfig, config_from_defaults, default_config_path

log = logging.getLogger(__name__)

FRAME_W, FRAME_H = 640, 480
JITTER_PX = (0, 2, 4, 2, 0, -2, -4, -2)
LATENCY_GALLERY = 1000
GALLERY_PROBES = 200
TEMPLATES_PER_EMPLOYEE = 2
PROBE_SIMILARITY = 0.6


def bench_config(cfg: ConfigRef) -> KioskConfig:
    """The kiosk config; built-in defaults when no --config is given and the default file is absent."""
    if cfg.path == default_config_path() and not cfg.path.exists():
        log.info("no config at %s: using built-in defaults", cfg.path)
        return config_from_defaults(Path.cwd(), cfg.overrides)
    return cfg.load()


def _engine(config: KioskConfig):  # noqa: ANN202 - imported lazily: onnxruntime is slow to import
    from kiosk.face.engine import FaceEngine
    return FaceEngine.from_config(config.face, config.quality)


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return {"p50_ms": round(statistics.median(ordered), 3), "p95_ms": round(p95, 3)}


def timed(fn: Callable[[], object]) -> tuple[object, float]:
    start = time.perf_counter()
    value = fn()
    return value, (time.perf_counter() - start) * 1000


# -- accuracy ------------------------------------------------------------------


@click.command("accuracy")
@click.option("--data", required=True, metavar="DIR",
              help="Photo set: DIR/<identity>/<image> (folders starting with _ are ignored), or "
              "'wheel-samples' for the photos shipped with the bundled models.")
@click.option("--pairs", "pairs_file", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="TSV of path1 path2 same_person [pair_kind], paths relative to DIR "
              "(default: pairs built with a fixed seed).")
@click.option("--enroll-k", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Images enrolled per enrolled identity.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def bench_accuracy(data: str, pairs_file: Path | None, enroll_k: int, as_json: bool, cfg: ConfigRef) -> None:
    """Verification (pairs) and open-set identification accuracy of the configured engine."""
    from kiosk.face import evaluation as ev
    from kiosk.face.gallery import Gallery

    config = bench_config(cfg)
    engine = _engine(config)
    items = ev.wheel_samples(engine) if data == ev.WHEEL_SAMPLES else ev.photo_set(Path(data))
    vectors = ev.embed_labelled(engine, items)
    pairs = ev.read_pairs(pairs_file) if pairs_file else ev.make_pairs(items)
    gallery = Gallery(engine.model_id, config.match, threads=config.face.threads)
    result = {
        "model_id": engine.model_id,
        "images": len(items),
        "no_face": sum(v is None for v in vectors.values()),
        "verification": ev.verification(vectors, pairs),
        "identification": ev.identification(items, vectors, gallery, enroll_k),
        "data": data,
        "no_face_images": sorted(p for p, v in vectors.items() if v is None),
    }
    if as_json:
        echo_json(result)
        return
    ver, ide = result["verification"], result["identification"]
    click.echo(f"data {data}: {result['images']} images, {result['no_face']} without a face "
               f"(model {engine.model_id[:12]})")
    for path in result["no_face_images"]:
        click.echo(f"  no face: {path}")
    click.echo(f"verification: {ver['pairs_same']} same / {ver['pairs_different']} different pairs")
    click.echo(f"  best accuracy {ver['best_accuracy']:.4f} at cosine {ver['best_threshold']:.3f}, "
               f"EER {ver['eer']:.4f}, TAR@FAR=0.01 {ver['tar_at_far']['0.01']:.4f}, "
               f"TAR@FAR=0.001 {ver['tar_at_far']['0.001']:.4f}")
    for kind, figures in ver["by_pair_kind"].items():
        click.echo(f"  {kind}: {figures['pairs']} pairs, accuracy {figures['accuracy_at_best']:.4f}")
    click.echo(f"identification (threshold {ide['threshold']}): {ide['enrolled']} enrolled, "
               f"{ide['mated_probes']} mated / {ide['non_mated_probes']} non-mated probes")
    click.echo(f"  rank-1 {ide['rank1']:.4f}, FNIR {ide['fnir']:.4f}, FPIR {ide['fpir']:.4f}")


# -- latency -------------------------------------------------------------------


def camera_frame(image: np.ndarray) -> np.ndarray:
    """The photo letterboxed into a 640x480 camera frame, as the kiosk camera would deliver."""
    import cv2

    h, w = image.shape[:2]
    scale = min(FRAME_W / w, FRAME_H / h)
    resized = cv2.resize(image, (int(w * scale), int(h * scale)))
    frame = np.full((FRAME_H, FRAME_W, 3), 96, np.uint8)
    y, x = (FRAME_H - resized.shape[0]) // 2, (FRAME_W - resized.shape[1]) // 2
    frame[y:y + resized.shape[0], x:x + resized.shape[1]] = resized
    return frame


def plain_insightface(pack, config: KioskConfig, tmp: Path):  # noqa: ANN001, ANN201
    """insightface's FaceAnalysis on the same detector + recogniser, threads and detector size."""
    from insightface.app import FaceAnalysis

    from kiosk.face.engine import PROVIDERS, session_options

    # FaceAnalysis loads every *.onnx of a folder: give it one holding just the two models.
    os.symlink(pack.detector, tmp / pack.detector.name)
    os.symlink(pack.recognizer, tmp / pack.recognizer.name)
    app = FaceAnalysis(name=str(tmp), providers=PROVIDERS, sess_options=session_options(config.face),
                       allowed_modules=["detection", "recognition"])
    size = config.face.det_size_px
    app.prepare(ctx_id=-1, det_size=(size, size))
    return app


def _stage_times(engine, gallery, frame: np.ndarray) -> dict[str, float]:  # noqa: ANN001
    faces, t_detect = timed(lambda: engine.detect(frame))
    face = engine.choose(faces, frame.shape)
    _, t_quality = timed(lambda: engine.assess_quality(frame, face))
    vector, t_embed = timed(lambda: engine.embed(frame, face))
    _, t_match = timed(lambda: gallery.search(vector))
    return {"detect": t_detect, "quality": t_quality, "embed": t_embed, "match": t_match}


def _latency_gallery(engine, config: KioskConfig, frame: np.ndarray):  # noqa: ANN001, ANN202
    from kiosk.face.gallery import Gallery

    gallery = Gallery(engine.model_id, config.match, threads=config.face.threads)
    rng = np.random.default_rng(0)
    gallery.add_many([f"S{i // TEMPLATES_PER_EMPLOYEE:05d}" for i in range(LATENCY_GALLERY)],
                     rng.standard_normal((LATENCY_GALLERY, 512), dtype=np.float32))
    face = engine.choose(engine.detect(frame), frame.shape)
    if face is None:
        raise click.ClickException("no face found in the latency image; pass --image with one clear face")
    gallery.add("PERSON", engine.embed(frame, face))
    return gallery


def run_latency(config: KioskConfig, image_path: Path, frames: int) -> dict:
    from kiosk.face.flops import model_gflops, sgemm_gflops
    from kiosk.face.images import read_image
    from kiosk.face.walkup import FrameProcessor, FrameState

    engine = _engine(config)
    engine.warm_up()
    base = camera_frame(read_image(image_path))
    moved = [np.roll(base, JITTER_PX[i % len(JITTER_PX)], axis=1) for i in range(frames)]
    idle_frame = np.full_like(base, 96)
    gallery = _latency_gallery(engine, config, base)
    loop, idle_loop = FrameProcessor(engine, gallery, config.match), FrameProcessor(engine, gallery, config.match)
    stages: dict[str, list[float]] = {"detect": [], "quality": [], "embed": [], "match": []}
    total, full, plain, idle, states = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as tmp, warnings.catch_warnings():
        # insightface's own alignment calls a scikit-image API deprecated in 0.26.
        warnings.simplefilter("ignore", FutureWarning)
        app = plain_insightface(engine.pack, config, Path(tmp))
        app.get(base)
        # Interleaved, so the shared CPU's slow moments hit every contender alike.
        for frame in moved:
            result, t_total = timed(lambda f=frame: loop.process(f))
            total.append(t_total)
            states.append(result)
            _, t_plain = timed(lambda f=frame: app.get(f))
            plain.append(t_plain)
            for stage, ms in _stage_times(engine, gallery, frame).items():
                stages[stage].append(ms)
            full.append(sum(stages[s][-1] for s in stages))
            idle.append(timed(lambda: idle_loop.process(idle_frame))[1])
    size = config.face.det_size_px
    det_gflop = model_gflops(engine.pack.detector, (1, 3, size, size))
    rec_gflop = model_gflops(engine.pack.recognizer, (1, 3, 112, 112))
    machine = sgemm_gflops()
    floor_ms = (det_gflop + rec_gflop) / machine * 1000
    p_total, p_plain, p_full = percentiles(total), percentiles(plain), percentiles(full)
    decided = next((i + 1 for i, r in enumerate(states) if r.state is FrameState.DECIDED), None)
    return {
        "stages": {name: percentiles(values) for name, values in stages.items()},
        "total": p_total,
        "insightface": p_plain,
        "ratio_vs_insightface": round(p_total["p50_ms"] / p_plain["p50_ms"], 3),
        "floor_ms": round(floor_ms, 3),
        "ratio_vs_floor": round(p_total["p50_ms"] / floor_ms, 3),
        "det_size": size,
        "threads": config.face.threads,
        "frames": frames,
        "image": str(image_path),
        "full_frame": p_full,
        "ratio_full_frame_vs_insightface": round(p_full["p50_ms"] / p_plain["p50_ms"], 3),
        "idle": percentiles(idle),
        "walkup": {"embeddings": sum(r.embedded for r in states), "decided_at_frame": decided,
                   "decided_employee": next((r.decision.employee_id for r in states if r.decision
                                             and r.decision.decided), None),
                   "ms_until_decided": round(sum(total[:decided]), 2) if decided else None,
                   "insightface_ms_same_frames": round(sum(plain[:decided]), 2) if decided else None},
        "gflop": {"detector": round(det_gflop, 3), "recognizer": round(rec_gflop, 3),
                  "machine_sgemm_gflops": round(machine, 1)},
    }


def _print_latency(r: dict) -> None:
    click.echo(f"per-frame latency, {r['frames']} frames of {r['image']} in a 640x480 frame "
               f"(detector {r['det_size']}px, {r['threads']} thread(s)):")
    for name, p in r["stages"].items():
        click.echo(f"  {name:8} p50 {p['p50_ms']:7.2f} ms   p95 {p['p95_ms']:7.2f} ms")
    f, t, w = r["full_frame"], r["total"], r["walkup"]
    click.echo(f"  all stages, every frame            p50 {f['p50_ms']:7.2f} ms   p95 {f['p95_ms']:7.2f} ms   "
               f"({r['ratio_full_frame_vs_insightface']:.2f}x insightface)")
    click.echo(f"  kiosk loop (tracking, one walk-up) p50 {t['p50_ms']:7.2f} ms   p95 {t['p95_ms']:7.2f} ms   "
               f"({w['embeddings']} embeddings in {r['frames']} frames, decided at frame {w['decided_at_frame']})")
    click.echo(f"  nobody in view                     p50 {r['idle']['p50_ms']:7.2f} ms")
    click.echo(f"  plain insightface FaceAnalysis     p50 {r['insightface']['p50_ms']:7.2f} ms   "
               f"p95 {r['insightface']['p95_ms']:7.2f} ms")
    click.echo(f"  until decided: kiosk {w['ms_until_decided']} ms vs insightface {w['insightface_ms_same_frames']} "
               "ms on the same frames")
    g = r["gflop"]
    click.echo(f"  floor: ({g['detector']} + {g['recognizer']}) GFLOP / {g['machine_sgemm_gflops']} GFLOPS sgemm "
               f"= {r['floor_ms']:.2f} ms (one full detect + embed; the kiosk loop skips the embedding "
               "once a walk-up is decided, so it can go below)")
    click.echo(f"  ratio vs insightface {r['ratio_vs_insightface']:.3f}, vs floor {r['ratio_vs_floor']:.3f}")


@click.command("latency")
@click.option("--image", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Photo with one face (default: yaoming.jpg shipped with the bundled models).")
@click.option("--frames", default=60, show_default=True, type=click.IntRange(5, 100000),
              help="Frames in the simulated walk-up.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def bench_latency(image: Path | None, frames: int, as_json: bool, cfg: ConfigRef) -> None:
    """Per-stage and per-frame milliseconds vs plain insightface and the compute floor, same run."""
    from kiosk.face.pack import sample_images

    config = bench_config(cfg)
    result = run_latency(config, image or sample_images()[0], frames)
    if as_json:
        echo_json(result)
    else:
        _print_latency(result)


# -- gallery -------------------------------------------------------------------


def run_gallery(config: KioskConfig, size: int, probes: int) -> dict:
    from kiosk.face.gallery import Gallery

    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((size, 512), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    owners = [f"E{i // TEMPLATES_PER_EMPLOYEE:06d}" for i in range(size)]
    gallery = Gallery("bench", config.match, threads=config.face.threads)
    gallery.add_many(owners, vectors)
    picks = rng.choice(size, probes, replace=False)
    noise = rng.standard_normal((probes, 512), dtype=np.float32)
    noise /= np.linalg.norm(noise, axis=1, keepdims=True)
    queries = PROBE_SIMILARITY * vectors[picks] + np.sqrt(1 - PROBE_SIMILARITY**2) * noise
    _, build_ms = timed(lambda: gallery.search(queries[0]))
    times, hits = [], 0
    for pick, query in zip(picks, queries, strict=True):
        match, ms = timed(lambda q=query: gallery.search(q))
        times.append(ms)
        hits += match.employee_id == owners[pick]
    exact = [timed(lambda q=q: (vectors @ q).argmax())[1] for q in queries[:50]]
    result = {"size": size, **percentiles(times)}
    result.update({"employees": gallery.employees, "probes": probes, "recall_at_1": round(hits / probes, 4),
                   "coarse_index": size > config.match.exact_search_max, "first_search_ms": round(build_ms, 1),
                   "exact_scan_p50_ms": percentiles(exact)["p50_ms"]})
    return result


@click.command("gallery")
@click.option("--size", default=100000, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Templates in the gallery (random unit vectors, two per employee).")
@click.option("--probes", default=GALLERY_PROBES, show_default=True, type=click.IntRange(1, 100000),
              help="Searches timed (each a noisy copy of a stored template, cosine ~0.6).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def bench_gallery(size: int, probes: int, as_json: bool, cfg: ConfigRef) -> None:
    """1:N search time for a gallery of SIZE templates, beside a plain exact scan."""
    r = run_gallery(bench_config(cfg), size, probes)
    if as_json:
        echo_json(r)
        return
    click.echo(f"1:N search, {r['size']} templates of {r['employees']} employees, {r['probes']} probes "
               f"({'coarse int8 pass + exact re-rank' if r['coarse_index'] else 'exact scan'}):")
    click.echo(f"  p50 {r['p50_ms']:.3f} ms, p95 {r['p95_ms']:.3f} ms, recall@1 {r['recall_at_1']:.4f} "
               f"(first search, building the index: {r['first_search_ms']} ms)")
    click.echo(f"  plain exact float32 scan: p50 {r['exact_scan_p50_ms']:.3f} ms")


COMMANDS = [bench_accuracy, bench_latency, bench_gallery]
