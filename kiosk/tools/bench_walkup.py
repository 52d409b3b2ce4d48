"""`kiosk bench walkup`: walk-up to durable punch latency, idle CPU, and peak memory of the real daemon.

Everything runs the real `KioskDaemon`. Photo walk-ups play on an `images:` camera paced like a live
camera, each face growing as a person walking up would (liveness off: a photo cannot blink; the
shipped debounce); latency runs from the capture time of the first frame that shows the person to
the moment the punch is durably committed. Real videos (../shared/videos) play with the shipped
defaults, liveness on. Idle cost is the process's CPU time while the camera shows an empty scene
(with sensor noise), in turns with the plain alternative: the detector on every frame at full size.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
import numpy as np

from kiosk.base.events import EventBus, EventKind
from kiosk.cli.store import create_home
from kiosk.cli.util import echo_json
from kiosk.config import load_config
from kiosk.store.database import open_store
from kiosk.tools.benchkit import (
    cores_option,
    cores_overrides,
    fmt_spread,
    interleave,
    machine,
    machine_line,
    pin_cores,
    ratio_spread,
    rounds_option,
    spread,
)

GAP_S = 1.0
WALKUP_S = 1.5
BLINK_CLIP = "blink_liveportrait_d13_phone_selfie.mp4"


def _pctl(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 1) if values else float("nan")


def _prepare(home: Path, faces: Path | None, people_count: int):  # noqa: ANN202
    from kiosk.face.engine import FaceEngine
    from kiosk.face.gallery import Gallery
    from kiosk.tools.scenes import default_faces_dir, enrol_identity, identities_from_folder, identities_from_wheel
    config = load_config(create_home(home))
    engine = FaceEngine.from_config(config.face, config.quality)
    faces = faces or default_faces_dir()
    # Twice as many candidates as wanted: a person whose photo the enrolment checks refuse is skipped.
    wanted = 2 * people_count
    people = identities_from_folder(faces, wanted) if faces else identities_from_wheel(engine, wanted)
    enrolled: list = []
    with open_store(config) as store:
        gallery = Gallery.from_roster(store.roster, engine.model_id, config.match)
        for index, person in enumerate(people, start=1):
            if len(enrolled) < people_count and enrol_identity(store, engine, gallery, f"E{index:03d}", person):
                enrolled.append(person)
    return home / "kiosk.toml", enrolled, str(faces or "wheel sample photos")


def _run_daemon(config_path: Path, sets: list[str], seconds: float | None, on_frame=None):  # noqa: ANN001, ANN202
    """Run the daemon on a thread; returns (events, cpu_seconds, wall_seconds) over the measured part."""
    from kiosk.runtime.daemon import KioskDaemon
    config = load_config(config_path, [*sets, "events.stdout_json=false", "log.level='WARNING'"])
    bus = EventBus(stdout_json=False)
    events: list = []
    bus.subscribe(lambda e: events.append((time.monotonic_ns(), e)))
    daemon = KioskDaemon(config, exit_when_camera_ends=seconds is None, bus=bus)
    if on_frame is not None:
        read = daemon.camera.read

        def observed_read(timeout_s=None):  # noqa: ANN001, ANN202
            frame = read(timeout_s)
            if frame is not None:
                on_frame(frame)
            return frame
        daemon.camera.read = observed_read
    thread = threading.Thread(target=daemon.run, name="bench-daemon")
    thread.start()
    cpu = wall = 0.0
    if seconds is not None:
        time.sleep(3.0)  # warm-up: sessions built, camera running
        cpu0, wall0 = resource.getrusage(resource.RUSAGE_SELF), time.monotonic()
        time.sleep(seconds)
        cpu1, wall = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - wall0
        cpu = (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime)
        daemon.stop_event.set()
    thread.join()
    return events, cpu, wall


def _outcome_times(events: list, kinds: tuple[EventKind, ...]) -> list[tuple[int, Any]]:
    return [(t, e) for t, e in events if e.kind in kinds]


def _photo_walkups(config_path: Path, people: list, walkups: int, fps: float, tmp: Path,
                   sets: list[str]) -> tuple[list[float], int]:
    """Photos of people walking up (growing from half to 0.8 of the frame height), liveness off (a photo cannot
    blink), the shipped debounce; returns (first face frame -> durable punch ms, walk-ups already punched)."""
    from kiosk.tools.scenes import write_scene
    # Nobody in view long enough for the last walk-up to end (face.track_grace_frames), so each is timed alone.
    gap = max(int(GAP_S * fps), load_config(config_path, sets).face.track_grace_frames + 2)
    plan: list = []
    for index in range(walkups):
        person = people[index % len(people)]
        plan += [(None, gap, "empty"), (person.walkup, int(WALKUP_S * fps), f"start{index}")]
    plan.append((None, gap, "empty"))
    camera = tmp / "walkups"
    firsts = {name for name in write_scene(camera, plan, approach=True) if "start" in name}
    starts: list[int] = []
    events, _, _ = _run_daemon(config_path, [*sets, f"camera.source='images:{camera}?fps={fps:g}'",
                                             "liveness.enabled=false"],
                               None, on_frame=lambda f: starts.append(f.mono_ns) if f.origin in firsts else None)
    outcomes = _outcome_times(events, (EventKind.PUNCHED, EventKind.ALREADY_PUNCHED))
    latencies = [(t - s) / 1e6 for s, (t, e) in zip(starts, outcomes, strict=False)
                 if t > s and e.kind is EventKind.PUNCHED]
    return latencies, sum(e.kind is EventKind.ALREADY_PUNCHED for _, e in outcomes)


def _clip_faces(engine, clip: Path) -> tuple[int | None, np.ndarray | None, float]:  # noqa: ANN001
    """(index of the first frame with a face, the frame with the largest face, the clip's fps)."""
    import cv2
    cap = cv2.VideoCapture(str(clip))
    fps, index, first, best, best_w = cap.get(cv2.CAP_PROP_FPS) or 30.0, 0, None, None, 0.0
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                return first, best, fps
            face = engine.choose(engine.detect(image), image.shape)
            if face is not None:
                first = index if first is None else first
                if face.width > best_w:
                    best, best_w = image, face.width
            index += 1
    finally:
        cap.release()


def _first_blink_s(config, clip: Path) -> float | None:  # noqa: ANN001
    """When the clip first shows a blink the liveness check accepts, in clip time (offline, every frame)."""
    import cv2

    from kiosk.face.engine import FaceEngine
    from kiosk.face.landmarks import Landmarks106
    from kiosk.face.liveness import LivenessCheck, Verdict
    engine = FaceEngine.from_config(config.face, config.quality)
    landmarks, check = Landmarks106(engine), LivenessCheck(config.liveness.model_copy(update={"mode": "blink"}))
    cap = cv2.VideoCapture(str(clip))
    fps, index = cap.get(cv2.CAP_PROP_FPS) or 30.0, 0
    try:
        while True:
            ok, image = cap.read()
            if not ok:
                return None
            face = engine.choose(engine.detect(image), image.shape)
            if face is not None and check.update(index / fps, landmarks(image, face.bbox), face.kps) is Verdict.LIVE:
                return index / fps
            index += 1
    finally:
        cap.release()


def _clip(config_path: Path, clip: Path, employee_id: str, sets: list[str]) -> dict:
    """A person in a real video walks up to a kiosk with the shipped defaults (liveness on, debounce):
    what happened, and how long after the first frame with a face. Liveness runs in blink mode: a
    recorded clip cannot follow the random challenge (the shipped mode), which only a live person can."""
    from kiosk.face.engine import FaceEngine
    from kiosk.face.gallery import Gallery
    from kiosk.tools.scenes import Identity, enrol_identity
    sets = [*sets, "liveness.mode='blink'"]
    config = load_config(config_path, sets)
    engine = FaceEngine.from_config(config.face, config.quality)
    first, best, fps = _clip_faces(engine, clip)
    result: dict[str, Any] = {"clip": clip.name, "outcome": "no face in the clip"}
    if first is None or best is None:
        return result
    with open_store(config) as store:
        gallery = Gallery.from_roster(store.roster, engine.model_id, config.match)
        if not enrol_identity(store, engine, gallery, employee_id, Identity(employee_id, (best,), best)):
            return {**result, "outcome": "the clip's largest face is not good enough to enrol"}
    seen: list[tuple[int, int]] = []
    events, _, _ = _run_daemon(config_path, [*sets, f"camera.source='file:{clip}'", "events.stdout_json=false"],
                               None, on_frame=lambda f: seen.append((f.seq, f.mono_ns)))
    after = [(seq, ns) for seq, ns in seen if seq >= first]
    # The capture time of the first face frame (from the pace, if the daemon dropped that frame).
    start_ns = after[0][1] - (after[0][0] - first) / fps * 1e9 if after else None
    decided = _outcome_times(events, (EventKind.PUNCHED, EventKind.NOT_LIVE, EventKind.NOT_RECOGNISED,
                                      EventKind.ALREADY_PUNCHED))
    blink_s = _first_blink_s(config, clip) if config.liveness.enabled else None
    result.update({"outcome": decided[0][1].kind.value if decided else "nothing (walk-up undecided)",
                   "first_face_s": round(first / fps, 3), "blink_accepted_at_s": blink_s and round(blink_s, 3),
                   "liveness": config.liveness.enabled})
    if decided and start_ns is not None:
        ms = (decided[0][0] - start_ns) / 1e6
        result["ms_after_first_face"] = round(ms, 1)
        if blink_s is not None:
            result["ms_after_blink"] = round(ms - (blink_s - first / fps) * 1000, 1)
    return result


def _daemon_rss_mb(config_path: Path, tmp: Path, sets: list[str]) -> float:
    """Peak RSS of a real `kiosk run` process (liveness on, all models loaded) over the walk-up scene."""
    import subprocess
    import sys
    camera = tmp / "walkups"
    args = [sys.executable, "-m", "kiosk", "run", "--config", str(config_path), "--exit-when-camera-ends",
            "--set", f"camera.source='images:{camera}?fps=0'", "--set", "liveness.enabled=true",
            "--set", "events.stdout_json=false", "--set", "log.level='WARNING'"]
    for item in sets:
        args += ["--set", item]
    subprocess.run(args, check=True, capture_output=True, timeout=600)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _idle(config_path: Path, seconds: float, fps: float, tmp: Path, plain: bool, sets: list[str]) -> float:
    """CPU seconds per minute while nobody is in view."""
    from kiosk.tools.scenes import write_scene
    camera = tmp / "empty"
    if not camera.exists():
        write_scene(camera, [(None, 30, "empty")])
    sets = [*sets, f"camera.source='images:{camera}?fps={fps:g}&loop=1'"]
    if plain:
        sets += ["pipeline.motion_threshold=0", "pipeline.idle_interval_ms=0", "face.idle_det_size_px=320",
                 "face.search_det_size_px=0"]
    _, cpu, wall = _run_daemon(config_path, sets, seconds)
    return cpu / wall * 60


def _walkup_clips(videos: Path | None, clips: tuple[Path, ...]) -> list[Path]:
    if clips:
        return list(clips)
    if videos is None:
        return []
    return sorted(videos.glob("walkup_*.mp4")) + [p for p in [videos / BLINK_CLIP] if p.is_file()]


@click.command("walkup")
@click.option("--walkups", default=20, show_default=True, help="Photo walk-ups to time.")
@click.option("--people", "people_count", default=20, show_default=True,
              help="People enrolled (with the shipped debounce a person walking up again within it is "
              "'already punched', not timed).")
@click.option("--idle-s", default=10.0, show_default=True, help="Seconds of empty scene per idle measurement.")
@rounds_option
@click.option("--fps", default=15.0, show_default=True, help="Camera frame rate.")
@click.option("--faces", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="One folder of photos per person (default ../shared/faces if present, else the wheels' samples).")
@click.option("--clip", "clips", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A video of a person walking up, played with the shipped defaults (repeatable; default the "
              f"walkup_*.mp4 clips and {BLINK_CLIP} in ../shared/videos when present).")
@click.option("--no-clips", is_flag=True, help="Skip the video walk-ups.")
@cores_option
@click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a setting of the benchmarked kiosk, e.g. --set match.strong_decision=false (repeatable).")
@click.option("--against", multiple=True, metavar="KEY=VALUE",
              help="Also time the photo walk-ups with this setting changed, in turns with the settings above, "
              "--rounds times each (debounce 0, so the same people punch every round); repeatable.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_walkup(walkups: int, people_count: int, idle_s: float, rounds: int, fps: float, faces: Path | None,
                 clips: tuple[Path, ...], no_clips: bool, cores: int | None, overrides: tuple[str, ...],
                 against: tuple[str, ...], as_json: bool) -> None:
    """Walk-up to durable punch (photos and real videos), idle CPU (gated vs plain, in turns), daemon RSS."""
    from kiosk.tools.scenes import default_videos_dir
    pin_cores(cores)
    sets = [*cores_overrides(cores), *overrides]
    videos = [] if no_clips else _walkup_clips(default_videos_dir(), clips)
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as tmp:
        config_path, people, source = _prepare(Path(tmp) / "kiosk", faces, people_count)
        latencies, already = _photo_walkups(config_path, people, walkups, fps, Path(tmp), sets)
        compared = _against(config_path, people, walkups, fps, Path(tmp), sets, list(against), rounds)
        daemon_rss_mb = _daemon_rss_mb(config_path, Path(tmp), sets)
        clip_results = [_clip(config_path, clip, f"V{i:03d}", sets) for i, clip in enumerate(videos, start=1)]
        idle = interleave({"kiosk": lambda: _idle(config_path, idle_s, fps, Path(tmp), False, sets),
                           "plain": lambda: _idle(config_path, idle_s, fps, Path(tmp), True, sets)}, rounds)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    idle_k, idle_p = statistics.median(idle["kiosk"]), statistics.median(idle["plain"])
    result = {
        "machine": machine(), "cores": cores, "overrides": list(overrides), "walkups": walkups,
        "punched": len(latencies),
        "already_punched": already, "people": len(people), "faces": source, "fps": fps,
        "latency_ms": {"p50": _pctl(latencies, 50), "p95": _pctl(latencies, 95),
                       "min": round(min(latencies), 1) if latencies else None,
                       "max": round(max(latencies), 1) if latencies else None},
        "idle_cpu_s_per_min": round(idle_k, 2), "idle_core_pct": round(idle_k / 60 * 100, 1),
        "idle_plain_cpu_s_per_min": round(idle_p, 2), "idle_plain_core_pct": round(idle_p / 60 * 100, 1),
        "idle_rounds": rounds, "idle_cpu_s_per_min_spread": spread(idle["kiosk"], 2),
        "idle_plain_cpu_s_per_min_spread": spread(idle["plain"], 2),
        "daemon_peak_rss_mb": round(daemon_rss_mb, 1), "bench_process_peak_rss_mb": round(rss_mb, 1),
        "clips": clip_results, "against": compared,
    }
    if as_json:
        echo_json(result)
    else:
        _print_walkup(result)


def _against(config_path: Path, people: list, walkups: int, fps: float, tmp: Path, sets: list[str],
             against: list[str], rounds: int) -> dict | None:
    """Per-round p50 of the photo walk-ups with the settings and with ``against``, run in turns."""
    if not against:
        return None
    base = [*sets, "punch.debounce_s=0"]
    runs = interleave({"settings": lambda: _photo_walkups(config_path, people, walkups, fps, tmp, base)[0],
                       "against": lambda: _photo_walkups(config_path, people, walkups, fps, tmp, [*base, *against])[0]},
                      rounds)
    p50 = {name: [_pctl(lat, 50) for lat in values] for name, values in runs.items()}
    return {"overrides": against, "rounds": rounds, "punched": {k: [len(v) for v in vs] for k, vs in runs.items()},
            "settings_p50_ms": spread(p50["settings"], 1), "against_p50_ms": spread(p50["against"], 1),
            "ratio": ratio_spread(p50["settings"], p50["against"])}


def _print_walkup(r: dict) -> None:
    click.echo(machine_line(r["machine"]))
    lat = r["latency_ms"]
    click.echo(f"photo walk-ups -> durable punch ({r['punched']}/{r['walkups']} punched, {r['already_punched']} "
               f"already punched within the debounce; {r['people']} people from {r['faces']}; photos growing "
               f"from half to 0.8 of the frame height as a person walks up; camera {r['fps']:g} fps; "
               f"liveness off: a photo cannot blink; {r['cores'] or 'all'} core(s)):")
    click.echo(f"  first face frame -> durable punch: p50 {lat['p50']} ms   p95 {lat['p95']} ms   "
               f"min {lat['min']} ms   max {lat['max']} ms")
    for c in r["clips"]:
        liveness = "on, blink mode: a recording cannot follow a challenge" if c.get("liveness") else "off"
        line = f"video {c['clip']} (shipped defaults, liveness {liveness}): {c['outcome']}"
        if "ms_after_first_face" in c:
            line += f" {c['ms_after_first_face']} ms after the first face frame (at {c['first_face_s']} s)"
        if c.get("blink_accepted_at_s") is not None:
            line += f"; first accepted blink at {c['blink_accepted_at_s']} s"
            if "ms_after_blink" in c:
                line += f", so {c['ms_after_blink']} ms after the blink"
        click.echo(line)
    click.echo(f"idle (empty scene with sensor noise), {r['idle_rounds']} rounds in turns, CPU s per minute:")
    click.echo(f"  kiosk (motion gate + small detector)  {fmt_spread(r['idle_cpu_s_per_min_spread'])} "
               f"= {r['idle_core_pct']:.1f}% of one core")
    click.echo(f"  plain (320 px detector every frame)   {fmt_spread(r['idle_plain_cpu_s_per_min_spread'])} "
               f"= {r['idle_plain_core_pct']:.1f}% of one core")
    click.echo(f"peak RSS of a `kiosk run` process (all models, liveness on): {r['daemon_peak_rss_mb']} MB "
               f"(this bench process: {r['bench_process_peak_rss_mb']} MB)")
    a = r["against"]
    if a:
        click.echo(f"photo walk-ups in turns, {a['rounds']} rounds, debounce 0, per-round p50 (punched per round: "
                   f"{a['punched']['settings']} vs {a['punched']['against']}):")
        click.echo(f"  these settings                 {fmt_spread(a['settings_p50_ms'], ' ms', 1)}")
        click.echo(f"  with {' '.join(a['overrides'])}")
        click.echo(f"                                 {fmt_spread(a['against_p50_ms'], ' ms', 1)}")
        click.echo(f"  ratio                          {fmt_spread(a['ratio'], 'x', 3)}")
    if not r["punched"]:
        click.echo("warning: no walk-up was punched", err=True)
