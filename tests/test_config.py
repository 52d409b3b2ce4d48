"""Config files are validated strictly; every problem is reported as key path, value, expectation."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import REPO
from kiosk.base.errors import ConfigError
from kiosk.config import KioskConfig, load_config

BAD = """
[device]
branch = "B 01"
timezone = "Mars/Base"
colour = "red"
[store]
busy_timeout_s = -1
"""


def test_example_config_is_valid(invoke, kiosk_home: Path) -> None:
    here = kiosk_home.parent  # the example names /var/lib/kiosk and /etc/kiosk: use a real home's instead
    result = invoke("config", "check", str(REPO / "config/kiosk.example.toml"),
                    "--set", f"store.path='{here / 'kiosk.db'}'", "--set", f"store.key_file='{here / 'kiosk-db.key'}'")
    assert result.exit_code == 0, result.output


def test_missing_files_are_problems(invoke, kiosk_home: Path) -> None:
    result = invoke("config", "check", str(kiosk_home), "--set", "face.pack_dir='/nonexistent/buffalo_l'",
                    "--set", "liveness.passive_model='/nonexistent/live.onnx'")
    assert result.exit_code == 1
    assert "face.pack_dir = '/nonexistent/buffalo_l': no such folder on this machine" in result.stdout
    assert "liveness.passive_model = '/nonexistent/live.onnx': no such file" in result.stdout
    assert invoke("config", "check", str(kiosk_home)).exit_code == 0


def test_every_problem_is_one_line(tmp_path: Path, invoke) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(BAD)
    result = invoke("config", "check", str(path))
    assert result.exit_code == 1
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 4
    assert all(line.startswith(f"{path}: ") for line in lines)
    joined = "\n".join(lines)
    assert "device.branch = 'B 01'" in joined
    assert "device.timezone = 'Mars/Base': unknown time zone" in joined
    assert "device.colour = 'red': unknown key; valid keys here:" in joined
    assert "store.busy_timeout_s = -1: Input should be greater than or equal to 0.1" in joined
    assert "Traceback" not in result.output


def test_toml_syntax_error_names_the_line(tmp_path: Path, invoke) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("[device\nname = 1\n")
    result = invoke("config", "check", str(path))
    assert result.exit_code == 1 and "line 1" in result.output


def test_missing_file(invoke, tmp_path: Path) -> None:
    result = invoke("config", "check", str(tmp_path / "none.toml"))
    assert result.exit_code == 1 and "does not exist" in result.output and "kiosk init" in result.output


def test_set_overrides_are_validated(kiosk_home: Path) -> None:
    config = load_config(kiosk_home, ["device.name=Front desk", "store.busy_timeout_s=2.5"])
    assert config.device.name == "Front desk" and config.store.busy_timeout_s == 2.5
    with pytest.raises(ConfigError) as err:
        load_config(kiosk_home, ["store.busy_timeout_s=abc"])
    assert "store.busy_timeout_s = 'abc'" in err.value.problems[0]
    with pytest.raises(ConfigError, match="not KEY=VALUE"):
        load_config(kiosk_home, ["store.busy_timeout_s"])
    with pytest.raises(ConfigError) as err:
        load_config(kiosk_home, ["nosuch.key=1"])
    assert "unknown key" in err.value.problems[0]


def test_relative_paths_follow_the_config_file(kiosk_home: Path) -> None:
    config = load_config(kiosk_home)
    assert config.store.path == kiosk_home.parent.resolve() / "kiosk.db"


def _walk(model: type, prefix: str = ""):
    for name, field in model.model_fields.items():
        yield f"{prefix}{name}", field
        ann = field.annotation
        if isinstance(ann, type) and hasattr(ann, "model_fields"):
            yield from _walk(ann, f"{prefix}{name}.")


def test_every_field_has_a_description() -> None:
    missing = [path for path, field in _walk(KioskConfig) if not (field.description or "").strip()]
    assert missing == []


def test_every_key_is_in_the_example() -> None:
    example = (REPO / "config/kiosk.example.toml").read_text()
    leaves = [p for p, f in _walk(KioskConfig) if not hasattr(f.annotation, "model_fields")]
    undocumented = [p for p in leaves if f"{p.rsplit('.', 1)[-1]} =" not in example
                    and f"# {p.rsplit('.', 1)[-1]} =" not in example]
    assert undocumented == []


@pytest.mark.parametrize(("url", "allow", "ok"), [
    ("http://10.1.2.3:8750", False, False),
    ("http://hub.branch.lan:8750", False, False),
    ("http://10.1.2.3:8750", True, True),
    ("https://10.1.2.3:8750", False, True),
    ("http://127.0.0.1:8750", False, True),
    ("http://localhost:8750", False, True),
    ("http://[::1]:8750", False, True),
])
def test_config_check_refuses_a_clear_text_hub_on_another_machine(kiosk_home, invoke, url: str, allow: bool,
                                                                  ok: bool) -> None:
    """The reported gap: sync.hub_url = "http://10.1.2.3:8750" was accepted and the token went in clear."""
    sets = ["--set", f"sync.hub_url='{url}'"] + (["--set", "sync.allow_insecure_http=true"] if allow else [])
    result = invoke("config", "check", str(kiosk_home), *sets)
    assert (result.exit_code == 0) is ok, result.output
    if not ok:
        assert "sync.hub_url" in result.output and "clear text" in result.output
        assert "https://" in result.output and "sync.allow_insecure_http = true" in result.output
