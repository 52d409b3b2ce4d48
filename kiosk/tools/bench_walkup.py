"""`kiosk bench walkup`: walk-up to durable punch latency, idle CPU, and peak memory of the real daemon.

Everything runs the real `KioskDaemon` on an `images:` camera paced like a live camera. Latency is
measured from the capture time of the first frame that shows the person (the first the daemon read,
when a busy daemon dropped some) to the moment the punch is durably committed. Idle cost is the
process's CPU time while the camera shows an empty scene (with sensor noise), side by side with the
plain alternative in the same run: the detector on every frame at full size.
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import threading
import time
from pathlib import Path

import click
import numpy as np

from kiosk.base.events import EventBus, EventKind
from kiosk.cli.store import create_home
from kiosk.cli.util import echo_json
from kiosk.config import load_config
from kiosk.store.database import open_store

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
    people = identities_from_folder(faces, people_count) if faces else identities_from_wheel(engine, people_count)
    enrolled = []
    with open_store(config) as store:
        gallery = Gallery.from_roster(store.roster, engine.model_id, config.match)
        for index, person in enumerate(people, start=1):
            if enrol_identity(store, engine, gallery, f"E{index:03d}", person):
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


def _latency(config_path: Path, people: list, walkups: int, fps: float, tmp: Path) -> list[float]:
    from kiosk.tools.scenes import write_scene
    plan: list = []
    for index in range(walkups):
        person = people[index % len(people)]
        plan += [(None, int(GAP_S * fps), "empty"), (person.walkup, int(WALKUP_S * fps), f"start{index}")]
    plan.append((None, int(GAP_S * fps), "empty"))
    camera = tmp / "walkups"
    write_scene(camera, plan)
    starts: dict[int, int] = {}  # walk-up -> capture time of its first frame the daemon read

    def seen(frame) -> None:  # noqa: ANN001 - hardware Frame
        label = frame.origin.rsplit("-", 1)[-1].removesuffix(".jpg")
        if label.startswith("start"):
            starts.setdefault(int(label.removeprefix("start")), frame.mono_ns)

    events, _, _ = _run_daemon(config_path, [f"camera.source='images:{camera}?fps={fps:g}'",
                                             "liveness.enabled=false", "punch.debounce_s=0"], None, on_frame=seen)
    # Each punch belongs to the last walk-up that began before it. A camera paced like a live one drops
    # frames when the daemon is busy: a walk-up then starts at the first of its frames the daemon read.
    latencies: dict[int, float] = {}
    for punched_ns in (t for t, e in events if e.kind is EventKind.PUNCHED):
        began = [(start_ns, walkup) for walkup, start_ns in starts.items() if start_ns < punched_ns]
        if began:
            start_ns, walkup = max(began)
            latencies.setdefault(walkup, (punched_ns - start_ns) / 1e6)
    return list(latencies.values())


def _first_blink_s(config, clip: Path) -> float | None:  # noqa: ANN001
    """When the clip first shows a blink the liveness check accepts, in clip time (offline, every frame)."""
    import cv2

    from kiosk.face.engine import FaceEngine
    from kiosk.face.landmarks import Landmarks106
    from kiosk.face.liveness import LivenessCheck, Verdict
    engine = FaceEngine.from_config(config.face, config.quality)
    landmarks, check = Landmarks106(engine), LivenessCheck(config.liveness)
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


def _liveness(config_path: Path, clip: Path) -> dict | None:
    """A blinking person walks up with liveness on: time to the punch, and when the blink came."""
    import cv2

    from kiosk.face.engine import FaceEngine
    from kiosk.face.gallery import Gallery
    from kiosk.tools.scenes import Identity, enrol_identity
    config = load_config(config_path)
    cap = cv2.VideoCapture(str(clip))
    ok, first = cap.read()
    cap.release()
    if not ok:
        return None
    engine = FaceEngine.from_config(config.face, config.quality)
    with open_store(config) as store:
        gallery = Gallery.from_roster(store.roster, engine.model_id, config.match)
        if not enrol_identity(store, engine, gallery, "V001", Identity("Blinking person", (first,), first)):
            return None
    starts: list[int] = []
    events, _, _ = _run_daemon(config_path, [f"camera.source='file:{clip}'", "liveness.enabled=true",
                                             "punch.debounce_s=0"], None,
                               on_frame=lambda f: starts.append(f.mono_ns) if not starts else None)
    punched = [t for t, e in events if e.kind is EventKind.PUNCHED and e.employee_id == "V001"]
    blink_s = _first_blink_s(config, clip)
    if not punched or not starts or blink_s is None:
        return None
    punch_s = (punched[0] - starts[0]) / 1e9
    return {"clip": clip.name, "punch_after_first_frame_s": round(punch_s, 3),
            "blink_accepted_at_s": round(blink_s, 3), "extra_after_blink_ms": round((punch_s - blink_s) * 1000, 1)}


def _daemon_rss_mb(config_path: Path, tmp: Path) -> float:
    """Peak RSS of a real `kiosk run` process (liveness on, all models loaded) over the walk-up scene."""
    import subprocess
    import sys
    camera = tmp / "walkups"
    subprocess.run([sys.executable, "-m", "kiosk", "run", "--config", str(config_path), "--exit-when-camera-ends",
                    "--set", f"camera.source='images:{camera}?fps=0'", "--set", "liveness.enabled=true",
                    "--set", "events.stdout_json=false", "--set", "log.level='WARNING'"],
                   check=True, capture_output=True, timeout=600)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _idle(config_path: Path, seconds: float, fps: float, tmp: Path, plain: bool) -> float:
    """CPU seconds per minute while nobody is in view."""
    from kiosk.tools.scenes import write_scene
    camera = tmp / "empty"
    if not camera.exists():
        write_scene(camera, [(None, 30, "empty")])
    sets = [f"camera.source='images:{camera}?fps={fps:g}&loop=1'"]
    if plain:
        sets += ["pipeline.motion_threshold=0", "pipeline.idle_interval_ms=0", "face.idle_det_size_px=320"]
    _, cpu, wall = _run_daemon(config_path, sets, seconds)
    return cpu / wall * 60


@click.command("walkup")
@click.option("--walkups", default=20, show_default=True, help="Walk-ups to time.")
@click.option("--people", "people_count", default=8, show_default=True, help="People enrolled.")
@click.option("--idle-s", default=20.0, show_default=True, help="Seconds of empty scene per idle measurement.")
@click.option("--fps", default=15.0, show_default=True, help="Camera frame rate.")
@click.option("--faces", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="One folder of photos per person (default ../shared/faces if present, else the wheels' samples).")
@click.option("--blink-clip", type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help=f"A video of a person blinking, for the liveness-on figure (default ../shared/videos/{BLINK_CLIP} "
              "if present; skipped otherwise).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def bench_walkup(walkups: int, people_count: int, idle_s: float, fps: float, faces: Path | None,
                 blink_clip: Path | None, as_json: bool) -> None:
    """Walk-up to durable punch p50/p95, idle CPU (gated vs plain), peak RSS of the real daemon."""
    from kiosk.tools.scenes import default_faces_dir
    shared = default_faces_dir()
    if blink_clip is None and shared is not None and (shared.parent / "videos" / BLINK_CLIP).is_file():
        blink_clip = shared.parent / "videos" / BLINK_CLIP
    with tempfile.TemporaryDirectory(prefix="kiosk-bench-") as tmp:
        config_path, people, source = _prepare(Path(tmp) / "kiosk", faces, people_count)
        latencies = _latency(config_path, people, walkups, fps, Path(tmp))
        daemon_rss_mb = _daemon_rss_mb(config_path, Path(tmp))
        liveness = _liveness(config_path, blink_clip) if blink_clip is not None else None
        idle = _idle(config_path, idle_s, fps, Path(tmp), plain=False)
        idle_plain = _idle(config_path, idle_s, fps, Path(tmp), plain=True)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result = {
        "walkups": walkups, "punched": len(latencies), "people": len(people), "faces": source, "fps": fps,
        "latency_ms": {"p50": _pctl(latencies, 50), "p95": _pctl(latencies, 95),
                       "max": round(max(latencies), 1) if latencies else None},
        "idle_cpu_s_per_min": round(idle, 2), "idle_core_pct": round(idle / 60 * 100, 1),
        "idle_plain_cpu_s_per_min": round(idle_plain, 2), "idle_plain_core_pct": round(idle_plain / 60 * 100, 1),
        "daemon_peak_rss_mb": round(daemon_rss_mb, 1), "bench_process_peak_rss_mb": round(rss_mb, 1),
        "liveness_on": liveness,
    }
    if as_json:
        echo_json(result)
        return
    lat = result["latency_ms"]
    click.echo(f"walk-up -> durable punch ({result['punched']}/{walkups} walk-ups, {len(people)} people from "
               f"{source}, camera {fps:g} fps, liveness off):")
    click.echo(f"  p50 {lat['p50']} ms   p95 {lat['p95']} ms   max {lat['max']} ms")
    click.echo("idle (empty scene with sensor noise):")
    click.echo(f"  kiosk (motion gate + small detector)   {result['idle_cpu_s_per_min']:6.2f} CPU s/min "
               f"= {result['idle_core_pct']:5.1f}% of one core")
    click.echo(f"  plain (320 px detector every frame)    {result['idle_plain_cpu_s_per_min']:6.2f} CPU s/min "
               f"= {result['idle_plain_core_pct']:5.1f}% of one core")
    if liveness is not None:
        click.echo(f"liveness on ({liveness['clip']}, played at its own rate): punch "
                   f"{liveness['punch_after_first_frame_s']} s after the first frame; the first accepted blink "
                   f"ends at {liveness['blink_accepted_at_s']} s of the clip, so {liveness['extra_after_blink_ms']} "
                   "ms after the blink")
    else:
        click.echo("liveness on: no blink clip (pass --blink-clip VIDEO)")
    click.echo(f"peak RSS of a `kiosk run` process (all models, liveness on): {result['daemon_peak_rss_mb']} MB "
               f"(this bench process, which also loads engines for enrolment and analysis: "
               f"{result['bench_process_peak_rss_mb']} MB)")
    if statistics.fmean(latencies or [0]) == 0:
        click.echo("warning: no walk-up was punched", err=True)
