"""Shared CLI plumbing: --config/--set on every command, error reporting, JSON output, lazy command groups.

Importing this module must stay cheap (click only): `kiosk --help` loads it and nothing heavier.
"""

from __future__ import annotations

import functools
import importlib
import json
import logging
import os
import shutil
import sys
import types
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from kiosk.base.errors import ConfigError, KioskError
from kiosk.base.startup import resume_gc

if TYPE_CHECKING:
    from kiosk.config import KioskConfig
    from kiosk.store.database import Store

log = logging.getLogger(__name__)


class ConfigRef:
    """The --config/--set pair of a command; loads (once) when asked."""

    def __init__(self, path: Path | None, overrides: tuple[str, ...]) -> None:
        from kiosk.config import default_config_path
        self.path = path or default_config_path()
        self.overrides = list(overrides)
        self._config: KioskConfig | None = None

    def load(self) -> KioskConfig:
        from kiosk.config import load_config
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


# Libraries that log every request or scheduler tick at INFO: quiet unless the kiosk logs at DEBUG.
CHATTY_LIBRARIES = ("httpx", "httpcore", "apscheduler")
# Library lines that are routine here, not warnings: with coalescing jobs a tick that finds the last
# one still running (a slow disk, a loaded CPU) is simply skipped.
ROUTINE = ("maximum number of running instances reached", "was missed by")


class RoutineToDebug(logging.Filter):
    """Turns a library's routine WARNING lines (ROUTINE) into DEBUG ones, shown only when debugging."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and any(text in str(record.msg) for text in ROUTINE):
            record.levelno, record.levelname = logging.DEBUG, "DEBUG"
            return logging.getLogger().isEnabledFor(logging.DEBUG)
        return True


def open_store(config: KioskConfig, create: bool = False) -> Store:
    """The kiosk's store (kiosk.store.database.open_store), imported only when a command opens it: the
    store pulls in SQLCipher and the record and signing code, which `kiosk --help` and `kiosk hub ...` do not
    need."""
    from kiosk.store.database import open_store as open_kiosk_store
    return open_kiosk_store(config, create)


def configure_logging(level: str = "INFO") -> None:
    """Readable logs on stderr (the journal adds its own timestamps under systemd), with the libraries'
    chatter kept at the level it deserves."""
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(RoutineToDebug())
        root.addHandler(handler)
    root.setLevel(level)
    for name in CHATTY_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET if level == "DEBUG" else logging.WARNING)


PYDANTIC_PLUGINS_OFF = ("__all__", "1", "true")  # the PYDANTIC_DISABLE_PLUGINS values that turn every plugin off
PYDANTIC_PLUGIN_LOADER = "pydantic.plugin._loader"


def no_library_plugins() -> None:
    """Pydantic loads any plugin an installed package declares (found by scanning every installed package's
    metadata, ~25 ms of CPU per command); the kiosk's config validation must not be altered by whatever
    is installed on the machine. Set
    PYDANTIC_DISABLE_PLUGINS to a plugin's name list in the environment to choose otherwise.

    With every plugin off, pydantic's plugin loader still imports importlib.metadata (and with it email,
    zipfile, csv...: ~0.02 CPU-s, a tenth of `kiosk config check`) only to return no plugins. Must run before
    pydantic is imported: ``_PydanticPluginsOff`` stands in for that loader and gives the same answer while
    the variable turns every plugin off; for anything else (the variable changed, a name it does not
    have) it loads pydantic's own loader and hands over to it."""
    os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
    if PYDANTIC_PLUGIN_LOADER not in sys.modules:
        sys.modules[PYDANTIC_PLUGIN_LOADER] = _PydanticPluginsOff(PYDANTIC_PLUGIN_LOADER)


class _PydanticPluginsOff(types.ModuleType):
    """Stands in for pydantic.plugin._loader while PYDANTIC_DISABLE_PLUGINS turns every plugin off (see
    no_library_plugins)."""

    def get_plugins(self) -> tuple:
        if os.environ.get("PYDANTIC_DISABLE_PLUGINS") in PYDANTIC_PLUGINS_OFF:
            return ()  # what pydantic's own get_plugins returns for these values
        return self._hand_over().get_plugins()

    def __getattr__(self, name: str) -> Any:  # noqa: ANN401 - whatever pydantic's loader has
        if name.startswith("__") and name.endswith("__"):
            raise AttributeError(name)  # the import system asks for __path__ and the like: a plain module's answer
        return getattr(self._hand_over(), name)

    def _hand_over(self) -> types.ModuleType:
        """pydantic's own loader, in this stand-in's place from now on."""
        if sys.modules.get(PYDANTIC_PLUGIN_LOADER) is self:
            del sys.modules[PYDANTIC_PLUGIN_LOADER]
        return importlib.import_module(PYDANTIC_PLUGIN_LOADER)


def quiet_native_libraries() -> None:
    """OpenCV and its FFmpeg print their own warnings straight to stderr ('[ WARN:0@3.1] global
    loadsave.cpp ...' for each unreadable file, one per camera retry), bypassing logging. What they
    report reaches our log from the code that called them (a camera's state and reason, a photo
    refused as unreadable), so only their errors are kept. Set OPENCV_LOG_LEVEL=WARNING to see them.
    Must run before cv2 is imported."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "16")  # AV_LOG_ERROR


def display_width(text: str) -> int:
    """Terminal columns ``text`` takes: CJK characters take two, combining marks none."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def fit(text: str, width: int, align: str = "<") -> str:
    """``text`` cut and padded to exactly ``width`` terminal columns (a cut is marked with '…')."""
    if display_width(text) > width:
        while text and display_width(text) > width - 1:
            text = text[:-1]
        text += "…"
    gap = " " * (width - display_width(text))
    return gap + text if align == ">" else text + gap


def table(headers: list[str], rows: list[list[str]], right: tuple[int, ...] = (), max_width: int = 30) -> list[str]:
    """Lines of a plain-text table whose columns line up in a terminal, whatever the script."""
    widths = [min(max_width, max(display_width(r[i]) for r in [headers, *rows])) for i in range(len(headers))]
    last = len(headers) - 1
    return ["  ".join(cell if i == last else fit(cell, widths[i], ">" if i in right else "<")
                      for i, cell in enumerate(row)).rstrip() for row in [headers, *rows]]


def progress(items: list, label: str) -> Iterator:
    """``items`` one by one, with a progress bar on stderr when it is a terminal; log lines are printed
    above the bar (tqdm's logging redirect), never into it."""
    from tqdm import tqdm
    from tqdm.contrib.logging import logging_redirect_tqdm

    with logging_redirect_tqdm():
        # A terminal that reports no size (a serial console, a bare pty) gets 80x24: tqdm would draw nothing.
        size = shutil.get_terminal_size()
        yield from tqdm(items, desc=label, file=sys.stderr, ascii=True, ncols=size.columns, nrows=size.lines,
                        disable=not sys.stderr.isatty())


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


class LazyGroup(click.Group):
    """A group whose commands are imported only when one runs (or shows its own help).

    ``lazy`` maps a command name to ("module:attribute", its one-line summary), the attribute being the
    command or a function that builds it; the summary is what
    the group's --help lists, so listing imports nothing (tests/test_docs.py keeps each summary equal
    to the command's own).
    """

    def __init__(self, *args: Any, lazy: dict[str, tuple[str, str]] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in self.lazy and name not in self.commands:
            module, _, attribute = self.lazy[name][0].partition(":")
            target = getattr(importlib.import_module(module), attribute)
            # A command, or a function that builds one (a group whose commands come from several modules).
            self.add_command(target if isinstance(target, click.Command) else target(), name)
        return super().get_command(ctx, name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        names = self.list_commands(ctx)
        if not names:
            return
        limit = formatter.width - 6 - max(len(name) for name in names)
        rows = []
        for name in names:
            if name in self.commands:
                rows.append((name, self.commands[name].get_short_help_str(limit)))
            else:
                rows.append((name, click.utils.make_default_short_help(self.lazy[name][1], limit)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class DaemonCommand(click.Command):
    """A command that runs a long-lived process and resumes the garbage collector itself once it has
    started (`kiosk run`: at READY, kiosk.base.startup)."""


class KioskGroup(LazyGroup):
    """The root group: lazy commands; turns typed errors into sentences and exit codes.

    The `kiosk` command starts with the garbage collector paused (kiosk.base.startup): the command's
    module (and with it pydantic, the config's models...) is imported paused, and the collector is
    resumed when the command's own code starts, except for a DaemonCommand, which resumes it itself."""

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None,
                                                                             list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if not isinstance(command, DaemonCommand):
            resume_gc()
        return name, command, rest

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
