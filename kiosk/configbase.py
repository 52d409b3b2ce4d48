"""Building blocks for config sections: strict models and paths relative to the config file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationInfo


class StrictModel(BaseModel):
    """A config section: unknown keys are errors, assignments are validated too."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


def _resolve_relative(value: Path, info: ValidationInfo) -> Path:
    """Make a relative path relative to the directory of the config file it came from."""
    value = value.expanduser()
    base = (info.context or {}).get("base_dir")
    if base is not None and not value.is_absolute():
        value = Path(base) / value
    return value


ConfigPath = Annotated[Path, AfterValidator(_resolve_relative)]
"""A filesystem path; relative values are taken relative to the config file's folder."""
