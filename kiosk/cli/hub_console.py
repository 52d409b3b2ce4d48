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


@click.group("employee")
def hub_employee() -> None:
    """People at the hub: what is held about one (access requests), consent withdrawal."""


@hub_employee.command("report")
@click.argument("employee_id")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (the API's GET .../report).")
@hub_config_options
def hub_employee_report(employee_id: str, as_json: bool, hub: HubConfig, overrides: list[str]) -> None:
    """What the hub holds about EMPLOYEE_ID: templates per model (counts, dates, sources; never a vector),
    faces enrolled at kiosks, consents, cards, branches, punches (count, first, last). Audited."""
    from sync.hub import audit
    from sync.hub.report import person_report
    with _db(hub) as db:
        report = person_report(db, employee_id)
        with db.transaction() as tx:
            audit.record(tx, CLI_ACTOR, "employee.report", employee_id)
    if as_json:
        echo_json(report.model_dump())
        return
    for line in report_lines(report):
        click.echo(line)


def report_lines(report) -> list[str]:  # noqa: ANN001 - PersonReport
    punches = report.punches
    lines = [f"{report.employee_id} {report.name} ({'active' if report.active else 'terminated'})",
             f"branches: {', '.join(report.branches) or '-'}", f"cards: {', '.join(report.cards) or '-'}",
             f"consent to face recognition: {'on file' if report.consent_current else 'none (card-only)'}"]
    lines += [f"  {c.kind:9} {c.given_utc or '-'} text {c.text_version or '-'} ({c.language or '-'}) taken by "
              f"{c.taken_by} via {c.path}, recorded {c.recorded_utc}" for c in report.consents]
    lines.append(f"face templates: {sum(m.templates for m in report.templates)}")
    lines += [f"  model {m.model_id[:12]}: {m.templates} ({', '.join(f'{s} {n}' for s, n in m.sources.items())}), "
              f"{m.first_utc} .. {m.last_utc}" for m in report.templates]
    lines += [f"  enrolled at kiosk {d.device_id}: {d.templates}, {d.state}" for d in report.device_templates]
    lines.append(f"punches: {punches.count}" + (f", {punches.first_utc} .. {punches.last_utc} from "
                                                 f"{punches.devices} device(s)" if punches.count else ""))
    lines.append("photos kept: none (templates are made and the photos dropped)")
    return lines


@hub_employee.command("withdraw-consent")
@click.argument("employee_id")
@click.option("--taken-by", required=True, metavar="NAME", help="Who received the person's withdrawal.")
@hub_config_options
def hub_employee_withdraw(employee_id: str, taken_by: str, hub: HubConfig, overrides: list[str]) -> None:
    """The person withdrew their consent to face recognition: their templates are erased at the hub now and on
    every kiosk at its next sync; cards and punches stay (card-only)."""
    from kiosk.base.text import check_name
    from sync.hub.people import withdraw_consent
    with _db(hub) as db:
        out = withdraw_consent(db, employee_id, None, check_name(taken_by, "taken-by"), CLI_ACTOR)
    click.echo(f"{out.employee_id}: consent withdrawn; face templates erased at the hub, kiosks erase theirs on "
               "their next sync")


