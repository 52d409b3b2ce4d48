"""`kiosk bench detector`: the detector input sizes, chosen by measurement.

The kiosk runs the detector at three sizes (``[face]``): ``idle_det_size_px`` while nobody is being
followed (it must notice a person as they appear, still some way off), ``det_size_px`` on the full
frame once someone is there, and ``track_det_size_px`` on the region around a followed face. For
each candidate size this prints how many real faces it finds in camera frames at three distances —
the photo at 0.35 of the frame height (still far off: an LFW face ~40 px wide), at half (a person
appearing, as the walk-up bench starts: ~60 px) and at 0.8 (at the kiosk: ~95 px) — and its CPU time
per look on the same frames, the sizes in turns over rounds.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import click

from kiosk.cli.util import ConfigRef, config_options, echo_json
from kiosk.tools.bench_face import bench_config
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

DISTANCES = {"far (0.35 of the frame height)": 0.35, "appearing (0.5)": 0.5, "at the kiosk (0.8)": 0.8}
DEFAULT_SIZES = "160,224,320"


def _frames(faces: Path | None, people: int, engine: Any) -> tuple[str, dict[str, list]]:  # noqa: ANN401 - FaceEngine
    from kiosk.tools.scenes import compose, default_faces_dir, identities_from_folder, identities_from_wheel
    root = faces or default_faces_dir()
    persons = identities_from_folder(root, people) if root else identities_from_wheel(engine, people)
    source = str(root) if root else "the sample photos shipped in the wheels"
    return source, {label: [compose(p.walkup, scale=scale, noise_seed=i) for i, p in enumerate(persons)]
                    for label, scale in DISTANCES.items()}


def run_detector(config: Any, sizes: list[int], faces: Path | None, people: int, rounds: int) -> dict:  # noqa: ANN401
    from kiosk.face.engine import FaceEngine
    engine = FaceEngine.from_config(config.face, config.quality)
    source, frames = _frames(faces, people, engine)
    every = [f for group in frames.values() for f in group]
    for size in sizes:  # the first look at a size builds its buffers
        engine.detect(every[0], size=size)

    def look(size: int) -> float:
        start = time.process_time()
        for frame in every:
            engine.detect(frame, size=size)
        return (time.process_time() - start) * 1000 / len(every)

    cpu = interleave({size: (lambda s=size: look(s)) for size in sizes}, rounds)
    found = {size: {label: sum(1 for f in group if engine.detect(f, size=size)) for label, group in frames.items()}
             for size in sizes}
    reference = config.face.det_size_px if config.face.det_size_px in sizes else sizes[-1]
    return {
        "machine": machine(), "faces": source, "frames_per_distance": len(every) // len(frames), "rounds": rounds,
        "threads": config.face.threads, "reference_size": reference,
        "configured": {"idle_det_size_px": config.face.idle_det_size_px, "det_size_px": config.face.det_size_px,
                       "track_det_size_px": config.face.track_det_size_px},
        "sizes": {size: {"found": found[size], "cpu_ms": spread(cpu[size]),
                         "cpu_vs_reference": ratio_spread(cpu[size], cpu[reference])} for size in sizes},
    }


def _print(r: dict) -> None:
    click.echo(machine_line(r["machine"]))
    n = r["frames_per_distance"]
    click.echo(f"detector input sizes: {n} people from {r['faces']} in 640x480 camera frames, {r['rounds']} rounds "
               f"in turns, {r['threads']} thread(s); configured {r['configured']}")
    for size, fig in r["sizes"].items():
        found = ", ".join(f"{label} {count}/{n}" for label, count in fig["found"].items())
        click.echo(f"  {size:4d} px: faces found {found}; CPU per look {fmt_spread(fig['cpu_ms'], ' ms')} = "
                   f"{fmt_spread(fig['cpu_vs_reference'], 'x', 3)} of {r['reference_size']} px")


@click.command("detector")
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True,
              help="Detector input sizes (px) to compare, comma-separated.")
@click.option("--faces", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="One folder of photos per person (default ../shared/faces if present, else the wheels' samples).")
@click.option("--people", default=200, show_default=True, type=click.IntRange(1, 100000),
              help="At most this many people (one walk-up photo each).")
@rounds_option
@cores_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def bench_detector(sizes: str, faces: Path | None, people: int, rounds: int, cores: int | None, as_json: bool,
                   cfg: ConfigRef) -> None:
    """Faces found at three distances and CPU per look, for each detector input size (in turns)."""
    from pydantic import ValidationError

    from kiosk.face.config import FaceConfig
    try:
        wanted = sorted({int(s) for s in sizes.split(",") if s.strip()})
    except ValueError:
        raise click.BadParameter(f"{sizes!r} is not a comma-separated list of sizes", param_hint="--sizes") from None
    if not wanted:
        raise click.BadParameter("give at least one size", param_hint="--sizes")
    for size in wanted:  # the [face] rule for a detector size
        try:
            FaceConfig(det_size_px=size)
        except ValidationError as exc:
            raise click.BadParameter(f"{size}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}",
                                     param_hint="--sizes") from None
    pin_cores(cores)
    cfg.overrides += cores_overrides(cores)
    result = run_detector(bench_config(cfg), wanted, faces, people, rounds)
    if as_json:
        echo_json(result)
    else:
        _print(result)
