"""Every CLI command and option has help text; the README's quick start is what the Makefile runs."""

from __future__ import annotations

import click

from conftest import REPO
from kiosk.commands import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_every_command_has_help(invoke) -> None:
    undocumented = []
    for path, command in _commands(cli):
        if not (command.help or "").strip():
            undocumented.append(" ".join(path))
        for param in command.params:
            if isinstance(param, click.Option) and not (param.help or "").strip():
                undocumented.append(f"{' '.join(path)} {param.opts[0]}")
        result = invoke(*path, "--help")
        assert result.exit_code == 0, f"kiosk {' '.join(path)} --help failed"
    assert undocumented == []


def test_readme_quick_start_matches_makefile() -> None:
    readme = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    assert "make demo" in readme and "make test" in readme
    for target in ("venv:", "demo:", "test:", "bench:"):
        assert f"\n{target}" in makefile
