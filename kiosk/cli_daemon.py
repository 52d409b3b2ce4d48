"""CLI: `kiosk run`, the daemon."""

from __future__ import annotations

import sys

import click

from kiosk.cliutil import ConfigRef, config_options


@click.command("run")
@click.option("--exit-when-camera-ends", is_flag=True,
              help="For file:/images: cameras: process every frame, flush, and exit 0 when the source ends.")
@config_options
def run_command(exit_when_camera_ends: bool, cfg: ConfigRef) -> None:
    """Run the kiosk daemon: camera, card reader and GPS in, punches and screen events out.

    Events (what the screen shows) are printed as JSON lines on stdout; logs go to stderr
    (the journal under systemd). SIGTERM stops it cleanly.
    """
    from kiosk.daemon import run_daemon
    sys.exit(run_daemon(cfg.load(), exit_when_camera_ends))
