"""`kiosk demo`: the whole kiosk on one machine with embedded defaults, no camera, network or root."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from kiosk.cli_store import init_command
from kiosk.config import load_config
from kiosk.punches import PunchDraft
from kiosk.store import open_store

DEMO_PEOPLE = (("E001", "Wang Li"), ("E002", "Chen Jing"), ("E003", "Maria Santos"))


@click.command("demo")
@click.option("--keep", type=click.Path(file_okay=False, path_type=Path),
              help="Build the demo kiosk in this folder and keep it (default: a temp folder, removed).")
@click.pass_context
def demo_command(ctx: click.Context, keep: Path | None) -> None:
    """Run the kiosk end to end on embedded defaults and print what happened."""
    with tempfile.TemporaryDirectory(prefix="kiosk-demo-") as tmp:
        home = keep or Path(tmp) / "kiosk"
        ctx.invoke(init_command, directory=home, branch="B001", name="demo-kiosk", timezone="UTC")
        config = load_config(home / "kiosk.toml")
        with open_store(config) as store:
            for employee_id, name in DEMO_PEOPLE:
                store.roster.add(employee_id, name, cards=(f"00{employee_id[1:]}1234",), exist_ok=True)
            for employee_id, _ in DEMO_PEOPLE:
                store.punches.append(PunchDraft(employee_id, "manual", note="demo"))
            punches = list(store.punches.iter())
            report = store.punches.verify()
        click.echo("")
        click.echo(f"{'SEQ':>3}  {'EMPLOYEE':8}  {'METHOD':6}  {'TIME (UTC)':24}  CLOCK")
        for p in punches:
            click.echo(f"{p.seq:>3}  {p.employee_id:8}  {p.method:6}  {p.ts_utc:24}  {p.clock_state}")
        click.echo(f"chain: {'intact' if report.ok else report.problem} ({report.checked} punches)")
