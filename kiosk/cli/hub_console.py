"""CLI: the hub console's side of `kiosk hub ...`: user accounts, branch time zones, payroll exports."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from kiosk.base.errors import InvalidInput, KioskError
from kiosk.cli.sync import _db, hub_config_options
from kiosk.cli.util import echo_json
from sync.hub.config import HubConfig

CLI_ACTOR = "cli"


def _password(from_stdin: bool) -> str:
    if not from_stdin:
        return click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        return sys.stdin.readline().rstrip("\r\n")
    except UnicodeDecodeError:
        raise InvalidInput("the password on standard input is not valid UTF-8 text",
                           fix="Give the password as plain text.") from None


@click.group("user")
def hub_user() -> None:
    """Console accounts: HR admins, branch managers (their branches only), operations."""


@hub_user.command("add")
@click.argument("username")
@click.option("--role", type=click.Choice(["hr_admin", "branch_manager", "ops"]), required=True,
              help="hr_admin: everything; branch_manager: their branches' people and punches; ops: the kiosks.")
@click.option("--branch", "branches", multiple=True, metavar="CODE",
              help="A branch a branch manager sees (repeatable; required for branch_manager).")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input "
              "instead of prompting twice (for provisioning scripts).")
@hub_config_options
def hub_user_add(username: str, role: str, branches: tuple[str, ...], password_stdin: bool, hub: HubConfig,
                 overrides: list[str]) -> None:
    """Create a console account USERNAME (password at least 10 characters, stored scrypt-hashed)."""
    from sync.hub.accounts import add_user
    password = _password(password_stdin)
    with _db(hub) as db:
        user = add_user(db, username, role, password, list(branches), CLI_ACTOR)
    scope = f" for {', '.join(user['branches'])}" if user["branches"] else ""
    click.echo(f"user {username} ({role}{scope}) can now sign in at the hub's / page")


@hub_user.command("password")
@click.argument("username")
@click.option("--password-stdin", is_flag=True, help="Read the password from standard input.")
@hub_config_options
def hub_user_password(username: str, password_stdin: bool, hub: HubConfig, overrides: list[str]) -> None:
    """Set a new password for USERNAME (also unlocks the account and ends its sessions)."""
    from sync.hub.accounts import set_password
    password = _password(password_stdin)
    with _db(hub) as db:
        set_password(db, username, password, CLI_ACTOR)
    click.echo(f"new password set for {username}")


@hub_user.command("disable")
@click.argument("username")
@hub_config_options
def hub_user_disable(username: str, hub: HubConfig, overrides: list[str]) -> None:
    """Stop USERNAME from signing in; their open sessions end at once."""
    from sync.hub.accounts import disable_user
    with _db(hub) as db:
        disable_user(db, username, CLI_ACTOR)
    click.echo(f"disabled {username}")


@hub_user.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@hub_config_options
def hub_user_list(as_json: bool, hub: HubConfig, overrides: list[str]) -> None:
    """Console accounts with their role, branches and state (never passwords)."""
    from sync.hub.accounts import list_users
    with _db(hub) as db:
        users = list_users(db)
    if not as_json:
        click.echo(f"{'USER':20} {'ROLE':15} {'BRANCHES':20} {'STATE':10} LAST SIGN-IN")
    for user in users:
        if as_json:
            echo_json(user)
            continue
        state = "disabled" if user["disabled_utc"] else "locked" if user["locked_until_utc"] else "active"
        click.echo(f"{user['username']:20} {user['role']:15} {','.join(user['branches']) or '-':20} {state:10} "
                   f"{user['last_login_utc'] or '-'}")


@click.group("branch")
def hub_branch() -> None:
    """Branches: their time zones (local dates and times in exports and the console)."""


@hub_branch.command("set")
@click.argument("code")
@click.option("--timezone", required=True, help="IANA time zone, e.g. Asia/Shanghai.")
@click.option("--name", default=None, help="A display name for the branch.")
@hub_config_options
def hub_branch_set(code: str, timezone: str, name: str | None, hub: HubConfig, overrides: list[str]) -> None:
    """Set branch CODE's time zone (and name)."""
    from sync.hub.branches import set_branch
    with _db(hub) as db:
        set_branch(db, code, timezone, name, CLI_ACTOR)
    click.echo(f"branch {code}: time zone {timezone}")


@hub_branch.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
@hub_config_options
def hub_branch_list(as_json: bool, hub: HubConfig, overrides: list[str]) -> None:
    """Every branch the hub knows and its time zone (the default console.timezone when not set)."""
    from sync.hub.branches import list_branches
    with _db(hub) as db:
        found = list_branches(db, hub.console.timezone)
    if not as_json:
        click.echo(f"{'BRANCH':12} {'TIME ZONE':24} NAME")
    for branch in found:
        if as_json:
            echo_json(branch)
        else:
            zone = branch["timezone"] + ("" if branch["configured"] else " (default)")
            click.echo(f"{branch['code']:12} {zone:24} {branch['name']}")


@click.command("punches")
@click.option("--from", "start", help="First local date (2026-11-01) or ISO time.")
@click.option("--to", "end", help="Last local date (inclusive) or ISO time (exclusive).")
@click.option("--branch", help="Only this branch.")
@click.option("--employee", "employee_id", help="Only this employee id.")
@click.option("--format", "fmt", type=click.Choice(["csv", "xlsx"]), default="csv", show_default=True,
              help="csv (UTF-8) or xlsx.")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write here (xlsx needs it); "
              "default: standard output.")
@hub_config_options
def hub_punches(start: str | None, end: str | None, branch: str | None, employee_id: str | None, fmt: str,
                out: Path | None, hub: HubConfig, overrides: list[str]) -> None:
    """Payroll export: employee id and name, branch, local date and time, direction, method, kind, flags."""
    from sync.hub.export import PAYROLL_COLUMNS, PunchFilter, as_csv, as_xlsx, parse_bound, payroll
    if fmt == "xlsx" and out is None:
        raise KioskError("an XLSX export needs --out FILE", fix="Add --out punches.xlsx, or use --format csv.")
    flt = PunchFilter(start=parse_bound(start, "--from"), end=parse_bound(end, "--to"),
                      branches=[branch] if branch else None, employee_id=employee_id)
    with _db(hub) as db:
        rows = payroll(db, flt, hub.console.export_max_rows, hub.console.timezone)
    data = as_xlsx(rows, PAYROLL_COLUMNS) if fmt == "xlsx" else as_csv(rows, PAYROLL_COLUMNS).encode("utf-8")
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        try:
            out.write_bytes(data)
        except OSError as exc:
            raise KioskError(f"cannot write {out}: {exc.strerror}", fix="Choose a folder you can write to.") from None
    click.echo(f"{len(rows)} punch(es) exported", err=True)


COMMANDS = (hub_user, hub_branch, hub_punches)
"""Added to `kiosk hub` by kiosk.commands."""
