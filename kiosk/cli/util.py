"""Shared CLI plumbing: --config/--set on every command, error reporting, JSON output."""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from kiosk.base.errors import ConfigError, KioskError
from kiosk.config import KioskConfig, default_config_path, load_config

log = logging.getLogger(__name__)


class ConfigRef:
    """The --config/--set pair of a command; loads (once) when asked."""

    def __init__(self, path: Path | None, overrides: tuple[str, ...]) -> None:
        self.path = path or default_config_path()
        self.overrides = list(overrides)
        self._config: KioskConfig | None = None

    def load(self) -> KioskConfig:
        if self._config is None:
            self._config = load_config(self.path, self.overrides)
            configure_logging(self._config.log.level)
        return self._config


def config_options(func: Callable) -> Callable:
    """Give a command --config FILE and repeatable --set KEY=VALUE; passes ``cfg: ConfigRef``."""

    @click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                  default=None, metavar="FILE",
                  help="Kiosk config file [default: $KIOSK_CONFIG or /etc/kiosk/kiosk.toml].")
    @click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                  help="Override one setting by dotted key path, e.g. --set punch.debounce_s=60 (repeatable).")
    @functools.wraps(func)
    def wrapper(*args: Any, config_path: Path | None, overrides: tuple[str, ...], **kwargs: Any) -> Any:
        return func(*args, cfg=ConfigRef(config_path, overrides), **kwargs)

    return wrapper


def configure_logging(level: str = "INFO") -> None:
    """Readable logs on stderr (the journal adds its own timestamps under systemd)."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root.addHandler(handler)
    root.setLevel(level)


def echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, ensure_ascii=False, default=str))


def report_error(exc: KioskError) -> None:
    """Print what went wrong and what to do, on stderr, without a traceback."""
    click.echo(f"error: {exc.what}", err=True)
    if isinstance(exc, ConfigError):
        for line in exc.problems:
            click.echo(f"  {line}", err=True)
    if exc.fix:
        click.echo(f"  what to do: {exc.fix}", err=True)


class KioskGroup(click.Group):
    """The root group: turns typed errors into sentences and exit codes."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KioskError as exc:
            report_error(exc)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except BrokenPipeError:
            ctx.exit(0)
