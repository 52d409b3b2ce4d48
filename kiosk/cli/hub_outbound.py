"""CLI: the outbound side of `kiosk hub ...`: webhook subscriptions and the delivery queue (outbox)."""

from __future__ import annotations

from collections.abc import Callable

import click

from kiosk.base.errors import KioskError
from kiosk.cli.sync import _db, hub_config_options
from kiosk.cli.util import echo_json
from sync.hub.config import HubConfig


@click.group("webhook")
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
    from sync.hub.outbound.webhooks import test_subscription
    with _db(hub) as db:
        sub, outcome, took_s = test_subscription(db, subscription_id, hub.outbound.timeout_s)
    if outcome.kind != "delivered":
        raise KioskError(f"{sub.url} did not accept the test event: {outcome.error}",
                         fix="Check the URL, that the receiver runs, and that it has this subscription's secret.")
    click.echo(f"{sub.url} accepted the test event in {took_s * 1000:.0f} ms")


@click.group("outbox")
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


