"""The `kiosk` command: the root group, with every part's commands registered in one place.

This is the composition root: the one module that knows every command module (kiosk/cli/) and
every tool (kiosk/tools/). Parts are imported only when the root group is built, which keeps
`kiosk --help` quick.
"""

from __future__ import annotations

import click

from kiosk import __version__
from kiosk.cli import admin, enroll, hub_console, hub_outbound, hw, run, store
from kiosk.cli import sync as sync_commands
from kiosk.cli.util import KioskGroup, quiet_native_libraries
from kiosk.tools import bench, bench_deliveries, bench_face, bench_hub, bench_walkup, demo


@click.group(cls=KioskGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kiosk")
def cli() -> None:
    """Branch attendance kiosk: face, card and GPS punches in an encrypted store, synced to HR.

    Commands that work on a kiosk take --config FILE (default $KIOSK_CONFIG or
    /etc/kiosk/kiosk.toml) and --set KEY=VALUE.
    Start with `kiosk init DIR` to create a kiosk home, or `kiosk demo` to see it work.
    """


for command in (*store.COMMANDS, *enroll.COMMANDS, admin.admin_group, hw.hw, run.run_command, demo.demo_command,
                sync_commands.sync_group, sync_commands.hub_group, bench.bench):
    cli.add_command(command)
for command in (*hub_console.COMMANDS, *hub_outbound.COMMANDS):
    sync_commands.hub_group.add_command(command)
for command in (*bench_face.COMMANDS, bench_walkup.bench_walkup, bench_hub.bench_hub,
                bench_deliveries.bench_deliveries):
    bench.bench.add_command(command)


def main() -> None:
    quiet_native_libraries()
    cli(prog_name="kiosk")
