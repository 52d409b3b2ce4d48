"""CLI: kiosk init, config check, db ..., employee ..., punch."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from zoneinfo import ZoneInfo

import click

from kiosk.base.errors import ConfigError, InvalidInput, KioskError, ModelError, NeedsConfirmation
from kiosk.base.timeutil import iso_utc, parse_iso
from kiosk.cli.util import ConfigRef, config_options, echo_json, open_store, table
from kiosk.config import load_config

KIOSK_TOML_TEMPLATE = """\
# Kiosk configuration written by `kiosk init`. Every key is documented in
# config/kiosk.example.toml; unknown keys are refused. Check with `kiosk config check FILE`.

[device]
name = {name}
branch = {branch}
timezone = {timezone}

[store]
# Relative paths are relative to this file's folder.
path = "kiosk.db"
key_file = "kiosk-db.key"

[ui]
# The teller's screen and admin mode, served by `kiosk run` on http://127.0.0.1:8080/.
enabled = {screen}
"""


def create_home(directory: Path, branch: str = "B001", name: str = "kiosk", timezone: str = "UTC",
                screen: bool = False) -> Path:
    """Write DIR/kiosk.toml, a fresh 0600 key file and the initialised store; returns the config path."""
    config_path = directory / "kiosk.toml"
    if config_path.exists():
        raise KioskError(f"{config_path} already exists; refusing to overwrite a kiosk's config",
                         fix="Choose an empty folder, or use the existing config.")
    tmp = directory / ".kiosk.toml.tmp"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        values = {k: json.dumps(v, ensure_ascii=False) for k, v in  # JSON strings are TOML strings
                  {"name": name, "branch": branch, "timezone": timezone, "screen": screen}.items()}
        tmp.write_text(KIOSK_TOML_TEMPLATE.format(**values), encoding="utf-8")
    except OSError as exc:
        raise KioskError(f"cannot create the kiosk home in {directory}: {exc.strerror}",
                         fix="Choose a folder you can write to (its parent must be a folder, not a file).") from None
    try:
        config = load_config(tmp)
    except ConfigError as exc:
        tmp.unlink()
        raise ConfigError("the --branch, --name or --timezone given to `kiosk init` is not valid; nothing was created",
                          problems=[line.replace(f"{tmp}: ", "") for line in exc.problems],
                          fix="Give a branch code of letters, digits, _ . - and an IANA time zone such as "
                          "Asia/Shanghai.") from None
    from kiosk.store.keys import write_key_file
    write_key_file(config.store.key_file)
    with open_store(config, create=True):
        pass
    tmp.rename(config_path)
    return config_path


def next_steps(config_path: Path, screen: bool, port: int) -> list[str]:
    """What to do after `kiosk init`, in order."""
    cfg = f"--config {config_path}"
    steps = []
    if screen:
        steps.append(f"set the admin PIN (admin mode on the screen): kiosk admin set-pin {cfg}")
    steps.append(f"enrol someone who consented (kiosk enroll consent-text): kiosk enroll add {cfg} --employee E001 "
                 "--name 'Wang Li' --photos PHOTO.jpg --consent-taken-by 'YOUR NAME'"
                 + ("   (or on the screen: Admin, then Enrol)" if screen else ""))
    if screen:
        steps.append(f"start the daemon: kiosk run {cfg}   (it serves the screen at http://127.0.0.1:{port}/)")
        steps.append("show the screen full screen: install systemd/kiosk-browser.service "
                     "(README, \"Raspberry Pi touchscreen\")")
    else:
        steps.append(f"start the daemon: kiosk run {cfg}   (no screen: events go to stdout and the log)")
    steps.append(f"connect it to the hub: kiosk sync register --hub URL --code CODE {cfg}")
    return steps


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--branch", default="B001", show_default=True, help="Branch code of this kiosk.")
@click.option("--name", default="kiosk", show_default=True, help="Name of this kiosk.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA time zone for local times shown.")
@click.option("--screen/--no-screen", default=True, show_default=True,
              help="Serve the teller's screen and admin mode (ui.enabled); --no-screen for a kiosk without a display.")
def init_command(directory: Path, branch: str, name: str, timezone: str, screen: bool) -> None:
    """Create a ready-to-use kiosk home in DIRECTORY: kiosk.toml, a 0600 key file, the store."""
    config_path = create_home(directory, branch, name, timezone, screen)
    config = load_config(config_path)
    click.echo(f"Kiosk home ready in {directory}:")
    click.echo(f"  config   {config_path}")
    click.echo(f"  key      {config.store.key_file} (mode 0600; back it up: without it the store is unreadable)")
    click.echo(f"  store    {config.store.path}")
    click.echo(f"  screen   {'on' if screen else 'off'} (ui.enabled = {'true' if screen else 'false'})")
    click.echo("Next:")
    for number, step in enumerate(next_steps(config_path, screen, config.ui.port), 1):
        click.echo(f"  {number}. {step}")


@click.group("config")
def config_group() -> None:
    """Check configuration files."""


@config_group.command("check")
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@config_options
def config_check(file: Path | None, cfg: ConfigRef) -> None:
    """Validate FILE (or --config): exit 0 when valid, else one line per problem and exit 1."""
    path = file or cfg.path
    try:
        config = load_config(path, cfg.overrides)
        problems = missing_files(config, str(path))
    except ConfigError as exc:
        if not exc.problems:
            raise
        problems = exc.problems
    if problems:
        for line in problems:
            click.echo(line)
        click.echo(f"{len(problems)} problem(s); see config/kiosk.example.toml for every key.", err=True)
        sys.exit(1)
    click.echo(f"{path}: OK")
    for line in threshold_lines(config):
        click.echo(line)


PREVIEW_ROSTERS = (10, 100, 1000)


def threshold_lines(config) -> list[str]:  # noqa: ANN001 - KioskConfig
    """The face decision threshold this config gives: for the store's roster when the store opens,
    else for a few roster sizes (kiosk.face.calibration decides it)."""
    from kiosk.face.calibration import operating_point
    from kiosk.face.pack import resolve_pack
    from kiosk.store.quickread import face_roster_size

    try:
        pack = resolve_pack(config.face)
    except KioskError as exc:
        return [f"face threshold: cannot tell ({exc})"]
    try:
        employees = face_roster_size(config, pack)
    except ModelError as exc:  # the recogniser file cannot be read
        return [f"face threshold: cannot tell ({exc})"]
    except KioskError as exc:
        try:
            points = [operating_point(pack, config.face, config.match, n) for n in PREVIEW_ROSTERS]
        except ModelError as unreadable:  # the recogniser file cannot be read either
            return [f"face threshold: cannot tell ({unreadable})"]
        lines = [f"face threshold: store not readable ({str(exc).splitlines()[0]}); by roster size:"]
        return lines + ["  " + point.describe() for point in points]
    return [operating_point(pack, config.face, config.match, employees).describe()]


def missing_files(config, source: str) -> list[str]:  # noqa: ANN001 - KioskConfig
    """Files and folders the config names that are not there (a typo is caught before the kiosk starts)."""
    wanted = [("store.path (its folder)", config.store.path.parent, "dir"),
              ("store.key_file", config.store.key_file, "file"),
              ("face.pack_dir", config.face.pack_dir, "dir"),
              ("liveness.passive_model", config.liveness.passive_model, "file")]
    problems = []
    for key, path, kind in wanted:
        if path is None:
            continue
        exists = path.is_dir() if kind == "dir" else path.is_file()
        if not exists:
            what = "folder" if kind == "dir" else "file"
            problems.append(f"{source}: {key} = {str(path)!r}: no such {what} on this machine")
    return problems


@click.group("db")
def db_group() -> None:
    """The encrypted store: create, verify, export, re-key."""


@db_group.command("keygen")
@click.option("--out", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the new key file (created with mode 0600; never overwritten).")
def db_keygen(out: Path) -> None:
    """Write a new random 256-bit database key file."""
    from kiosk.store.keys import write_key_file
    write_key_file(out)
    click.echo(f"wrote {out} (mode 0600). Point store.key_file at it, or load it as the systemd "
               "credential kiosk-db-key.")


@db_group.command("init")
@config_options
def db_init(cfg: ConfigRef) -> None:
    """Create the store (or apply pending migrations to an existing one)."""
    config = cfg.load()
    with open_store(config, create=True) as store:
        click.echo(f"store ready: {store.path} (schema {', '.join(store.stats()['schema'])})")


@db_group.command("verify")
@click.option("--read-only", "read_only", is_flag=True,
              help="Never write next to the store: check a private copy of it and its WAL (automatic when the "
              "store's folder is read-only, e.g. a seized SD card mounted read-only).")
@config_options
def db_verify(read_only: bool, cfg: ConfigRef) -> None:
    """Check the punch chain and seq continuity; exit 1 naming the first bad record."""
    from kiosk.store.connection import writable_in_place
    from kiosk.store.database import open_private_copy
    config = cfg.load()
    copied = read_only or not writable_in_place(config.store.path)
    with open_private_copy(config) if copied else open_store(config) as store:
        report = store.punches.verify()
    if copied:
        click.echo(f"read-only: checked a private copy of {config.store.path} (and its WAL); nothing was "
                   "written to the original", err=True)
    if report.ok:
        click.echo(f"OK: {report.checked} punches, chain intact, seq continuous")
        return
    click.echo(f"BAD: punch seq {report.bad_seq} (id {report.bad_id}): {report.problem}. "
               f"{report.checked} punches before it are intact.")
    sys.exit(1)


@db_group.command("export")
@click.option("--since", metavar="TS", help="Only punches at or after this ISO 8601 time (UTC if no zone).")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl", show_default=True,
              help="JSON lines (one punch per line) or CSV with a header row.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE instead of stdout.")
@config_options
def db_export(since: str | None, fmt: str, out: Path | None, cfg: ConfigRef) -> None:
    """Export punches with all their evidence fields."""
    from kiosk.store.punches import export_punches
    since_ts = None
    if since:
        try:
            since_ts = iso_utc(parse_iso(since))
        except ValueError:
            raise InvalidInput(f"--since {since!r} is not an ISO 8601 time",
                               fix="Use e.g. 2026-11-01 or 2026-11-01T08:00:00+08:00.") from None
    with open_store(cfg.load()) as store:
        if out is None:
            count = export_punches(store.punches.iter(since_ts), fmt, sys.stdout)
        else:
            try:
                fh = out.open("w", encoding="utf-8", newline="")
            except OSError as exc:
                raise InvalidInput(f"cannot write the export to {out}: {exc.strerror}",
                                   fix="Choose --out in an existing folder you can write to.") from None
            with fh:
                count = export_punches(store.punches.iter(since_ts), fmt, fh)
    click.echo(f"exported {count} punch(es)", err=True)


@db_group.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def db_stats(as_json: bool, cfg: ConfigRef) -> None:
    """Counts, sizes and schema of the store."""
    with open_store(cfg.load()) as store:
        stats = store.stats()
    if as_json:
        echo_json(stats)
        return
    for key, value in stats.items():
        click.echo(f"{key:26} {value}")


@db_group.command("rekey")
@click.option("--new-key-file", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Key file with the new key (make it with `kiosk db keygen`).")
@config_options
def db_rekey(new_key_file: Path, cfg: ConfigRef) -> None:
    """Re-encrypt the store with a new key."""
    from kiosk.store.keys import read_key_file
    config = cfg.load()
    new_key = read_key_file(new_key_file)
    with open_store(config) as store:
        store.rekey(new_key)
        store.audit("admin", "db.rekey", str(config.store.path), key_source=str(new_key_file))
    click.echo(f"store re-encrypted with {new_key_file}. Now point store.key_file (or the systemd "
               "credential kiosk-db-key) at it; the old key no longer opens the store.")


@click.group("employee")
def employee_group() -> None:
    """Employees on this kiosk: add, list, erase."""


@employee_group.command("add")
@click.argument("employee_id")
@click.option("--name", required=True, help="Name as shown on screen.")
@click.option("--card", "cards", multiple=True, help="Card number (repeatable).")
@click.option("--branch", help="Branch code (defaults to this kiosk's).")
@config_options
def employee_add(employee_id: str, name: str, cards: tuple[str, ...], branch: str | None,
                 cfg: ConfigRef) -> None:
    """Add an employee (faces are added with `kiosk enroll add`)."""
    config = cfg.load()
    with open_store(config) as store:
        emp = store.roster.add(employee_id, name, branch or config.device.branch, cards)
    click.echo(f"added {emp.id} ({emp.name}), cards: {', '.join(emp.cards) or 'none'}")


@employee_group.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Include erased (inactive) employees.")
@click.option("--search", help="Only ids or names containing this text.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@config_options
def employee_list(include_inactive: bool, search: str | None, as_json: bool, cfg: ConfigRef) -> None:
    """List employees with their cards, template count and best template quality."""
    with open_store(cfg.load()) as store:
        people = store.roster.list(include_inactive=include_inactive, search=search)
    if as_json:
        for emp in people:
            echo_json({"id": emp.id, "name": emp.name, "active": emp.active, "branch": emp.branch,
                       "cards": list(emp.cards), "templates": emp.templates,
                       "best_quality": emp.best_quality, "card_and_face": emp.card_and_face})
        return
    rows = [[emp.id, emp.name, emp.branch or "-", str(emp.templates),
             f"{emp.best_quality:.2f}" if emp.best_quality is not None else "-",
             (", ".join(emp.cards) or "-") + ("  (card + face)" if emp.card_and_face else "")
             + ("" if emp.active else "  (erased)")] for emp in people]
    for line in table(["ID", "NAME", "BRANCH", "TPL", "QUALITY", "CARDS"], rows, right=(3, 4)):
        click.echo(line)
    click.echo(f"{len(people)} employee(s)", err=True)


@employee_group.command("remove")
@click.argument("employee_id")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@config_options
def employee_remove(employee_id: str, reason: str, cfg: ConfigRef) -> None:
    """Erase a person's face templates and cards (overwritten). Their punches stay."""
    with open_store(cfg.load()) as store:
        erased = store.roster.erase(employee_id, reason=reason)
    click.echo(f"erased {employee_id}: {erased['templates']} template(s) overwritten, "
               f"{erased['cards']} card(s) removed; punches kept")


@employee_group.command("add-card")
@click.argument("employee_id")
@click.argument("card")
@config_options
def employee_add_card(employee_id: str, card: str, cfg: ConfigRef) -> None:
    """Register CARD for EMPLOYEE_ID."""
    with open_store(cfg.load()) as store:
        card = store.roster.add_card(employee_id, card)
    click.echo(f"card {card} now belongs to {employee_id}")


@employee_group.command("card-and-face")
@click.argument("employee_id")
@click.option("--off", is_flag=True, help="Let the person punch as punch.mode says again.")
@click.option("--reason", default="", help="Why (kept in the audit log).")
@config_options
def employee_card_and_face(employee_id: str, off: bool, reason: str, cfg: ConfigRef) -> None:
    """Make EMPLOYEE_ID punch with card + face whatever punch.mode says (twins, look-alikes), or --off."""
    with open_store(cfg.load()) as store:
        store.roster.set_card_and_face(employee_id, not off, reason=reason)
    click.echo(f"{employee_id} now punches " + ("as punch.mode says" if off else "with card + face"))


@employee_group.command("remove-card")
@click.argument("card")
@config_options
def employee_remove_card(card: str, cfg: ConfigRef) -> None:
    """Unregister CARD."""
    with open_store(cfg.load()) as store:
        owner = store.roster.remove_card(card)
    click.echo(f"card removed from {owner}")


@click.command("punch")
@click.option("--employee", "employee_id", required=True, help="Employee id.")
@click.option("--note", required=True, help="Why the punch is made by hand (kept with the punch).")
@click.option("--at", "at_text", metavar="TIME",
              help="The missed punch's time: HH:MM (today), 'YYYY-MM-DD HH:MM' (local) or an ISO instant "
              "[default: now].")
@click.option("--direction", type=click.Choice(["IN", "OUT", "none"], case_sensitive=False),
              help="IN (上班) or OUT (下班) [default: by the kiosk's punch.direction rule].")
@click.option("--yes", "confirmed", is_flag=True,
              help="Record it even if this person got a manual punch within punch.manual_confirm_window_s.")
@click.option("--json", "as_json", is_flag=True, help="Print the stored punch as JSON.")
@config_options
def punch_command(employee_id: str, note: str, at_text: str | None, direction: str | None, confirmed: bool,
                  as_json: bool, cfg: ConfigRef) -> None:
    """Record a punch made by hand (a correction, audited): now, or for a missed time with --at.

    It is a new record of kind 'correction' with its reason and author; nothing is ever edited.
    """
    from kiosk.base.timeutil import parse_local_time
    from kiosk.punching.record import record_correction
    from kiosk.time.trusted import clock_for
    config = cfg.load()
    tz = ZoneInfo(config.device.timezone)
    with open_store(config) as store:
        store.roster.require(employee_id)
        clock = clock_for(config, store)
        at = None
        if at_text:
            try:
                at = parse_local_time(at_text, tz, clock.now().utc)
            except ValueError as exc:
                raise InvalidInput(f"--at {exc}") from None
        chosen = None if direction is None else "" if direction.lower() == "none" else direction.upper()
        try:
            punch = record_correction(store, clock, config.punch, tz, employee_id, note=note, actor="admin",
                                      at=at, direction=chosen, confirmed=confirmed).punch
        except NeedsConfirmation as exc:
            raise NeedsConfirmation(exc.what, fix="Run it again with --yes to record another one.") from None
    if as_json:
        echo_json(punch.to_dict())
    else:
        local = parse_iso(punch.ts_utc).astimezone(tz)
        click.echo(f"correction {punch.seq} stored for {employee_id}: {local:%Y-%m-%d %H:%M} "
                   f"{punch.direction or 'no direction'} (clock {punch.clock_state}, id {punch.id})")


COMMANDS = [init_command, config_group, db_group, employee_group, punch_command]
