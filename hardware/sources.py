"""Camera source strings (`v4l2:/dev/video0`, `images:DIR?fps=10`...) parsed into plain data."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import parse_qsl

NO_CAMERA = ("", "none")
# The camera backends, by source kind: the one registry a new backend is added to (class name in
# hardware/camera_backends.py; loaded only when a camera of that kind is opened).
BACKENDS: dict[str, str] = {
    "picamera2": "Picamera2Backend",
    "v4l2": "OpenCvBackend",
    "gst": "OpenCvBackend",
    "rtsp": "OpenCvBackend",
    "file": "OpenCvBackend",
    "images": "ImageFolderBackend",
    "fake": "FakeBackend",
}
KINDS = tuple(BACKENDS)

# Options each kind accepts after '?'; live sources take theirs from the [camera] section.
OPTIONS: dict[str, dict[str, type]] = {
    "file": {"loop": int, "fps": float},
    "images": {"loop": int, "fps": float},
    "fake": {"fps": float, "width": int, "height": int},
}

SYNTAX_HELP = ("use '' or 'none' (no camera), picamera2:0, v4l2:/dev/video0, gst:PIPELINE, "
               "rtsp://HOST/PATH, file:PATH[?loop=1&fps=N], images:DIR[?fps=10&loop=0], fake:[?fps=N]")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed camera source: ``kind`` (one of KINDS or 'none'), ``target`` and options."""

    kind: str
    target: str = ""
    options: dict[str, float | int] = field(default_factory=dict)
    text: str = ""

    @property
    def is_none(self) -> bool:
        return self.kind == "none"

    def option(self, name: str, default: float | int | None = None) -> float | int | None:
        return self.options.get(name, default)


def _parse_options(kind: str, query: str) -> dict[str, float | int]:
    allowed = OPTIONS.get(kind, {})
    options: dict[str, float | int] = {}
    for key, raw in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in allowed:
            valid = ", ".join(sorted(allowed)) or "none"
            raise ValueError(f"unknown option {key!r} for a {kind}: source (valid: {valid})")
        try:
            value = allowed[key](raw)
        except ValueError:
            raise ValueError(f"option {key}={raw!r} is not a number") from None
        if value < 0:
            raise ValueError(f"option {key}={raw!r} must not be negative")
        options[key] = value
    return options


def parse_source(text: str) -> SourceSpec:
    """Parse a camera source string; raises ValueError naming what is wrong and the valid forms."""
    text = text.strip()
    if text.lower() in NO_CAMERA:
        return SourceSpec("none", text=text)
    if text.startswith(("rtsp://", "rtsps://")):
        return SourceSpec("rtsp", text, text=text)
    kind, sep, rest = text.partition(":")
    if not sep or kind not in KINDS or kind == "rtsp":
        raise ValueError(f"unknown camera source {text!r}; {SYNTAX_HELP}")
    if kind in OPTIONS:
        target, _, query = rest.partition("?")
        options = _parse_options(kind, query)
    else:
        target, options = rest, {}
    if kind == "picamera2":
        target = target or "0"
        if not target.isdigit():
            raise ValueError(f"picamera2 camera number must be 0, 1...; got {target!r}")
    elif kind != "fake" and not target:
        raise ValueError(f"{kind}: needs a target; {SYNTAX_HELP}")
    return SourceSpec(kind, target, options, text=text)
