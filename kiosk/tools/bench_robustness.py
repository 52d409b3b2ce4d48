"""`kiosk bench robustness`: the daemon's frame path (detect -> quality -> embed -> decide) under capture
conditions made from a photo set (kiosk.face.conditions), with what the quality gate costs and saves.

Enrolment is the photo path (``photo_face``, as `kiosk enroll add` does); every probe photo is put in a
640x480 frame under each condition and handed to a fresh walk-up of ``FrameProcessor`` (the daemon's
per-frame loop, kiosk.face.walkup) with the gallery at the operating threshold the kiosk would run at. A
person standing still gives the same frame again and again, and the vote counts only accepted frames, so a
walk-up's decision is that frame's: accepted as the person it matched, or not recognised. A frame the gate
refuses is also embedded and matched here (what the kiosk does not do) to show what each refusal costs
(right answers lost) and saves (wrong ones avoided); ``refusals`` checks that each reason, in each condition,
costs no right answer or fewer than the wrong ones it saves. A frame the gate faults but the walk-up still
tries (quality.worth_trying) and accepts is counted under ``tried``, not refused.
"""

from __future__ import annotations

import logging
from pathlib import Path

import click

from kiosk.cli.util import ConfigRef, config_options, echo_json
from kiosk.config import KioskConfig
from kiosk.tools.bench_face import bench_config

log = logging.getLogger(__name__)


def _tally() -> dict:
    return {"probes": 0, "mated": 0, "strangers": 0, "detected": 0, "rank1": 0, "accepted_right": 0,
            "accepted_wrong": 0, "refused": {}, "tried": {}, "ungated": {"accepted_right": 0, "accepted_wrong": 0},
            "by_reason": {}, "stranger_max_score": None}


def _count(tally: dict, identity: str | None, result, ungated) -> None:  # noqa: ANN001 - FrameResult, Match
    """Add one probe frame's outcome: ``result`` from the frame path, ``ungated`` the match of its face
    whether or not the gate passed it (None when no face was found)."""
    from kiosk.face.walkup import FrameState

    tally["probes"] += 1
    tally["mated" if identity is not None else "strangers"] += 1
    if result.face is None:
        return
    tally["detected"] += 1
    right = ungated.accepted and identity is not None and ungated.employee_id == identity
    wrong = ungated.accepted and not right
    tally["rank1"] += identity is not None and ungated.employee_id == identity
    if identity is None and ungated.employee_id is not None:
        tally["stranger_max_score"] = round(max(ungated.score, tally["stranger_max_score"] or -1.0), 4)
    tally["ungated"]["accepted_right"] += right
    tally["ungated"]["accepted_wrong"] += wrong
    if result.state is FrameState.ADJUST:
        for reason in result.quality.reasons:
            tally["refused"][reason] = tally["refused"].get(reason, 0) + 1
            cost = tally["by_reason"].setdefault(reason, {"refused": 0, "right_lost": 0, "wrong_saved": 0})
            cost["refused"] += 1
            cost["right_lost"] += right
            cost["wrong_saved"] += wrong
        return
    if result.quality is not None:
        for reason in result.quality.reasons:  # faulted, tried anyway and accepted
            tally["tried"][reason] = tally["tried"].get(reason, 0) + 1
    tally["accepted_right"] += right
    tally["accepted_wrong"] += wrong


def _rates(tally: dict) -> dict:
    """Counts -> the reported figures: detected over all probes, rank-1 and accepted_right over mated
    probes (rates); accepted_wrong (anyone taken for someone else, or a stranger accepted) and refusals
    as counts of frames; stranger_max_score: the best score any stranger reached (how close a wrong
    accept came)."""
    mated, probes = max(1, tally["mated"]), max(1, tally["probes"])
    out = dict(tally)
    out["detected"] = round(tally["detected"] / probes, 4)
    out["rank1"] = round(tally["rank1"] / mated, 4)
    out["accepted_right"] = round(tally["accepted_right"] / mated, 4)
    out["ungated"] = {"accepted_right": round(tally["ungated"]["accepted_right"] / mated, 4),
                      "accepted_wrong": tally["ungated"]["accepted_wrong"]}
    return out


def refusals(conditions: dict) -> dict:
    """The gate's criterion over every condition and reason: a reason's refusals pay when they cost no right
    answer, or fewer right answers than the wrong ones they save (from the gated and ungated decision of the
    same frames). ``failing`` lists each (condition, reason) where they do not."""
    failing = [{"condition": name, "reason": reason, **cost} for name, c in conditions.items()
               for reason, cost in c["by_reason"].items()
               if cost["right_lost"] and cost["right_lost"] >= cost["wrong_saved"]]
    return {"holds": not failing, "failing": failing}


def run_robustness(config: KioskConfig, data: str, enroll_k: int, names: list[str]) -> dict:
    """Every probe of ``data`` under every condition in ``names`` through the daemon's frame path."""
    from kiosk.face import evaluation as ev
    from kiosk.face.calibration import at_point, operating_point
    from kiosk.face.conditions import CONDITIONS
    from kiosk.face.engine import FaceEngine
    from kiosk.face.gallery import Gallery
    from kiosk.face.walkup import FrameProcessor

    engine = FaceEngine.from_config(config.face, config.quality)
    items = ev.wheel_samples(engine) if data == ev.WHEEL_SAMPLES else ev.photo_set(Path(data))
    enrolled, mated, strangers = ev.split_probes(items, enroll_k)
    loaders = {item.path: item.load for item in items}
    vectors = ev.embed_labelled(engine, [i for i in items if (i.identity, i.path) in set(enrolled)])
    kept = [(identity, vectors[path]) for identity, path in enrolled if vectors[path] is not None]
    point = operating_point(engine.pack, config.face, config.match, len({i for i, _ in kept}))
    gallery = Gallery(engine.model_id, at_point(config.match, point), threads=config.face.threads)
    for identity, vector in kept:
        gallery.add(identity, vector)
    processor = FrameProcessor(engine, gallery, gallery.cfg)
    tallies = {name: _tally() for name in names}
    no_face = []
    for index, (identity, path) in enumerate(mated + strangers):
        image = loaders[path]()
        face = engine.photo_face(image, policy="center")[0]
        if face is None:
            no_face.append(path)
            continue
        truth = identity if (identity, path) in mated else None
        for name in names:
            frame = CONDITIONS[name](image, face, index)
            processor.reset()
            result = processor.process(frame)
            ungated = None
            if result.face is not None:
                ungated = result.match or gallery.search(engine.embed(frame, result.face))
            _count(tallies[name], truth, result, ungated)
    return {"model_id": engine.model_id, "data": data, "images": len(items), "enroll_k": enroll_k,
            "enrolled": gallery.employees, "threshold": gallery.cfg.threshold, "margin": gallery.cfg.margin,
            "probe_photos_without_face": sorted(no_face),
            "conditions": {name: _rates(t) for name, t in tallies.items()},
            "refusals": refusals(tallies)}


def _refused_text(refused: dict) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(refused.items(), key=lambda kv: -kv[1])) or "-"


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _print(r: dict) -> None:
    from kiosk.face.conditions import CONDITION_TEXT

    click.echo(f"data {r['data']}: {r['images']} images, {r['enrolled']} people enrolled ({r['enroll_k']} photo(s) "
               f"each); threshold {r['threshold']:.3f}, margin {r['margin']} (model {r['model_id'][:12]})")
    if r["probe_photos_without_face"]:
        click.echo(f"  {len(r['probe_photos_without_face'])} probe photo(s) without a face left out: "
                   + ", ".join(r["probe_photos_without_face"]))
    first = next(iter(r["conditions"].values()))
    click.echo(f"each probe as one walk-up through the daemon's frame path: {first['mated']} of enrolled people, "
               f"{first['strangers']} of strangers. detected: of all probes; rank-1 and right: of enrolled people's; "
               "wrong: frames accepted as the wrong person or a stranger accepted (count); ungated: had the quality "
               "gate let every face through; stranger max: the best score a stranger reached")
    click.echo(f"  {'condition':11} {'detected':>8} {'rank-1':>7} {'right':>7} {'wrong':>5}   "
               f"{'ungated right/wrong':>19} {'stranger max':>12}   refused by the gate (frames)")
    for name, c in r["conditions"].items():
        u = c["ungated"]
        click.echo(f"  {name:11} {c['detected']:8.3f} {c['rank1']:7.3f} {c['accepted_right']:7.3f} "
                   f"{c['accepted_wrong']:5d}   {u['accepted_right']:12.3f} / {u['accepted_wrong']:<4d} "
                   f"{_score(c['stranger_max_score']):>12}   {_refused_text(c['refused'])}")
    click.echo("what each refusal cost (right answers lost) and saved (wrong answers avoided), frames:")
    if not any(c["by_reason"] for c in r["conditions"].values()):
        click.echo("  no frame was refused")
    for name, c in r["conditions"].items():
        for reason, cost in c["by_reason"].items():
            click.echo(f"  {name:11} {reason:11} refused {cost['refused']:4d}: right lost {cost['right_lost']:4d}, "
                       f"wrong saved {cost['wrong_saved']:3d}")
    tried = [f"{name} {_refused_text(c['tried'])}" for name, c in r["conditions"].items() if c["tried"]]
    click.echo("faulted by the gate but tried and accepted (frames): " + ("; ".join(tried) or "none"))
    failing = [f"{f['condition']} {f['reason']} (lost {f['right_lost']}, saved {f['wrong_saved']})"
               for f in r["refusals"]["failing"]]
    click.echo("every refusal costs no right answer, or fewer than the wrong ones it saves: "
               + ("NO: " + ", ".join(failing) if failing else "yes"))
    click.echo("conditions: " + "; ".join(f"{name} = {CONDITION_TEXT[name]}" for name in r["conditions"]))


def _condition_names() -> list[str]:
    from kiosk.face.conditions import CONDITIONS
    return list(CONDITIONS)


@click.command("robustness")
@click.option("--data", required=True, metavar="DIR",
              help="Photo set: DIR/<identity>/<image> (folders starting with _ are ignored), or 'wheel-samples'. "
              "Even-numbered identities are enrolled with their first --enroll-k photos and probed with the rest; "
              "the others are strangers (never enrolled).")
@click.option("--enroll-k", default=1, show_default=True, type=click.IntRange(1, 100),
              help="Photos enrolled per enrolled identity.")
@click.option("--condition", "conditions", multiple=True, metavar="NAME",
              help="Run only this condition (repeatable): clean, eyes_40px, eyes_30px, eyes_20px, blur_3, blur_6, "
              "blur_12, dim_30, jpeg_20, roll_+30, roll_-30, mask, sunglasses. Default: all.")
@click.option("--json", "as_json", is_flag=True,
              help='Print JSON: {"conditions": {NAME: {"probes", "detected", "rank1", "accepted_right", '
              '"accepted_wrong", "refused": {REASON: n}, "tried": {REASON: n}, "ungated", "by_reason", '
              '"stranger_max_score"}}, "refusals": {"holds", "failing"}, ...}.')
@config_options
def bench_robustness(data: str, enroll_k: int, conditions: tuple[str, ...], as_json: bool, cfg: ConfigRef) -> None:
    """Detection, rank-1 and right/wrong accepts of the daemon's frame path under generated conditions
    (small faces, blur, low light, JPEG, roll, mask, sunglasses), gated vs ungated."""
    known = _condition_names()
    unknown = [c for c in conditions if c not in known]
    if unknown:
        raise click.BadParameter(f"{', '.join(unknown)}: not a condition; choose from {', '.join(known)}",
                                 param_hint="--condition")
    names = [c for c in known if c in conditions] if conditions else known
    result = run_robustness(bench_config(cfg), data, enroll_k, names)
    if as_json:
        echo_json(result)
    else:
        _print(result)


COMMANDS = [bench_robustness]
