"""Every CLI command and option has help text; the README's commands and quick start are what the CLI and
the Makefile offer."""

from __future__ import annotations

import re
import shlex

import click
import pytest

from conftest import REPO
from kiosk.commands import cli


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def test_lazy_command_summaries_are_the_commands_own() -> None:
    """`kiosk --help` lists commands from the composition root's summaries without importing them:
    each summary must be what the command itself says."""
    from kiosk.cli.util import LazyGroup
    for path, command in _commands(cli):
        parent = cli if len(path) == 1 else cli.get_command(click.Context(cli), path[0])
        if isinstance(parent, LazyGroup) and path[-1] in parent.lazy:
            assert command.name == path[-1]
            assert parent.lazy[path[-1]][1] == command.get_short_help_str(limit=1000), path


HEAVY = ("numpy", "pydantic", "sqlite_utils", "sqlcipher3", "cryptography", "onnxruntime", "onnx", "cv2",
         "insightface", "httpx")
LOADED_PROBE = ("import sys; from kiosk.commands import cli\n"
                "try:\n    cli(sys.argv[1:], prog_name='kiosk')\nexcept SystemExit:\n    pass\n"
                f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")


def heavy_modules_after(*args: str) -> list[str]:
    """The heavy packages a real `kiosk ARGS...` process has imported when it is done (its last line)."""
    import ast
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", LOADED_PROBE, *args], capture_output=True, text=True, check=True,
                         cwd=REPO)
    return ast.literal_eval(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("args", [("--help",), ("hub", "--help"), ("bench", "--help")])
def test_help_imports_nothing_heavy(args: tuple[str, ...]) -> None:
    """`kiosk --help` and the hub's and the benchmarks' lists must stay cheap on a Pi: click and the command
    tables only (kiosk bench startup prints what they cost)."""
    assert heavy_modules_after(*args) == []


def test_config_check_loads_no_face_runtime(tmp_path) -> None:  # noqa: ANN001 - pytest fixture
    """`kiosk config check` validates (pydantic) and counts the roster for the threshold (one SQLCipher query,
    kiosk.store.quickread: not the full store), but loads no model
    runtime, image library, HTTP client or signing: the threshold comes from the calibration."""
    from kiosk.cli.store import create_home
    config = create_home(tmp_path / "home")
    assert heavy_modules_after("config", "check", "--config", str(config)) == ["pydantic", "sqlcipher3"]


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


def _readme_commands() -> list[str]:
    """Every `kiosk ...` invocation in the README: in fenced code blocks and in inline code."""
    readme = (REPO / "README.md").read_text()
    blocks = re.findall(r"^```[a-z]*\n(.*?)^```", readme, re.S | re.M)
    lines = " \n".join(blocks).replace("\\\n", " ").splitlines()
    inline = re.findall(r"`(kiosk\s[^`]+)`", re.sub(r"^```.*?^```", "", readme, flags=re.S | re.M))
    lines += [" ".join(span.split()) for span in inline]
    found = []
    for line in lines:
        line = line.split("#", 1)[0]
        for match in re.finditer(r"(?:^|[\s(|;&$]|/)kiosk\s+([a-z][^|;)&#]*)", line):
            found.append("kiosk " + match.group(1).strip())
    return found


def _resolve(words: list[str]) -> tuple[list[str], click.Command, list[str]]:
    """(command path, command, the rest) of `kiosk WORDS...`."""
    command: click.Command = cli
    path: list[str] = []
    while isinstance(command, click.Group) and words and words[0] in command.commands:
        path.append(words[0])
        command = command.commands[words.pop(0)]
    return path, command, words


def test_every_command_in_the_readme_exists_with_the_options_shown(invoke) -> None:
    """The README's commands and options are the CLI's: a renamed command or option fails here."""
    commands = _readme_commands()
    assert len(commands) > 40 and any(c.startswith("kiosk hub device list") for c in commands)
    wrong = []
    for text in commands:
        words = shlex.split(re.sub(r"[][|\\]", " ", text))
        if words[1].isupper():  # `kiosk COMMAND --help`: a placeholder
            continue
        path, command, rest = _resolve(words[1:])
        if not path or isinstance(command, click.Group) and rest and not rest[0].startswith("-"):
            wrong.append(f"{text}: no such command")
            continue
        known = {opt for p in command.params for opt in (*p.opts, *p.secondary_opts)} | {"--help", "-h"}
        wrong += [f"{text}: {word} is not an option of kiosk {' '.join(path)}"
                  for word in rest if word.startswith("--") and word.split("=")[0] not in known]
        result = invoke(*path, "--help")
        assert result.exit_code == 0, f"kiosk {' '.join(path)} --help failed"
    assert wrong == []
