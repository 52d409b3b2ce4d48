"""CLI: `kiosk hub field ...`: pair field staff's phones, revoke them, set their sites and geofence policy."""

from __future__ import annotations

import click

from kiosk.base.errors import InvalidInput
from kiosk.cli.sync import _db, hub_config_options
from kiosk.cli.util import echo_json
from sync.hub.config import HubConfig

CLI_ACTOR = "cli"


@click.group("field")
def hub_field() -> None:
    """Field staff punching from their phone: pairing links (a passkey per phone), sites, revocation."""


@hub_field.command("pair")
@click.argument("employee")
@click.option("--label", default="", help="A name for the phone, e.g. 'Li Na's iPhone'.")
@click.option("--url", "base_url", default="", metavar="ORIGIN",
              help="The hub's address as phones reach it [default: field.origin].")
@hub_config_options
def hub_field_pair(employee: str, label: str, base_url: str, hub: HubConfig, overrides: list[str]) -> None:
    """A one-time pairing link for EMPLOYEE's phone (valid field.pairing_ttl_min minutes, single use).
    Opened on the phone, it creates a passkey there: the phone then punches for EMPLOYEE at /field/."""
    from sync.hub.field.phones import create_pairing
    origin = (base_url or hub.field.origin).rstrip("/")
    if not origin:
        raise InvalidInput("the link needs the hub's address as phones reach it",
                           fix="Pass --url https://HUB or set field.origin in the hub's config.")
    with _db(hub) as db:
        made = create_pairing(db, employee, hub.field.pairing_ttl_min, CLI_ACTOR, label)
    click.echo(f"pairing link for {employee} (single use, until {made['expires_utc']}):")
    click.echo(origin + made["path"])


@hub_field.command("list")
@click.option("--employee", default=None, help="Only this employee's phones.")
@hub_config_options
def hub_field_list(employee: str | None, hub: HubConfig, overrides: list[str]) -> None:
    """Paired phones (JSON lines): device id, employee, label, when paired or revoked, punches."""
    from sync.hub.field.phones import list_phones
    with _db(hub) as db:
        for phone in list_phones(db, employee):
            echo_json(phone)


@hub_field.command("revoke")
@click.argument("device_id")
@hub_config_options
def hub_field_revoke(device_id: str, hub: HubConfig, overrides: list[str]) -> None:
    """Revoke a paired phone DEVICE_ID (fld_...): its passkey no longer punches."""
    from sync.hub.field.phones import revoke
    with _db(hub) as db:
        revoke(db, device_id, CLI_ACTOR)
    click.echo(f"revoked {device_id}")


@hub_field.command("sites")
@click.argument("employee")
@click.option("--policy", type=click.Choice(["off", "flag", "refuse"]), required=True,
              help="off: no check; flag: outside is marked; refuse: clearly outside is refused (uncertain flagged).")
@click.option("--site", "sites", multiple=True, metavar="NAME:LAT,LON,RADIUS_M",
              help="An allowed site (repeatable); replaces the employee's sites.")
@hub_config_options
def hub_field_sites(employee: str, policy: str, sites: tuple[str, ...], hub: HubConfig, overrides: list[str]) -> None:
    """Set EMPLOYEE's geofence policy and allowed sites for field punches."""
    from sync.hub.field.geofence import parse_site
    from sync.hub.field.phones import set_sites
    parsed = [parse_site(text) for text in sites]
    with _db(hub) as db:
        set_sites(db, employee, policy, parsed, CLI_ACTOR)
    click.echo(f"{employee}: policy {policy}, {len(parsed)} site(s)")


