"""Building blocks for config files: strict models, paths relative to the file, TOML loading with
--set overrides and errors that name file, key path, value and what is expected."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError, ValidationInfo

from kiosk.base.errors import ConfigError

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, assignments are validated too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False, defer_build=True)


def _resolve_relative(value: Path, info: ValidationInfo) -> Path:
    """Make a relative path relative to the directory of the config file it came from."""
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_relative)]
"""A filesystem path; relative values are taken relative to the config file's folder."""


def parse_override(text: str) -> tuple[list[str], Any]:
    """Split ``a.b.c=VALUE`` into a key path and a value (TOML syntax, else a plain string)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {text!r} is not KEY=VALUE",
                          fix="Write it as a dotted key path and a value, e.g. --set punch.debounce_s=60.")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    return key.split("."), value


def apply_overrides(data: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply --set overrides to raw config data (validation happens afterwards, with the rest)."""
    for text in overrides:
        path, value = parse_override(text)
        node = data
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"--set {text!r}: {'.'.join(path[:-1])} is a value, not a section",
                                  fix="Check the key path against config/kiosk.example.toml.")
            node = child
        node[path[-1]] = value
    return data


def read_toml(path: Path) -> dict[str, Any]:
    """Read a TOML file, turning every way it can fail into a ConfigError."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist",
                          fix="Create one with `kiosk init DIR`, or pass --config FILE.") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {path} is a directory", fix="Pass the TOML file itself.") from None
    except PermissionError:
        raise ConfigError(f"config file {path} is not readable by this user",
                          fix="Run as the kiosk user or fix the file's permissions.") from None
    except UnicodeDecodeError:
        raise ConfigError(f"config file {path} is not UTF-8 text", fix="Save it as UTF-8 TOML.") from None
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path} is not valid TOML", problems=[f"{path}: {exc}"],
                          fix="Fix the syntax at the line shown.") from None


def _fields_at(model: type[BaseModel], loc: tuple) -> list[str] | None:
    """The valid key names of the section at ``loc`` (for 'unknown key' messages)."""
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        ann = field.annotation
        if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
            return None
        model = ann
    return sorted(model.model_fields)


def describe_errors(model: type[BaseModel], exc: ValidationError, source: str) -> list[str]:
    """One line per problem: file, key path, offending value, what is expected."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        key = ".".join(str(p) for p in loc) or "(top level)"
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            valid = _fields_at(model, loc[:-1]) or []
            expected = "unknown key; valid keys here: " + ", ".join(valid)
        elif err["type"] == "missing":
            lines.append(f"{source}: {key}: missing; this key is required")
            continue
        else:
            expected = err["msg"].removeprefix("Value error, ")
        lines.append(f"{source}: {key} = {toml_value(value)}: {expected}")
    return lines


def toml_value(value: Any) -> str:
    """A value as it is written in the TOML file (true, 3.5, 'text', [1, 2]), for messages about it."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict):
        return "{...}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value) if isinstance(value, str) else str(value)


def validate_model(model: type[M], data: dict[str, Any], source: str, base_dir: Path | None, example: str) -> M:
    """Validate raw data into ``model`` or raise ConfigError listing every problem."""
    try:
        return model.model_validate(data, context={"base_dir": base_dir})
    except ValidationError as exc:
        problems = describe_errors(model, exc, source)
        raise ConfigError(f"{source} has {len(problems)} problem(s)", problems=problems,
                          fix=f"Fix each key shown (see {example}).") from None


def load_model_file(model: type[M], path: Path, overrides: list[str] | None, example: str) -> M:
    """Read, override and validate a TOML file; relative paths are relative to its folder."""
    data = apply_overrides(read_toml(path), overrides or [])
    config = validate_model(model, data, str(path), path.resolve().parent, example)
    config._source = path
    return config
