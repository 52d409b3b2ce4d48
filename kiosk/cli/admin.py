"""CLI: `kiosk admin set-pin`, the PIN that unlocks admin mode on the kiosk screen."""

from __future__ import annotations

import sys

import click

from kiosk.base.errors import InvalidInput
from kiosk.cli.util import ConfigRef, config_options
from kiosk.store import open_store


@click.group("admin")
def admin_group() -> None:
    """Admin mode of the kiosk screen: its PIN."""


@admin_group.command("set-pin")
@click.option("--pin-stdin", is_flag=True, help="Read the PIN from the first line of standard input "
              "instead of prompting twice (for provisioning scripts).")
@config_options
def admin_set_pin(pin_stdin: bool, cfg: ConfigRef) -> None:
    """Set the admin PIN (6-64 characters) that unlocks admin mode on the screen; stored scrypt-hashed."""
    from kiosk.ui.auth import check_pin_rules, set_pin

    if pin_stdin:
        try:
            pin = sys.stdin.readline().rstrip("\r\n")
        except UnicodeDecodeError:
            raise InvalidInput("the admin PIN on standard input is not valid UTF-8 text",
                               fix="Give the PIN as plain text (digits are easiest on the touchscreen).") from None
    else:
        pin = click.prompt("New admin PIN", hide_input=True, confirmation_prompt=True)
    check_pin_rules(pin)
    with open_store(cfg.load()) as store:
        set_pin(store, pin, actor="admin")
    click.echo("admin PIN set (any lockout cleared); the screen uses it from the next login")
