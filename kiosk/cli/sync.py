"""CLI: `kiosk sync ...` (the agent on a kiosk) and `kiosk hub ...` (the central hub)."""

from __future__ import annotations

import functools
import logging
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kiosk.base.errors import ConfigError, KioskError
from kiosk.cli.util import ConfigRef, config_options, configure_logging, echo_json
from kiosk.store.database import open_store
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
    config = cfg.load()
    if config.log.level != "DEBUG":
        # One line per HTTP request and per scheduler tick (4 a second) would drown the journal.
        for name in ("httpx", "apscheduler"):
            logging.getLogger(name).setLevel(logging.WARNING)
    return Agent(config, store)


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
    from kiosk.runtime.sdnotify import Notifier
    config = cfg.load()
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    notifier = Notifier()
    watchdog_s = notifier.watchdog_interval_s()
    with open_store(config) as store:
        agent = _agent(store, cfg)
        agent.state.require_registration()

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
        agent.state.require_registration()
        try:
            report = agent.once(retry_rejected=retry_rejected)
        finally:
            agent.close()
        backlog = agent.state.backlog()
    if as_json:
        echo_json({**report.to_dict(), "backlog": backlog})
    else:
        push, roster = report.push, report.roster
        click.echo(f"push: {push.accepted} accepted, {push.duplicates} duplicate, {push.rejected} rejected "
                   f"in {push.batches} batch(es); backlog now {backlog}")
        click.echo(f"roster: {roster.upserted} updated, {roster.erased} erased, {roster.templates} template(s)")
        click.echo(f"heartbeat: {'sent' if report.heartbeat else 'not sent'}; purged {report.purged} punch(es)")
        for step, error in report.errors.items():
            click.echo(f"error in {step}: {error}", err=True)
    if report.errors:
        raise SystemExit(1)


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
        click.echo(f"{key:20} {value if value not in (None, '') else '-'}")
    for rej in rejections:
        click.echo(f"rejected seq {rej['seq']} ({rej['punch_id']}): {rej['reason']}")


# -- kiosk hub ------------------------------------------------------------------


@click.group("hub")
def hub_group() -> None:
    """The central hub: serve the API, manage devices and HR tokens."""


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


@hub_group.command("init")
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
    click.echo(f"Hub ready in {directory}:")
    click.echo(f"  config    {path}")
    click.echo(f"  database  {hub.database.sqlite_path} (SQLite)")
    click.echo("Next:")
    click.echo(f"  kiosk hub serve --config {path}")
    click.echo(f"  kiosk hub token create --role hr --config {path}         # for HR's systems")
    click.echo(f"  kiosk hub device add --branch B001 --config {path}       # a code for each new kiosk")
    click.echo("For PostgreSQL set database.backend = \"postgres\" and database.postgres_dsn "
               "(see config/hub.example.toml).")


@hub_group.command("serve")
@click.option("--port", type=click.IntRange(0, 65535), help="TCP port (overrides server.port; 0 picks a free one).")
@click.option("--host", help="Listen address (overrides server.host).")
@hub_config_options
def hub_serve(port: int | None, host: str | None, hub: HubConfig, overrides: list[str]) -> None:
    """Serve the v1 API (migrates the database first) until SIGTERM."""
    from sync.hub.server import serve
    if port is not None:
        hub.server.port = port
        overrides.append(f"server.port={port}")
    if host is not None:
        hub.server.host = host
        overrides.append(f"server.host={host!r}")
    serve(hub, overrides, announce=click.echo)


@hub_group.command("migrate")
@hub_config_options
def hub_migrate(hub: HubConfig, overrides: list[str]) -> None:
    """Create or upgrade the hub's tables (serve does this too)."""
    with _db(hub) as db:
        click.echo(f"hub database ready ({db.dialect}): {', '.join(db.applied())}")


@hub_group.group("device")
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


@hub_group.group("token")
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


# -- kiosk hub webhook / outbox ----------------------------------------------------------


@hub_group.group("webhook")
def hub_webhook() -> None:
    """Signed webhooks to HR systems (Standard Webhooks, CloudEvents bodies)."""


@hub_webhook.command("add")
@click.argument("url")
@click.option("--type", "types", multiple=True, metavar="EVENT_TYPE",
              help="Event type to send (repeatable) [default: all]: attendance.punch.created, "
              "attendance.employee.first_punch, attendance.employee.enrolled, attendance.device.offline, "
              "attendance.device.online, attendance.chain.issue.")
@click.option("--description", default="", help="What receives these (kept with the subscription).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON: {\"id\": ..., \"secret\": ...}.")
@hub_config_options
def hub_webhook_add(url: str, types: tuple[str, ...], description: str, as_json: bool, hub: HubConfig,
                    overrides: list[str]) -> None:
    """Send events to URL from now on; prints the signing secret once."""
    from sync.hub.outbound.events import EVENT_TYPES
    from sync.hub.outbound.queue import add_subscription
    with _db(hub) as db:
        sub = add_subscription(db, "webhook", url, list(types) or list(EVENT_TYPES), description)
    if as_json:
        echo_json({"id": sub.id, "url": sub.url, "event_types": sub.event_types, "secret": sub.secrets[0]})
        return
    click.echo(sub.secrets[0])
    click.echo(f"webhook {sub.id} -> {sub.url} ({', '.join(sub.event_types)}). Give the receiver the secret above "
               "(it is not shown again) and check it with `kiosk hub webhook test "
               f"{sub.id}`.", err=True)


@hub_webhook.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@hub_config_options
def hub_webhook_list(as_json: bool, hub: HubConfig, overrides: list[str]) -> None:
    """Subscriptions (webhooks and connectors) with their queue counts; never their secrets."""
    from sync.hub.outbound.queue import list_subscriptions
    with _db(hub) as db:
        found = list_subscriptions(db)
    for sub in found:
        if as_json:
            echo_json(sub)
            continue
        queue = ", ".join(f"{k} {v}" for k, v in sorted(sub["queue"].items())) or "empty"
        click.echo(f"{sub['id']:16} {sub['kind']:8} {sub['url']}  [{queue}]  {len(sub['event_types'])} type(s), "
                   f"{sub['live_secrets']} live secret(s)")
    click.echo(f"{len(found)} subscription(s)", err=True)


@hub_webhook.command("remove")
@click.argument("subscription_id")
@hub_config_options
def hub_webhook_remove(subscription_id: str, hub: HubConfig, overrides: list[str]) -> None:
    """Stop sending to SUBSCRIPTION_ID; its undelivered records are skipped."""
    from sync.hub.outbound.queue import remove_subscription
    with _db(hub) as db:
        skipped = remove_subscription(db, subscription_id)
    click.echo(f"removed {subscription_id}; {skipped} undelivered record(s) skipped")


@hub_webhook.command("rotate")
@click.argument("subscription_id")
@click.option("--drop-old", is_flag=True, help="Keep only the newest secret (after the receiver has it).")
@hub_config_options
def hub_webhook_rotate(subscription_id: str, drop_old: bool, hub: HubConfig, overrides: list[str]) -> None:
    """Give SUBSCRIPTION_ID a new secret; old and new both sign until --drop-old."""
    from sync.hub.outbound.queue import rotate_secret
    with _db(hub) as db:
        fresh = rotate_secret(db, subscription_id, drop_old)
    if fresh is None:
        click.echo(f"{subscription_id} now signs with its newest secret only")
        return
    click.echo(fresh)
    click.echo("new secret above (not shown again); deliveries carry both signatures until "
               f"`kiosk hub webhook rotate {subscription_id} --drop-old`", err=True)


@hub_webhook.command("test")
@click.argument("subscription_id")
@hub_config_options
def hub_webhook_test(subscription_id: str, hub: HubConfig, overrides: list[str]) -> None:
    """Send a signed attendance.webhook.test event to SUBSCRIPTION_ID now; exit 1 if it was not accepted."""
    from sync.hub.outbound.queue import subscriptions
    from sync.hub.outbound.webhooks import send_test
    with _db(hub) as db:
        sub = subscriptions(db).get(subscription_id)
    if sub is None or sub.kind != "webhook":
        raise KioskError(f"no webhook {subscription_id}", fix="List them with `kiosk hub webhook list`.")
    outcome, took_s = send_test(sub, hub.outbound.timeout_s)
    if outcome.kind != "delivered":
        raise KioskError(f"{sub.url} did not accept the test event: {outcome.error}",
                         fix="Check the URL, that the receiver runs, and that it has this subscription's secret.")
    click.echo(f"{sub.url} accepted the test event in {took_s * 1000:.0f} ms")


@hub_group.group("outbox")
def hub_outbox() -> None:
    """The outbound queue: what is pending, parked (dead letters) or delivered; retry or skip."""


@hub_outbox.command("list")
@click.option("--status", type=click.Choice(["pending", "delivered", "parked", "skipped"]), help="Only this status.")
@click.option("--subscription", help="Only this subscription id.")
@click.option("--limit", default=100, show_default=True, type=click.IntRange(1, 100000), help="Most records shown.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@hub_config_options
def hub_outbox_list(status: str | None, subscription: str | None, limit: int, as_json: bool, hub: HubConfig,
                    overrides: list[str]) -> None:
    """Records of the outbound queue, oldest first, with attempts and last error."""
    from sync.hub.outbound.queue import list_deliveries
    with _db(hub) as db:
        rows = list_deliveries(db, status, subscription, limit)
    for row in rows:
        if as_json:
            echo_json(row)
        else:
            click.echo(f"{row['id']:>8} {row['subscription_id']:16} {row['status']:9} {row['type']:32} "
                       f"{row['order_key']:16} tries {row['attempts']:>3}  {row['last_error'][:80]}")
    click.echo(f"{len(rows)} record(s)", err=True)


def _outbox_action(action: Callable[..., int], ids: tuple[int, ...], all_parked: bool, subscription: str | None,
                   hub: HubConfig) -> int:
    with _db(hub) as db:
        return action(db, list(ids), all_parked, subscription)


@hub_outbox.command("retry")
@click.argument("record_ids", nargs=-1, type=int)
@click.option("--all-parked", is_flag=True, help="Every parked record (of --subscription, if given).")
@click.option("--subscription", help="Only records of this subscription id.")
@hub_config_options
def hub_outbox_retry(record_ids: tuple[int, ...], all_parked: bool, subscription: str | None, hub: HubConfig,
                     overrides: list[str]) -> None:
    """Send parked or skipped RECORD_IDS again, now, with a fresh count of attempts."""
    from sync.hub.outbound.queue import retry
    changed = _outbox_action(retry, record_ids, all_parked, subscription, hub)
    click.echo(f"{changed} record(s) queued again")


@hub_outbox.command("skip")
@click.argument("record_ids", nargs=-1, type=int)
@click.option("--all-parked", is_flag=True, help="Every parked record (of --subscription, if given).")
@click.option("--subscription", help="Only records of this subscription id.")
@hub_config_options
def hub_outbox_skip(record_ids: tuple[int, ...], all_parked: bool, subscription: str | None, hub: HubConfig,
                    overrides: list[str]) -> None:
    """Never send RECORD_IDS (pending or parked); the employee's later events go on."""
    from sync.hub.outbound.queue import skip
    changed = _outbox_action(skip, record_ids, all_parked, subscription, hub)
    click.echo(f"{changed} record(s) skipped")


