"""The `kiosk` command: the root group, with every part's commands registered in one place.

This is the composition root: the one module that knows every command module (kiosk/cli/) and
every tool (kiosk/tools/). Commands are named here with their one-line summary and imported only
when one runs, so `kiosk --help`, `kiosk hub --help` and `kiosk bench --help` load click and nothing
heavier (numpy, pydantic, the store); tests/test_docs.py checks both.
"""

from __future__ import annotations

import click

from kiosk import __version__
from kiosk.base.startup import pause_gc
from kiosk.cli.util import KioskGroup, LazyGroup, no_library_plugins, quiet_native_libraries

COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("kiosk.cli.store:init_command",
             "Create a ready-to-use kiosk home in DIRECTORY: kiosk.toml, a 0600 key file, the store."),
    "config": ("kiosk.cli.store:config_group", "Check configuration files."),
    "db": ("kiosk.cli.store:db_group", "The encrypted store: create, verify, export, re-key."),
    "employee": ("kiosk.cli.store:employee_group", "Employees on this kiosk: add, list, erase."),
    "punch": ("kiosk.cli.store:punch_command",
              "Record a punch made by hand (a correction, audited): now, or for a missed time with --at."),
    "enroll": ("kiosk.cli.enroll:enroll_group", "Enrol faces: store checked face templates for employees."),
    "identify": ("kiosk.cli.enroll:identify_command",
                 "Who the kiosk thinks each PHOTO shows: employee, score, margin, accepted or not and why."),
    "admin": ("kiosk.cli.admin:admin_group", "Admin mode of the kiosk screen: its PIN."),
    "hw": ("kiosk.cli.hw:hw", "Hardware: read cards, GPS fixes and camera frames; check every configured device."),
    "run": ("kiosk.cli.run:run_command",
            "Run the kiosk daemon: camera, card reader and GPS in, punches and screen events out."),
    "demo": ("kiosk.tools.demo:demo_command",
             "Run the kiosk end to end on embedded defaults, print who punched and who was refused, and show "
             "the punches in the hub's console."),
    "sync": ("kiosk.cli.sync:sync_group", "The sync agent: register with the hub, push punches, pull the roster."),
}

BENCH_COMMANDS: dict[str, tuple[str, str]] = {
    "store": ("kiosk.tools.bench:bench_store",
              "Durable punch appends/s and CPU per punch: SQLCipher vs plain sqlite3 in interleaved rounds, the pages "
              "written per punch, and the time to open."),
    "startup": ("kiosk.tools.bench_startup:bench_startup",
                "CPU and wall time of `kiosk --help`, `config check`, start to READY, one `kiosk punch` and "
                "`db verify`, with a big store."),
    "accuracy": ("kiosk.tools.bench_face:bench_accuracy",
                 "Verification (pairs), open-set identification and the calibration of the configured engine."),
    "latency": ("kiosk.tools.bench_face:bench_latency",
                "Per-frame cost up to the decision vs plain insightface (same frames, in turns), per stage."),
    "gallery": ("kiosk.tools.bench_face:bench_gallery",
                "1:N search time and rank-1 vs fair float32 exact scans (same threads), on real embeddings + "
                "distractors."),
    "robustness": ("kiosk.tools.bench_robustness:bench_robustness",
                   "Detection, rank-1 and right/wrong accepts of the daemon's frame path under generated conditions "
                   "(small faces, blur, low light, JPEG, roll, mask, sunglasses), gated vs ungated."),
    "detector": ("kiosk.tools.bench_detector:bench_detector",
                 "Faces found at three distances and CPU per look, for each detector input size (in turns)."),
    "walkup": ("kiosk.tools.bench_walkup:bench_walkup",
               "Walk-up to durable punch (photos and real videos), idle CPU (gated vs plain, in turns), daemon RSS."),
    "field": ("kiosk.tools.bench_field:bench_field",
              "Field punch from a phone: button press to confirmed punch in headless Chromium, including the "
              "liveness clip (blink mode), place, passkey and storage; min/median/max over rounds."),
    "hub": ("kiosk.tools.bench_hub:bench_hub",
            "Hub ingest rate, offline-backlog drain time and punch-to-hub p50 latency, over real HTTP."),
    "deliveries": ("kiosk.tools.bench_deliveries:bench_deliveries",
                   "Webhook deliveries/s to a local verifying receiver, and punch -> Employee Checkin latency "
                   "(Frappe stand-in); a throwaway hub (SQLite in a temp folder, or a PostgreSQL database), no config "
                   "needed."),
}

HUB_COMMANDS: dict[str, tuple[str, str]] = {
    "init": ("kiosk.cli.sync:hub_init", "Create a working hub in DIRECTORY: hub.toml and an SQLite database."),
    "serve": ("kiosk.cli.sync:hub_serve", "Serve the v1 API (migrates the database first) until SIGTERM."),
    "migrate": ("kiosk.cli.sync:hub_migrate", "Create or upgrade the hub's tables (serve does this too)."),
    "device": ("kiosk.cli.sync:hub_device", "Kiosks: registration codes, list, revoke."),
    "token": ("kiosk.cli.sync:hub_token", "API tokens for HR's systems."),
    "verify-export": ("kiosk.cli.sync:hub_verify_export",
                      "Check an HR export (CSV, XLSX or JSON lines) row by row: each record against its hash, each "
                      "hash against its device's signature (a field phone's row: against its passkey assertion, "
                      "over the hash or the claim it signed offline), local times against the punch time."),
    "user": ("kiosk.cli.hub_console:hub_user",
             "Console accounts: HR admins, branch managers (their branches only), operations."),
    "branch": ("kiosk.cli.hub_console:hub_branch",
               "Branches: their time zones (local dates and times in exports and the console)."),
    "punches": ("kiosk.cli.hub_console:hub_punches",
                "Payroll export: employee id and name, branch, local date and time, direction, method, kind, flags."),
    "employee": ("kiosk.cli.hub_console:hub_employee",
                 "People at the hub: what is held about one (access requests), consent withdrawal."),
    "webhook": ("kiosk.cli.hub_outbound:hub_webhook",
                "Signed webhooks to HR systems (Standard Webhooks, CloudEvents bodies)."),
    "outbox": ("kiosk.cli.hub_outbound:hub_outbox",
               "The outbound queue: what is pending, parked (dead letters) or delivered; retry or skip."),
    "field": ("kiosk.cli.hub_field:hub_field",
              "Field staff punching from their phone: pairing links (a passkey per phone), sites, revocation."),
}


@click.group(cls=KioskGroup, lazy=COMMANDS,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="kiosk")
def cli() -> None:
    """Branch attendance kiosk: face, card and GPS punches in an encrypted store, synced to HR.

    Commands that work on a kiosk take --config FILE (default $KIOSK_CONFIG or
    /etc/kiosk/kiosk.toml) and --set KEY=VALUE.
    Start with `kiosk init DIR` to create a kiosk home, or `kiosk demo` to see it work.
    """


@cli.group("bench", cls=LazyGroup, lazy=BENCH_COMMANDS)
def bench() -> None:
    """Benchmarks that print numbers (each compared with the plain alternative in the same run)."""


@cli.group("hub", cls=LazyGroup, lazy=HUB_COMMANDS)
def hub() -> None:
    """The central hub: serve the API, manage devices and HR tokens."""


def main() -> None:
    pause_gc()  # until the command's own code starts (`kiosk run`: until READY), kiosk.base.startup
    quiet_native_libraries()
    no_library_plugins()
    cli(prog_name="kiosk")
