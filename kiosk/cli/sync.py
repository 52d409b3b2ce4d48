"""CLI: `kiosk sync ...` (the agent on a kiosk) and `kiosk hub ...` (the central hub)."""

from __future__ import annotations

import functools
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kiosk.base.errors import ConfigError, KioskError
from kiosk.cli.util import ConfigRef, config_options, configure_logging, echo_json, open_store
from sync.errors import HubUnreachable
from sync.hub.config import HubConfig, default_hub_config_path, load_hub_config

HUB_TOML_TEMPLATE = """\
# Hub configuration written by `kiosk hub init`. Every key is documented in
# config/hub.example.toml; unknown keys are refused.

[server]
host = "{host}"
port = {port}

[database]
# Relative paths are relative to this file's folder.
backend = "sqlite"
sqlite_path = "hub.db"
"""


# -- kiosk sync -----------------------------------------------------------------


@click.group("sync")
def sync_group() -> None:
    """The sync agent: register with the hub, push punches, pull the roster."""


def _agent(store: Any, cfg: ConfigRef) -> Any:
    from sync.agent import Agent
    return Agent(cfg.load(), store)


@sync_group.command("register")
@click.option("--hub", "hub_url", help="Hub base URL, e.g. https://hub.example.bank:8750 [default: sync.hub_url].")
@click.option("--code", required=True, help="One-time registration code from HR (`kiosk hub device add`).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def sync_register(hub_url: str | None, code: str, as_json: bool, cfg: ConfigRef) -> None:
    """Register this kiosk with the hub; the device token is stored in the encrypted store only."""
    config = cfg.load()
    hub_url = hub_url or config.sync.hub_url
    if not hub_url:
        raise KioskError("no hub URL", fix="Pass --hub URL or set sync.hub_url in the config.")
    with open_store(config) as store:
        agent = _agent(store, cfg)
        try:
            reg = agent.register(hub_url, code)
        except HubUnreachable as exc:
            # A one-off command: nothing retries it, and nothing was changed.
            raise HubUnreachable(f"registration failed: {exc.what}; nothing was changed",
                                 fix=f"Check the network and that the hub answers at {hub_url}, then run "
                                 "`kiosk sync register` again (the code stays valid until it expires).") from None
        finally:
            agent.close()
    if as_json:
        echo_json({"device_id": reg.device_id, "branch": reg.branch, "hub_url": reg.hub_url})
        return
    click.echo(f"registered with {reg.hub_url} as device {reg.device_id} (branch {reg.branch})")
    if reg.branch != config.device.branch:
        click.echo(f"note: the hub assigned branch {reg.branch}, but device.branch in the config is "
                   f"{config.device.branch}; the roster follows the hub's branch", err=True)
    click.echo(f"Next: kiosk sync run --config {cfg.path}   (or enable kiosk-sync.service)")


@sync_group.command("run")
@config_options
def sync_run(cfg: ConfigRef) -> None:
    """Run the agent until SIGTERM: push each punch within seconds, pull the roster, heartbeat."""
    from kiosk.base.hardening import forbid_core_dumps
    from kiosk.runtime.sdnotify import Notifier
    forbid_core_dumps()  # before the store's key is read
    config = cfg.load()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    notifier = Notifier()
    watchdog_s = notifier.watchdog_interval_s()
    with open_store(config) as store:
        agent = _agent(store, cfg)
        agent.refuse_clear_text(agent.hub_url(agent.state.require_registration()))

        def tick() -> None:
            # Only pet the watchdog while the scheduler's watch job is still running.
            if time.monotonic() - agent.last_tick < max(5.0, (watchdog_s or 5.0)):
                notifier.watchdog()
            notifier.status(f"backlog {agent.state.backlog()}")

        notifier.ready("sync agent running")
        agent.run(stop, on_tick=tick)
        notifier.stopping()


@sync_group.command("once")
@click.option("--retry-rejected", is_flag=True, help="Also send punches the hub rejected before once more.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def sync_once(retry_rejected: bool, as_json: bool, cfg: ConfigRef) -> None:
    """Push, pull the roster, heartbeat and purge once; exit 1 if a step failed."""
    with open_store(cfg.load()) as store:
        agent = _agent(store, cfg)
        agent.refuse_clear_text(agent.hub_url(agent.state.require_registration()))
        try:
            report = agent.once(retry_rejected=retry_rejected)
        finally:
            agent.close()
        backlog = agent.state.backlog()
    if as_json:
        echo_json({**report.to_dict(), "backlog": backlog})
    else:
        for line in once_lines(report, backlog, retry_rejected):
            click.echo(line)
    if report.errors:
        raise SystemExit(1)


def once_lines(report: Any, backlog: int, retry_rejected: bool = False) -> list[str]:  # noqa: ANN401 - OnceReport
    """One line per step of `kiosk sync once`: what it did, or that it failed and why."""
    push, roster = report.push, report.roster
    done = {
        "enrolments": f"{report.enrolments_sent} enrolment(s) of this kiosk sent",
        "push": f"{push.accepted} accepted, {push.duplicates} duplicate, {push.rejected} rejected in "
                f"{push.batches} batch(es); backlog now {backlog}",
        "retry_rejected": "sent again",
        "roster": f"{roster.upserted} updated, {roster.erased} erased, {roster.templates} template(s)",
        "heartbeat": "sent",
        "retention": f"purged {report.purged} punch(es)",
    }
    return [f"{step}: FAILED: {report.errors[step]}" if step in report.errors else f"{step}: {text}"
            for step, text in done.items() if step != "retry_rejected" or retry_rejected]


@sync_group.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@config_options
def sync_status(as_json: bool, cfg: ConfigRef) -> None:
    """Registration, backlog, last push/pull/heartbeat, last error, hub clock offset (no network)."""
    from kiosk.store.syncstate import SyncState
    with open_store(cfg.load()) as store:
        state = SyncState(store)
        status = state.status()
        rejections = state.rejections()
    if as_json:
        echo_json({**status, "rejections": rejections})
        return
    for key, value in status.items():
        shown = hub_clock_text(value) if key == "hub_clock" else value
        click.echo(f"{key:20} {shown if shown not in (None, '') else '-'}")
    for rej in rejections:
        click.echo(f"rejected seq {rej['seq']} ({rej['punch_id']}): {rej['reason']}")


def hub_clock_text(clock: dict | None) -> str | None:
    """The hub clock as a sentence: who is ahead by how much, how sure, measured when."""
    if not clock:
        return None
    offset = clock["offset_s"]
    lead = "hub ahead of this kiosk" if offset >= 0 else "hub behind this kiosk"
    return (f"{lead} by {abs(offset):.3f} s (± {clock['uncertainty_s']:.3f} s, from {clock['source']}), "
            f"measured {clock['measured_utc']}")


# -- kiosk hub (listed in the composition root, kiosk.commands, and imported when one runs) -----------


def hub_config_options(func: Callable) -> Callable:
    """--config FILE (the hub's TOML) and --set KEY=VALUE; passes ``hub: HubConfig`` and ``overrides``."""

    @click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  metavar="FILE", help="Hub config file [default: $KIOSK_HUB_CONFIG or /etc/kiosk/hub.toml].")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="Override one hub setting by dotted key path, e.g. --set server.port=9000 (repeatable).")
    @functools.wraps(func)
    def wrapper(*args: Any, config_path: Path | None, overrides: tuple[str, ...], **kwargs: Any) -> Any:
        hub = load_hub_config(config_path or default_hub_config_path(), list(overrides))
        configure_logging(hub.log.level)
        return func(*args, hub=hub, overrides=list(overrides), **kwargs)

    return wrapper


def _db(hub: HubConfig) -> Any:
    from sync.hub.db import hub_db
    return hub_db(hub.database, migrate=True)


@click.command("init")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address the hub listens on.")
@click.option("--port", default=8750, show_default=True, type=click.IntRange(0, 65535),
              help="TCP port the hub listens on (0 picks a free one).")
def hub_init(directory: Path, host: str, port: int) -> None:
    """Create a working hub in DIRECTORY: hub.toml and an SQLite database."""
    path = directory / "hub.toml"
    if path.exists():
        raise KioskError(f"{path} already exists; refusing to overwrite a hub's config",
                         fix="Choose an empty folder, or use the existing config.")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        path.write_text(HUB_TOML_TEMPLATE.format(host=host, port=port), encoding="utf-8")
    except OSError as exc:
        raise KioskError(f"cannot create the hub in {directory}: {exc.strerror}",
                         fix="Choose a folder you can write to (its parent must be a folder, not a file).") from None
    try:
        hub = load_hub_config(path)
    except ConfigError:
        path.unlink()  # a refused hub.toml would block the next `kiosk hub init` with "already exists"
        raise
    with _db(hub):
        pass
    from sync.hub.db.sealed import load_or_create_key
    load_or_create_key(hub.database.secrets_key_file)
    click.echo(f"Hub ready in {directory}:")
    click.echo(f"  config    {path}")
    click.echo(f"  database  {hub.database.sqlite_path} (SQLite)")
    click.echo(f"  hub key   {hub.database.secrets_key_file} (seals webhook secrets: back it up with the database)")
    click.echo("Next:")
    click.echo(f"  kiosk hub serve --config {path}")
    click.echo(f"  kiosk hub token create --role hr --config {path}         # for HR's systems")
    click.echo(f"  kiosk hub device add --branch B001 --config {path}       # a code for each new kiosk")
    click.echo("For PostgreSQL set database.backend = \"postgres\" and database.postgres_dsn "
               "(see config/hub.example.toml).")


@click.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), help="TCP port (overrides server.port; 0 picks a free one).")
@click.option("--host", help="Listen address (overrides server.host).")
@hub_config_options
def hub_serve(port: int | None, host: str | None, hub: HubConfig, overrides: list[str]) -> None:
    """Serve the v1 API (migrates the database first) until SIGTERM."""
    from kiosk.base.hardening import forbid_core_dumps
    from sync.hub.server import serve
    forbid_core_dumps()
    if port is not None:
        hub.server.port = port
        overrides.append(f"server.port={port}")
    if host is not None:
        hub.server.host = host
        overrides.append(f"server.host={host!r}")
    serve(hub, overrides, announce=click.echo)


@click.command("migrate")
@hub_config_options
def hub_migrate(hub: HubConfig, overrides: list[str]) -> None:
    """Create or upgrade the hub's tables (serve does this too)."""
    with _db(hub) as db:
        click.echo(f"hub database ready ({db.dialect}): {', '.join(db.applied())}")


@click.group("device")
def hub_device() -> None:
    """Kiosks: registration codes, list, revoke."""


@hub_device.command("add")
@click.option("--branch", required=True, help="Branch code the new kiosk belongs to.")
@click.option("--label", default="", help="A note kept with the code (e.g. where the kiosk goes).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"code\": ...}.")
@hub_config_options
def hub_device_add(branch: str, label: str, as_json: bool, hub: HubConfig, overrides: list[str]) -> None:
    """Create a one-time registration code for a new kiosk of BRANCH."""
    from sync.hub.devices import create_code
    with _db(hub) as db:
        code = create_code(db, branch, hub.server.registration_code_ttl_h, label)
    if as_json:
        echo_json(code)
        return
    click.echo(code["code"])
    click.echo(f"one-time code for a kiosk of branch {branch}, valid until {code['expires_utc']}. On the kiosk:\n"
               f"  kiosk sync register --hub URL --code {code['code']}", err=True)


DEVICE_LIST_HEADER = (f"{'DEVICE':18} {'BRANCH':8} {'STATE':8} {'HEARTBEAT':>10} {'BACKLOG':>7} {'PUNCHES':>8} "
                      f"{'ISSUES':>6}  {'VERSION':10} NAME")


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago" if seconds < 7200 else \
        f"{seconds / 3600:.0f}h ago"


@hub_device.command("list")
@click.option("--branch", help="Only this branch.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@hub_config_options
def hub_device_list(branch: str | None, as_json: bool, hub: HubConfig, overrides: list[str]) -> None:
    """Devices: state (online/offline by heartbeat age), backlog, punch counts and open issues."""
    from sync.hub.devices import list_devices
    with _db(hub) as db:
        found = list_devices(db, branch, offline_after_s=hub.console.offline_after_s)
    if not as_json:
        click.echo(DEVICE_LIST_HEADER)
    for dev in found:
        if as_json:
            echo_json(dev.model_dump())
            continue
        backlog = dev.heartbeat.get("backlog", "-")
        click.echo(f"{dev.device_id:18} {dev.branch:8} {dev.state:8} {_age(dev.heartbeat_age_s):>10} {backlog:>7} "
                   f"{dev.punches:>8} {dev.open_issues:>6}  {(dev.software_version or '-')[:10]:10} {dev.name}")
    click.echo(f"{len(found)} device(s)", err=True)


@hub_device.command("revoke")
@click.argument("device_id")
@hub_config_options
def hub_device_revoke(device_id: str, hub: HubConfig, overrides: list[str]) -> None:
    """Revoke DEVICE_ID's token at once; its punches stay."""
    from sync.hub.devices import revoke_device
    with _db(hub) as db:
        revoke_device(db, device_id)
    click.echo(f"revoked {device_id}; it can no longer upload or download until registered again")


@hub_device.command("keys")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the keys file here "
              "(default: standard output).")
@hub_config_options
def hub_device_keys(out: Path | None, hub: HubConfig, overrides: list[str]) -> None:
    """Every device's punch-signing public keys (with their history), as a file for
    `kiosk hub verify-export --keys FILE` away from the hub."""
    import json

    from sync.hub.devices import device_keys
    with _db(hub) as db:
        text = json.dumps(device_keys(db), indent=2, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
        return
    out.write_text(text, encoding="utf-8")
    click.echo(f"wrote the keys of {len(json.loads(text)['devices'])} device(s) to {out}", err=True)


@click.command("verify-export")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--keys", "keys_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Device keys from `kiosk hub device keys --out FILE` (default: read them from the hub database).")
@click.option("--strict", is_flag=True, help="Count unsigned rows (old devices, HR corrections) as failures too.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON line per row that is not ok.")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              metavar="FILE", help="Hub config file, to read the keys from its database when --keys is not given "
              "[default: $KIOSK_HUB_CONFIG or /etc/kiosk/hub.toml].")
def hub_verify_export(file: Path, keys_file: Path | None, strict: bool, as_json: bool,
                      config_path: Path | None) -> None:
    """Check an HR export (CSV, XLSX or JSON lines) row by row: each record against its hash, each hash
    against its device's signature (a field phone's row: against its passkey assertion, over the hash or
    the claim it signed offline), local times against the punch time. Exits 1 when a row fails."""
    from sync.hub.devices import device_keys
    from sync.hub.verify import load_keys, verify_file
    if keys_file is not None:
        keys = load_keys(keys_file)
    else:
        with _db(load_hub_config(config_path or default_hub_config_path(), [])) as db:
            keys = device_keys(db)
    verdicts = verify_file(file, keys["devices"])
    bad = [v for v in verdicts if v.status == "failed" or (strict and v.status == "unsigned")]
    for verdict in (v for v in verdicts if v.status != "ok"):
        if as_json:
            echo_json(verdict.__dict__)
        else:
            click.echo(f"row {verdict.row} (punch {verdict.punch_id or '?'}): {verdict.status.upper()}: "
                       f"{verdict.reason}")
    counts = {status: sum(v.status == status for v in verdicts) for status in ("ok", "unsigned", "failed")}
    passkey = sum(v.status == "ok" and bool(v.reason) for v in verdicts)
    click.echo(f"{len(verdicts)} row(s): {counts['ok']} verified"
               + (f" ({passkey} of them field punches, by their phone's passkey assertion)" if passkey else "")
               + f", {counts['unsigned']} unsigned, {counts['failed']} failed", err=True)
    if bad:
        raise SystemExit(1)


@click.group("token")
def hub_token() -> None:
    """API tokens for HR's systems."""


@hub_token.command("create")
@click.option("--role", type=click.Choice(["hr"]), required=True, help="What the token may do.")
@click.option("--label", default="", help="Whose token this is (kept with it).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"token\": ...}.")
@hub_config_options
def hub_token_create(role: str, label: str, as_json: bool, hub: HubConfig, overrides: list[str]) -> None:
    """Create an API token; it is printed once and stored only as a hash."""
    from sync.hub.devices import create_api_token
    with _db(hub) as db:
        token = create_api_token(db, role, label)
    if as_json:
        echo_json(token)
        return
    click.echo(token["token"])
    click.echo(f"token {token['id']} (role {role}); send it as 'Authorization: Bearer TOKEN'. "
               "It is not shown again.", err=True)


@hub_token.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@hub_config_options
def hub_token_list(as_json: bool, hub: HubConfig, overrides: list[str]) -> None:
    """API tokens (ids and roles; never the tokens)."""
    from sync.hub.devices import list_api_tokens
    with _db(hub) as db:
        for tok in list_api_tokens(db):
            if as_json:
                echo_json(tok)
            else:
                click.echo(f"{tok['id']:18} {tok['role']:4} {tok['created_utc']}  "
                           f"{'revoked ' + tok['revoked_utc'] if tok['revoked_utc'] else 'active'}  {tok['label']}")


@hub_token.command("revoke")
@click.argument("token_id")
@hub_config_options
def hub_token_revoke(token_id: str, hub: HubConfig, overrides: list[str]) -> None:
    """Revoke the API token TOKEN_ID at once."""
    from sync.hub.devices import revoke_api_token
    with _db(hub) as db:
        revoke_api_token(db, token_id)
    click.echo(f"revoked {token_id}")
