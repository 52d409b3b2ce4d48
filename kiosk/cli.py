"""The `kiosk` command: one entry point, subcommands registered from each part of the system."""

from __future__ import annotations

import click

from kiosk import __version__
from kiosk.cliutil import KioskGroup


@click.group(cls=KioskGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kiosk")
def cli() -> None:
    """Branch attendance kiosk: face, card and GPS punches in an encrypted store, synced to HR.

    Commands that work on a kiosk take --config FILE (default $KIOSK_CONFIG or
    /etc/kiosk/kiosk.toml) and --set KEY=VALUE.
    Start with `kiosk init DIR` to create a kiosk home, or `kiosk demo` to see it work.
    """


def _register() -> None:
    from kiosk import cli_store
    from kiosk.bench import bench

    for command in cli_store.COMMANDS:
        cli.add_command(command)
    cli.add_command(bench)
    from kiosk.cli_face import register as register_face
    register_face(cli, bench)
    from kiosk.cli_enroll_extra import register as register_enroll_extra  # after cli_face: extends `enroll`
    register_enroll_extra(cli)
    from hardware.cli import hw
    cli.add_command(hw)
    from kiosk.demo import demo_command
    cli.add_command(demo_command)
    from kiosk.cli_daemon import run_command
    cli.add_command(run_command)
    from kiosk.bench_daemon import bench_walkup
    bench.add_command(bench_walkup)
    from sync.cli import hub_group, sync_group
    cli.add_command(sync_group)
    cli.add_command(hub_group)
    from sync.bench import bench_hub
    bench.add_command(bench_hub)


_register()


def main() -> None:
    cli(prog_name="kiosk")
