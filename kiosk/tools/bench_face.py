"""`kiosk bench accuracy|latency|gallery`: the face engine's figures, each beside the plain alternative."""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import warnings
from pathlib import Path

import click
import numpy as np

from kiosk.cli.util import ConfigRef, config_options, echo_json
from kiosk.config import KioskConfig, config_from_defaults, default_config_path
from kiosk.tools.benchkit import (
    cores_option,
    cores_overrides,
    fmt_spread,
    machine,
    machine_line,
    pin_cores,
    ratio_spread,
    rounds_option,
    spread,
    timed,
)

log = logging.getLogger(__name__)

JITTER_PX = (0, 2, 4, 2, 0, -2, -4, -2)
LATENCY_GALLERY = 1000
TEMPLATES_PER_EMPLOYEE = 2
DISTRACTOR_SHRINK = 0.1


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
@click.option("--walkup-frames", default=5, show_default=True, type=click.IntRange(0, 50),
              help="Also decide every probe photo as a walk-up of this many frames (the photo, mirrored, darker, "
              "turned), by k of n alone and with the strong two-frame decision (0: skip).")
@click.option("--write-calibration", "calibration_out", type=click.Path(dir_okay=False, path_type=Path),
              help="Also save the calibration measured on DIR (impostor tail and strong threshold) to this file; "
              "copy it into the model pack as calibration.json.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def bench_accuracy(data: str, pairs_file: Path | None, enroll_k: int, walkup_frames: int,
                   calibration_out: Path | None, as_json: bool, cfg: ConfigRef) -> None:
    """Verification (pairs), open-set identification and the calibration of the configured engine."""
    from kiosk.face import evaluation as ev
    from kiosk.face.gallery import Gallery

    config = bench_config(cfg)
    engine = _engine(config)
    items = ev.wheel_samples(engine) if data == ev.WHEEL_SAMPLES else ev.photo_set(Path(data))
    vectors = ev.embed_labelled(engine, items)
    pairs = ev.read_pairs(pairs_file) if pairs_file else ev.make_pairs(items)
    from kiosk.face.calibration import at_point, operating_point
    enrolled = len({identity for identity, _ in ev.split_probes(items, enroll_k)[0]})
    point = operating_point(engine.pack, config.face, config.match, enrolled)
    gallery = Gallery(engine.model_id, at_point(config.match, point), threads=config.face.threads)
    calibration = _calibration(engine, config, data, items, vectors)
    if calibration_out is not None:
        from kiosk.face.calibration import write
        if calibration["measured"] is None:
            raise click.ClickException(f"{data} has too few different-person pairs to fit a calibration")
        write(calibration["measured"], calibration_out)
    result = {
        "model_id": engine.model_id,
        "images": len(items),
        "no_face": sum(v is None for v in vectors.values()),
        "verification": ev.verification(vectors, pairs),
        "identification": ev.identification(items, vectors, gallery, enroll_k),
        "data": data,
        "no_face_images": sorted(p for p, v in vectors.items() if v is None),
        "strong": _strong(engine, config, items, vectors),
        "open_set": calibration["open_set"],
        "by_gallery": calibration["by_gallery"],
        "calibration": calibration["measured"].to_json() if calibration["measured"] else None,
    }
    if walkup_frames:
        result["walkups"] = _walkups(engine, config, items, gallery, enroll_k, walkup_frames)
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
    _print_open_set(result)
    _print_strong(result)
    if calibration_out is not None:
        click.echo(f"calibration written to {calibration_out} (copy it into the pack folder as calibration.json)")


def _calibration(engine, config: KioskConfig, data: str, items: list, vectors: dict) -> dict:  # noqa: ANN001
    """Open-set figures: impostor pairs, the calibration measured here, and FPIR/FNIR per roster size
    at the threshold the kiosk derives for that size from the pack's calibration in use."""
    import datetime as dt

    from kiosk.face import evaluation as ev
    from kiosk.face.calibration import at_point, calibration_for, fit, operating_point

    impostors = ev.impostor_scores(items, vectors)
    in_use = calibration_for(engine.pack)
    measured = fit(impostors, engine.model_id, f"{data}: {len(items)} photos of {len({i.identity for i in items})} "
                   "identities", dt.date.today().isoformat())

    def config_for(size: int):  # noqa: ANN202 - MatchConfig
        return at_point(config.match, operating_point(engine.pack, config.face, config.match, size))

    galleries = ev.by_gallery(items, vectors, engine.model_id, config_for)
    for figures in galleries.values():
        point = operating_point(engine.pack, config.face, config.match, figures["size"])
        figures["calibrated_threshold"] = point.calibrated
        if measured is not None:
            figures["threshold_from_this_set"] = round(measured.score_at(config.face.target_fpir / figures["size"]), 3)
    return {"open_set": {**ev.open_set(impostors, in_use), "target_fpir": config.face.target_fpir,
                         "calibration_in_use": None if in_use is None else f"{in_use.dataset}, {in_use.measured}"},
            "by_gallery": galleries, "measured": measured}


def _print_open_set(result: dict) -> None:
    o = result["open_set"]
    if not o["impostor_pairs"]:
        return
    click.echo(f"open set: {o['impostor_pairs']} different-person pairs, mean {o['impostor_mean']}, sd "
               f"{o['impostor_sd']}, 99.99th percentile {o['impostor_p9999']}, highest {o['impostor_max']}")
    click.echo("  FAR per comparison at " + ", ".join(
        f"{t}: {v['measured']:.2e}" + (f" (tail model {v['tail_model']:.1e})" if v["tail_model"] is not None else "")
        for t, v in o["far_at_threshold"].items()))
    click.echo(f"  by roster size, target FPIR {o['target_fpir']:g} per walk-up (calibration in use: "
               f"{o['calibration_in_use']}):")
    for name, g in result["by_gallery"].items():
        click.echo(f"  {name:>5}: {g['size']} enrolled, threshold {g['threshold']:.3f} -> FPIR {g['fpir']:.2e} "
                   f"({g['stranger_probes']} stranger probes), FNIR {g['fnir']:.4f} ({g['mated_probes']} mated); "
                   f"lowest threshold with FPIR <= 1e-4 here {g['threshold_for_fpir_1e-4']}")
    if result["calibration"]:
        c = result["calibration"]
        click.echo(f"  calibration measured here: tail above {c['tail_start']} ({c['tail_fraction']:.4f} of pairs), "
                   f"scale {c['tail_scale']}, strong {c['strong_threshold']}")


def _strong(engine, config: KioskConfig, items: list, vectors: dict) -> dict:  # noqa: ANN001
    """The calibration of the strong two-frame decision on this photo set, and the threshold in use."""
    from kiosk.face import evaluation as ev
    from kiosk.face.calibration import strong_threshold, strong_threshold_from

    impostors = ev.impostor_scores(items, vectors)
    return {"impostor_pairs": int(impostors.size),
            "impostor_max": round(float(impostors.max()), 4) if impostors.size else None,
            "impostor_sd": round(float(impostors.std()), 4) if impostors.size else None,
            "calibrated_threshold": strong_threshold_from(impostors),
            "threshold_in_use": strong_threshold(engine.pack, config.match)}


def _walkups(engine, config: KioskConfig, items: list, gallery, enroll_k: int, frames: int) -> dict:  # noqa: ANN001
    from kiosk.face import evaluation as ev
    from kiosk.face.calibration import strong_threshold
    from kiosk.face.vote import FrameVote

    match, strong = config.match, strong_threshold(engine.pack, config.match)
    votes = {"k_of_n": lambda: FrameVote(match.vote_k, match.vote_n),
             "k_of_n_or_strong": lambda: FrameVote.from_config(match, strong)}
    return ev.walkup_decisions(engine, items, gallery, enroll_k, votes, frames)


def _print_strong(result: dict) -> None:
    s = result["strong"]
    click.echo(f"strong two-frame decision: {s['impostor_pairs']} different-person pairs, highest {s['impostor_max']}, "
               f"sd {s['impostor_sd']} -> calibrated threshold {s['calibrated_threshold']} "
               f"(in use: {s['threshold_in_use']})")
    w = result.get("walkups")
    if not w:
        return
    click.echo(f"walk-ups of {w['frames']} frames: {w['mated_walkups']} of enrolled people, "
               f"{w['stranger_walkups']} of strangers:")
    for name, t in w["votes"].items():
        click.echo(f"  {name:17} right {t['right']}, wrong person {t['wrong']}, strangers accepted "
                   f"{t['false_accepts']}, frames to a right decision {t['mean_frames_to_right']}")


# -- latency -------------------------------------------------------------------


def plain_insightface(pack, config: KioskConfig, tmp: Path):  # noqa: ANN001, ANN201
    """insightface's FaceAnalysis on the same detector + recogniser, threads and detector size."""
    from insightface.app import FaceAnalysis

    from kiosk.face.engine import session_options
    from kiosk.face.sessions import PROVIDERS

    # FaceAnalysis loads every *.onnx of a folder: give it one holding just the two models.
    os.symlink(pack.detector, tmp / pack.detector.name)
    os.symlink(pack.recognizer, tmp / pack.recognizer.name)
    app = FaceAnalysis(name=str(tmp), providers=PROVIDERS, sess_options=session_options(config.face),
                       allowed_modules=["detection", "recognition"])
    size = config.face.det_size_px
    app.prepare(ctx_id=-1, det_size=(size, size))
    return app


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


def _mean(values: list[float]) -> float:
    return statistics.fmean(values) if values else float("nan")


CAMERA_FPS = 15.0
STAGES = ("detect", "quality", "embed", "match", "beside")


def _liveness_as_shipped(config: KioskConfig):  # noqa: ANN202 - LivenessCheck
    """The walk-up's liveness check with the configured [liveness]; in challenge mode a challenge with a blink
    step (4 of the 6 draws of two steps): a still photo never blinks, so its landmarks run on every frame."""
    from kiosk.face.liveness import LivenessCheck, Step

    check = LivenessCheck(config.liveness)
    if check.challenge is not None:
        check.reset(tuple(sorted(Step, key=lambda step: step is not Step.BLINK))[:config.liveness.challenge_steps])
    return check


def _kiosk_contender(engine, gallery, config: KioskConfig, landmarks, live: bool):  # noqa: ANN001, ANN202
    """One frame of the kiosk: the frame processor, and with ``live`` the liveness check of the daemon's
    pipeline (kiosk.runtime.pipeline): the 106-point landmarks beside the frame's recognition while the check
    still needs them (``LivenessCheck.needs_blink``), fed to the check. Without ``live``: liveness off (or a
    challenge of turns only, whose frames cost the same), settled once decided as the pipeline does."""
    from kiosk.face.walkup import FrameProcessor, FrameState

    loop = FrameProcessor(engine, gallery, config.match)
    check = _liveness_as_shipped(config) if live and landmarks is not None else None

    def frame_step(index: int, frame: np.ndarray):  # noqa: ANN202 - FrameResult
        if check is None:
            result = loop.process(frame)
            if result.state is FrameState.DECIDED:
                loop.settle()  # the pipeline punches and settles (liveness off)
            return result

        def beside(face):  # noqa: ANN001, ANN202
            return (lambda: landmarks(frame, face.bbox)) if check.needs_blink else None

        result = loop.process(frame, beside=beside)
        if result.face is not None:
            check.update(index / CAMERA_FPS, result.beside, result.face.kps, frame)
        return result

    return frame_step


def _walkup_round(engine, gallery, config: KioskConfig, app, frames: list[np.ndarray],  # noqa: ANN001
                  landmarks) -> dict:  # noqa: ANN001
    """One walk-up: every frame through the kiosk (liveness as shipped, and without landmarks) and plain
    insightface, in turns (the one that goes first changes every frame)."""
    from kiosk.face.walkup import FrameState

    steps = {"kiosk": _kiosk_contender(engine, gallery, config, landmarks, live=True),
             "kiosk_no_landmarks": _kiosk_contender(engine, gallery, config, landmarks, live=False)}
    times: dict[str, list[tuple[float, float]]] = {"kiosk": [], "kiosk_no_landmarks": [], "insightface": []}
    results: dict[str, list] = {"kiosk": [], "kiosk_no_landmarks": []}
    marks = []
    for index, frame in enumerate(frames):
        def run(name: str, f: np.ndarray = frame, i: int = index) -> None:
            if name == "insightface":
                times[name].append(timed(lambda: app.get(f))[1:])
                return
            result, wall, cpu = timed(lambda: steps[name](i, f))
            results[name].append(result)
            times[name].append((wall, cpu))

        names = list(times)
        for name in names[index % 3:] + names[:index % 3]:
            run(name)
        last = results["kiosk"][-1]
        if landmarks is not None and last.face is not None and last.embedded:
            marks.append(timed(lambda f=frame, r=last: landmarks(f, r.face.bbox))[1:])
    upto = {name: next((i + 1 for i, r in enumerate(rs) if r.state is FrameState.DECIDED), None) or len(frames)
            for name, rs in results.items()}
    upto["insightface"] = upto["kiosk"]
    decided = next((i + 1 for i, r in enumerate(results["kiosk"]) if r.state is FrameState.DECIDED), None)
    out = {
        "decided_at_frame": decided, "embeddings": sum(r.embedded for r in results["kiosk"]),
        "employee": next((r.decision.employee_id for r in results["kiosk"] if r.decision and r.decision.decided),
                         None),
        "stages": {stage: (sum(r.timings_ms.get(stage, 0.0) for r in results["kiosk"][:upto["kiosk"]]) / upto["kiosk"],
                           sum(r.cpu_ms.get(stage, 0.0) for r in results["kiosk"][:upto["kiosk"]]) / upto["kiosk"])
                   for stage in STAGES},
        "landmarks": [_mean([w for w, _ in marks]), _mean([c for _, c in marks])] if marks else None,
    }
    for name, pairs in times.items():
        n = upto[name]
        out[f"{name}_to_decision"] = [_mean([w for w, _ in pairs[:n]]), _mean([c for _, c in pairs[:n]])]
        out[f"{name}_after"] = [_mean([w for w, _ in pairs[n:]]), _mean([c for _, c in pairs[n:]])]
        out[f"{name}_until_decided"] = sum(w for w, _ in pairs[:n])
    return out


def _idle_round(engine, gallery, config: KioskConfig, frame: np.ndarray, count: int) -> list[float]:  # noqa: ANN001
    """Wall and CPU ms per look while nobody is in view (the picture unchanged, as the daemon's motion gate
    finds an empty scene: the idle pass alone)."""
    from kiosk.face.walkup import FrameProcessor

    loop = FrameProcessor(engine, gallery, config.match)
    looks = [timed(lambda: loop.process(frame, moved=False))[1:] for _ in range(count)]
    return [_mean([w for w, _ in looks]), _mean([c for _, c in looks])]


def _floor(engine, size: int) -> dict:
    from kiosk.face.flops import model_gflops, sgemm_gflops

    det = model_gflops(engine.pack.detector, (1, 3, size, size))
    rec = model_gflops(engine.pack.recognizer, (1, 3, 112, 112))
    machine_gflops = sgemm_gflops()
    return {"detector": round(det, 3), "recognizer": round(rec, 3), "machine_sgemm_gflops": round(machine_gflops, 1),
            "floor_ms": round((det + rec) / machine_gflops * 1000, 3)}


def _column(rounds: list[dict], key: str, part: int) -> list[float]:
    return [r[key][part] for r in rounds if r[key] is not None and r[key][part] == r[key][part]]


def run_latency(config: KioskConfig, image_path: Path, frames: int, rounds: int) -> dict:
    from kiosk.face.conditions import camera_frame
    from kiosk.face.images import read_image

    engine = _engine(config)
    engine.warm_up()
    base = camera_frame(read_image(image_path))
    moved = [np.roll(base, JITTER_PX[i % len(JITTER_PX)], axis=1) for i in range(frames)]
    gallery = _latency_gallery(engine, config, base)
    landmarks = None
    if config.liveness.enabled and engine.pack.landmarks is not None:
        from kiosk.face.landmarks import Landmarks106
        landmarks = Landmarks106(engine)
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as tmp, warnings.catch_warnings():
        # insightface's own alignment calls a scikit-image API deprecated in 0.26.
        warnings.simplefilter("ignore", FutureWarning)
        app = plain_insightface(engine.pack, config, Path(tmp))
        app.get(base)
        walks = [_walkup_round(engine, gallery, config, app, moved, landmarks) for _ in range(rounds)]
    idle = [_idle_round(engine, gallery, config, np.full_like(base, 96), frames) for _ in range(rounds)]
    floor = _floor(engine, config.face.det_size_px)

    def per_frame(name: str, part: int) -> list[float]:
        return _column(walks, f"{name}_to_decision", part)

    def ratios(name: str, part: int) -> dict:
        return ratio_spread(per_frame(name, part), per_frame("insightface", part))

    live = config.liveness
    return {
        "machine": machine(), "image": str(image_path), "frames": frames, "rounds": rounds,
        "det_size": config.face.det_size_px, "threads": config.face.threads,
        "liveness": {"enabled": live.enabled and landmarks is not None, "mode": live.mode,
                     "steps": [str(s) for s in (_liveness_as_shipped(config).challenge.steps
                                                if live.enabled and live.mode == "challenge" else ())]},
        "decided_at_frame": [w["decided_at_frame"] for w in walks],
        "decided_employee": walks[0]["employee"],
        "per_frame_to_decision_ms": {"kiosk": spread(per_frame("kiosk", 0)),
                                     "insightface": spread(per_frame("insightface", 0)), "ratio": ratios("kiosk", 0)},
        "per_frame_to_decision_cpu_ms": {"kiosk": spread(per_frame("kiosk", 1)),
                                         "insightface": spread(per_frame("insightface", 1)),
                                         "ratio": ratios("kiosk", 1)},
        "without_landmarks": {
            "per_frame_to_decision_ms": {"kiosk": spread(per_frame("kiosk_no_landmarks", 0)),
                                         "ratio": ratios("kiosk_no_landmarks", 0)},
            "per_frame_to_decision_cpu_ms": {"kiosk": spread(per_frame("kiosk_no_landmarks", 1)),
                                             "ratio": ratios("kiosk_no_landmarks", 1)}},
        "until_decided_ms": {name: spread([w[f"{name}_until_decided"] for w in walks])
                             for name in ("kiosk", "kiosk_no_landmarks", "insightface")},
        "per_frame_after_decision_ms": {name: spread(_column(walks, f"{name}_after", 0))
                                        for name in ("kiosk", "kiosk_no_landmarks", "insightface")},
        "stages_to_decision_ms": {name: spread([w["stages"][name][0] for w in walks]) for name in STAGES},
        "stages_to_decision_cpu_ms": {name: spread([w["stages"][name][1] for w in walks]) for name in STAGES},
        "landmarks_106_ms": spread(_column(walks, "landmarks", 0)) if landmarks else None,
        "landmarks_106_cpu_ms": spread(_column(walks, "landmarks", 1)) if landmarks else None,
        "idle_ms": spread([i[0] for i in idle]), "idle_cpu_ms": spread([i[1] for i in idle]),
        "floor": floor,
        "ratio_vs_floor": round(statistics.median(per_frame("kiosk", 0)) / floor["floor_ms"], 3),
    }


def _print_latency(r: dict) -> None:
    click.echo(machine_line(r["machine"]))
    click.echo(f"per-frame latency: {r['rounds']} walk-ups of {r['frames']} frames of {r['image']} in a 640x480 "
               f"frame (detector {r['det_size']}px, {r['threads']} thread(s)); decided at frame "
               f"{', '.join(str(d) for d in r['decided_at_frame'])}; min/median/max over walk-ups")
    live = r["liveness"]
    shipped = (f"liveness on, {live['mode']}" + (f" {'+'.join(live['steps'])}" if live["steps"] else "")
               if live["enabled"] else "liveness off")
    head, cpu = r["per_frame_to_decision_ms"], r["per_frame_to_decision_cpu_ms"]
    bare, bare_cpu = r["without_landmarks"]["per_frame_to_decision_ms"], \
        r["without_landmarks"]["per_frame_to_decision_cpu_ms"]
    click.echo("  per frame up to the decision (what a person waits for), the three in turns:")
    click.echo(f"    kiosk ({shipped})")
    click.echo(f"                        {fmt_spread(head['kiosk'], ' ms')}   CPU {fmt_spread(cpu['kiosk'], ' ms')}")
    click.echo(f"    plain insightface   {fmt_spread(head['insightface'], ' ms')}   "
               f"CPU {fmt_spread(cpu['insightface'], ' ms')}")
    click.echo(f"    kiosk / insightface {fmt_spread(head['ratio'], 'x', 3)}   CPU {fmt_spread(cpu['ratio'], 'x', 3)}")
    click.echo("    kiosk without the landmarks (liveness off, or a challenge of turns only: 2 of 6 draws)")
    click.echo(f"                        {fmt_spread(bare['kiosk'], ' ms')}   "
               f"CPU {fmt_spread(bare_cpu['kiosk'], ' ms')}")
    click.echo(f"      / insightface     {fmt_spread(bare['ratio'], 'x', 3)}   "
               f"CPU {fmt_spread(bare_cpu['ratio'], 'x', 3)}")
    until = r["until_decided_ms"]
    click.echo(f"  until decided: kiosk {fmt_spread(until['kiosk'], ' ms', 1)} (without the landmarks "
               f"{fmt_spread(until['kiosk_no_landmarks'], ' ms', 1)}); insightface on the same frames "
               f"{fmt_spread(until['insightface'], ' ms', 1)}")
    click.echo("  kiosk's stages per frame up to the decision (wall | process CPU; with a spare core the landmarks run "
               "beside quality, embed and match: their CPU shows there, 'beside' is the wait after them):")
    for name, wall in r["stages_to_decision_ms"].items():
        cpu_ms = r["stages_to_decision_cpu_ms"][name]
        click.echo(f"    {name:8} {fmt_spread(wall, ' ms')} | {fmt_spread(cpu_ms, ' ms')}")
    if r["landmarks_106_ms"]:
        click.echo("    the 106-point landmarks alone, as measured apart "
                   f"{fmt_spread(r['landmarks_106_ms'], ' ms')} | {fmt_spread(r['landmarks_106_cpu_ms'], ' ms')}")
    after = r["per_frame_after_decision_ms"]
    click.echo(f"  after the decision (face still in view, no more embeddings): kiosk "
               f"{fmt_spread(after['kiosk'], ' ms')} (still waiting for the liveness check), settled "
               f"{fmt_spread(after['kiosk_no_landmarks'], ' ms')}, vs insightface "
               f"{fmt_spread(after['insightface'], ' ms')}")
    click.echo(f"  nobody in view: {fmt_spread(r['idle_ms'], ' ms')} per look, "
               f"CPU {fmt_spread(r['idle_cpu_ms'], ' ms')}")
    g = r["floor"]
    click.echo(f"  floor: ({g['detector']} + {g['recognizer']}) GFLOP / {g['machine_sgemm_gflops']} GFLOPS sgemm = "
               f"{g['floor_ms']:.2f} ms; kiosk per frame to the decision = {r['ratio_vs_floor']}x the floor")


@click.command("latency")
@click.option("--image", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="Photo with one face (default: yaoming.jpg shipped with the bundled models).")
@click.option("--frames", default=30, show_default=True, type=click.IntRange(5, 100000),
              help="Frames in each simulated walk-up.")
@rounds_option
@cores_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def bench_latency(image: Path | None, frames: int, rounds: int, cores: int | None, as_json: bool,
                  cfg: ConfigRef) -> None:
    """Per-frame cost up to the decision vs plain insightface (same frames, in turns), per stage."""
    from kiosk.face.pack import sample_images

    pin_cores(cores)
    cfg.overrides += cores_overrides(cores)
    config = bench_config(cfg)
    result = run_latency(config, image or sample_images()[0], frames, rounds)
    if as_json:
        echo_json(result)
    else:
        _print_latency(result)


# -- gallery -------------------------------------------------------------------


def _exact_session(threads: int):  # noqa: ANN202 - onnxruntime session
    """The fair threaded exact scan: float32 MatMul + TopK on onnxruntime, the gallery's thread settings."""
    import onnxruntime as ort
    from onnx import TensorProto, helper

    nodes = [helper.make_node("MatMul", ["rows", "query"], ["scores"]),
             helper.make_node("TopK", ["scores", "k"], ["top_scores", "top_rows"], axis=0)]
    graph = helper.make_graph(
        nodes, "exact_topk",
        [helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["n", 512]),
         helper.make_tensor_value_info("query", TensorProto.FLOAT, [512, 1]),
         helper.make_tensor_value_info("k", TensorProto.INT64, [1])],
        [helper.make_tensor_value_info("top_scores", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("top_rows", TensorProto.INT64, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def real_embeddings(engine, data: str | None) -> tuple[list[str], np.ndarray, str]:  # noqa: ANN001
    """(identity per row, unit embeddings) of a photo set, its first photo per identity first in order."""
    from kiosk.face import evaluation as ev
    from kiosk.tools.scenes import default_faces_dir

    if data is None:
        shared = default_faces_dir()
        data = str(shared) if shared is not None else ev.WHEEL_SAMPLES
    items = ev.wheel_samples(engine) if data == ev.WHEEL_SAMPLES else ev.photo_set(Path(data))
    vectors = ev.embed_labelled(engine, items)
    kept = [(item.identity, vectors[item.path]) for item in items if vectors[item.path] is not None]
    if not kept:
        raise click.ClickException(f"no face found in any photo of {data}")
    return [k for k, _ in kept], np.stack([v for _, v in kept]).astype(np.float32), data


def realistic_distractors(real: np.ndarray, count: int, seed: int = 0) -> np.ndarray:
    """Unit vectors drawn from a Gaussian fitted to real embeddings (covariance shrunk towards its mean
    variance, since a few hundred photos cannot pin down 512 dimensions)."""
    rng = np.random.default_rng(seed)
    mean = real.mean(axis=0)
    cov = np.cov(real, rowvar=False) if len(real) > 1 else np.eye(real.shape[1]) / real.shape[1]
    cov = (1 - DISTRACTOR_SHRINK) * cov + DISTRACTOR_SHRINK * np.trace(cov) / len(cov) * np.eye(len(cov))
    values, vectors = np.linalg.eigh(cov)
    root = vectors * np.sqrt(np.clip(values, 0, None))
    out = np.empty((count, real.shape[1]), np.float32)
    for start in range(0, count, 20000):
        n = min(20000, count - start)
        block = mean + rng.standard_normal((n, real.shape[1])) @ root.T
        out[start:start + n] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _gallery_setup(config: KioskConfig, identities: list[str], real: np.ndarray, size: int):  # noqa: ANN202
    """The gallery (first photo of each identity + distractors up to ``size``), the same rows as one
    contiguous float32 matrix with their owners, and the mated probes (every other photo)."""
    from kiosk.face.gallery import Gallery

    first: dict[str, int] = {}
    for row, identity in enumerate(identities):
        first.setdefault(identity, row)
    enrolled = sorted(first.values())
    probes = [row for row in range(len(identities)) if row not in set(enrolled)]
    fill = max(0, size - len(enrolled))
    owners = [identities[r] for r in enrolled] + [f"D{i // TEMPLATES_PER_EMPLOYEE:06d}" for i in range(fill)]
    matrix = np.ascontiguousarray(np.concatenate([real[enrolled], realistic_distractors(real, fill)]), np.float32)
    gallery = Gallery("bench", config.match, threads=config.face.threads)
    gallery.add_many(owners, matrix)
    return gallery, matrix, owners, probes


def run_gallery(config: KioskConfig, size: int, rounds: int, data: str | None) -> dict:
    identities, real, source = real_embeddings(_engine(config), data)
    gallery, matrix, owners, probes = _gallery_setup(config, identities, real, size)
    queries = [np.ascontiguousarray(real[p]) for p in probes] or [np.ascontiguousarray(real[0])]
    truth = [identities[p] for p in probes]
    _, build_ms, _ = timed(gallery.prepare)
    session = _exact_session(config.face.threads)
    k1 = np.array([1], np.int64)

    def einsum(q: np.ndarray) -> str:
        return owners[int(np.einsum("ij,j->i", matrix, q).argmax())]

    def ort_scan(q: np.ndarray) -> str:
        return owners[int(session.run(None, {"rows": matrix, "query": q.reshape(512, 1), "k": k1})[1].ravel()[0])]

    contenders = {"gallery": lambda q: gallery.search(q).employee_id, "exact_einsum": einsum, "exact_ort": ort_scan}
    p50: dict[str, list[float]] = {name: [] for name in contenders}
    answers: dict[str, list[str | None]] = {}
    for r in range(rounds):
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for i, q in enumerate(queries):
            names = list(contenders)
            for name in names[(r + i) % 3:] + names[:(r + i) % 3]:
                answer, ms, _ = timed(lambda f=contenders[name], v=q: f(v))
                times[name].append(ms)
                if r == 0:
                    answers.setdefault(name, []).append(answer)
        for name in contenders:
            p50[name].append(statistics.median(times[name]))
    best_exact = [min(a, b) for a, b in zip(p50["exact_einsum"], p50["exact_ort"], strict=True)]
    rank1 = {name: round(sum(a == t for a, t in zip(answers[name], truth, strict=False)) / max(1, len(truth)), 4)
             for name in contenders}
    agree = sum(a == b for a, b in zip(answers["gallery"], answers["exact_einsum"], strict=True)) / len(queries)
    return {
        "machine": machine(), "size": len(gallery), "employees": gallery.employees, "rounds": rounds,
        "probes": len(queries), "faces": source, "real_templates": len(set(identities)),
        "coarse_index": len(gallery) > config.match.exact_search_max, "threads": config.face.threads,
        "first_search_ms": round(build_ms, 1),
        "p50_ms": spread(p50["gallery"]), "exact_einsum_p50_ms": spread(p50["exact_einsum"]),
        "exact_ort_p50_ms": spread(p50["exact_ort"]),
        "speedup_vs_best_exact": ratio_spread(best_exact, p50["gallery"]),
        "rank1": rank1, "recall_at_1": round(agree, 4),
    }


@click.command("gallery")
@click.option("--size", default=100000, show_default=True, type=click.IntRange(1, 10_000_000),
              help="Templates in the gallery: one real template per identity of --data, padded with "
              "distractors drawn from a Gaussian fitted to the real embeddings (two per employee).")
@click.option("--data", metavar="DIR",
              help="Photo set DIR/<identity>/<image> whose first photo per identity is enrolled and the rest "
              "are the probes (default ../shared/faces if present, else 'wheel-samples').")
@rounds_option
@cores_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def bench_gallery(size: int, data: str | None, rounds: int, cores: int | None, as_json: bool, cfg: ConfigRef) -> None:
    """1:N search time and rank-1 vs fair float32 exact scans (same threads), on real embeddings + distractors."""
    pin_cores(cores)
    cfg.overrides += cores_overrides(cores)
    r = run_gallery(bench_config(cfg), size, rounds, data)
    if as_json:
        echo_json(r)
        return
    click.echo(machine_line(r["machine"]))
    click.echo(f"1:N search, {r['size']} templates of {r['employees']} employees ({r['real_templates']} real people "
               f"from {r['faces']}, the rest realistic distractors), {r['probes']} real probes, {r['rounds']} rounds, "
               f"{r['threads']} thread(s); per-round p50, min/median/max over rounds:")
    mode = "coarse int8 pass + exact re-rank" if r["coarse_index"] else "exact scan"
    click.echo(f"  gallery ({mode})            {fmt_spread(r['p50_ms'], ' ms', 3)}   "
               f"(building the index: {r['first_search_ms']} ms)")
    click.echo(f"  exact float32 einsum (1 thread)  {fmt_spread(r['exact_einsum_p50_ms'], ' ms', 3)}")
    click.echo(f"  exact float32 onnxruntime ({r['threads']} thr) {fmt_spread(r['exact_ort_p50_ms'], ' ms', 3)}")
    click.echo(f"  speed-up vs the faster exact scan {fmt_spread(r['speedup_vs_best_exact'], 'x', 2)}")
    rank = r["rank1"]
    click.echo(f"  rank-1: gallery {rank['gallery']:.4f}, exact {rank['exact_einsum']:.4f} "
               f"(onnxruntime {rank['exact_ort']:.4f}); gallery agrees with the exact scan on {r['recall_at_1']:.4f}")


COMMANDS = [bench_accuracy, bench_latency, bench_gallery]
