"""CLI: `kiosk run`, the daemon."""

from __future__ import annotations

import sys

import click

from kiosk.cli.util import ConfigRef, DaemonCommand, config_options


@click.command("run", cls=DaemonCommand)
@click.option("--exit-when-camera-ends", is_flag=True,
              help="For file:/images: cameras: process every frame, flush, and exit 0 when the source ends.")
@config_options
def run_command(exit_when_camera_ends: bool, cfg: ConfigRef) -> None:
    """Run the kiosk daemon: camera, card reader and GPS in, punches and screen events out.

    Events (what the screen shows) are printed as JSON lines on stdout; logs go to stderr
    (the journal under systemd). SIGTERM stops it cleanly.
    """
    from kiosk.runtime.daemon import run_daemon
    from kiosk.ui.server import start_ui
    config = cfg.load()
    sys.exit(run_daemon(config, exit_when_camera_ends, extensions=[start_ui] if config.ui.enabled else []))
