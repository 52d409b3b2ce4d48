"""`kiosk hw ...`: read a card reader, a GPS or a camera, and probe every configured device."""

from __future__ import annotations

import json
import queue
import sys
import time
from pathlib import Path

import click
from pydantic import ValidationError

from kiosk.base.config import describe_errors
from kiosk.base.errors import ConfigError, InvalidInput
from kiosk.cli.util import ConfigRef, config_options, echo_json
from kiosk.config import KioskConfig, config_from_defaults

READ_POLL_S = 0.2


@click.group("hw")
def hw() -> None:
    """Hardware: read cards, GPS fixes and camera frames; check every configured device."""


@hw.group("read")
def read_group() -> None:
    """Read from one device and print what it delivers, one JSON object per line."""


def _base_config(cfg: ConfigRef, device_given: bool) -> KioskConfig:
    """The config file when there is one; built-in defaults when the device was named on the line."""
    if device_given and not cfg.path.exists():
        return config_from_defaults(Path.cwd(), cfg.overrides)
    return cfg.load()


def _section(model, base, **updates):
    """A section of ``base`` with the command-line values applied and validated."""
    data = base.model_dump()
    data.update({k: v for k, v in updates.items() if v is not None})
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ConfigError("invalid command-line value", problems=describe_errors(model, exc, "option"),
                          fix="Check the values given on the command line.") from None


def _status_printer(stream: queue.Queue):
    def listener(status) -> None:
        stream.put(status)
    return listener


def _drain_status(stream: queue.Queue) -> None:
    while True:
        try:
            status = stream.get_nowait()
        except queue.Empty:
            return
        click.echo(f"{status.device}: {status.state.value} - {status.reason}", err=True)


def _run_reader(device, count: int, timeout_s: float, emit) -> int:
    """Start ``device``, print each item its read() returns, stop; returns how many were printed."""
    statuses: queue.Queue = queue.Queue()
    device.add_listener(_status_printer(statuses))
    device.start()
    printed, deadline = 0, time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline and not (count and printed >= count):
            _drain_status(statuses)
            item = device.read(min(READ_POLL_S, max(0.0, deadline - time.monotonic())))
            if item is not None:
                emit(item)
                printed += 1
    finally:
        device.stop()
        _drain_status(statuses)
    return printed


def _rfid_summary(summary: dict) -> str:
    dropped = summary["dropped"]
    detail = ", ".join(f"{reason} {n}" for reason, n in sorted(dropped.items()))
    return (f"rfid: {summary['cards']} card read(s); {sum(dropped.values())} frame(s) dropped"
            f"{f' ({detail})' if detail else ''}; {summary['held_off']} repeat(s) held off; "
            f"{summary['noise_bytes']} noise byte(s)")


@read_group.command("rfid")
@click.option("--port", metavar="PATH", help="Serial port, /dev/input/... for hid readers, or 'fake:' "
              "[default: rfid.port from the config].")
@click.option("--protocol", type=click.Choice(["em4100", "line", "wiegand", "hid"]),
              help="Reader protocol [default: rfid.protocol].")
@click.option("--baud", type=int, help="Serial speed in bits/s [default: rfid.baud].")
@click.option("--count", default=1, show_default=True, type=click.IntRange(min=0),
              help="Stop after this many card reads (0: until --timeout).")
@click.option("--timeout", "timeout_s", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Stop after this many seconds.")
@config_options
def read_rfid(port: str | None, protocol: str | None, baud: int | None, count: int, timeout_s: float,
              cfg: ConfigRef) -> None:
    """Print each card read as {"card", "protocol", "raw"}; a summary of dropped frames goes to stderr."""
    from hardware.config import RfidConfig
    from hardware.rfid import open_rfid

    base = _base_config(cfg, port is not None).rfid
    config = _section(RfidConfig, base, port=port, protocol=protocol, baud=baud)
    if not config.port:
        raise ConfigError("no card reader configured", fix="Pass --port PATH or set rfid.port in the config.")
    reader = open_rfid(config)
    got = _run_reader(reader, count, timeout_s, lambda read: echo_json(read.as_json()))
    click.echo(_rfid_summary(reader.summary()), err=True)
    if count and got < count:
        sys.exit(1)


@read_group.command("gps")
@click.option("--port", metavar="PATH", help="Serial port of the receiver, or 'fake:?lat=..&lon=..' "
              "[default: gps.port from the config].")
@click.option("--baud", type=int, help="Serial speed in bits/s [default: gps.baud].")
@click.option("--count", default=1, show_default=True, type=click.IntRange(min=0),
              help="Stop after this many fixes (0: until --timeout).")
@click.option("--timeout", "timeout_s", default=30.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Stop after this many seconds.")
@config_options
def read_gps(port: str | None, baud: int | None, count: int, timeout_s: float, cfg: ConfigRef) -> None:
    """Print each fix as {"lat", "lon", "quality", "sats", "hdop", "utc"}; a summary goes to stderr."""
    from hardware.config import GpsConfig
    from hardware.gps import open_gps

    config = _section(GpsConfig, _base_config(cfg, port is not None).gps, port=port, baud=baud)
    if not config.port:
        raise ConfigError("no GPS configured", fix="Pass --port PATH or set gps.port in the config.")
    gps = open_gps(config)
    got = _run_reader(gps, count, timeout_s, lambda fix: echo_json(fix.as_json()))
    s = gps.summary()
    click.echo(f"gps: {got} fix(es) printed from {s['sentences']} valid sentence(s); {s['bad_checksum']} bad "
               f"checksum(s), {s['unparsable']} unparsable line(s); last state {gps.state.value} - {gps.reason}",
               err=True)
    if count and got < count:
        sys.exit(1)


@read_group.command("camera")
@click.option("--source", metavar="SRC", help="Camera source, e.g. v4l2:/dev/video0 or images:DIR?fps=0 "
              "[default: camera.source from the config].")
@click.option("--count", default=30, show_default=True, type=click.IntRange(min=1), help="Frames to read.")
@click.option("--timeout", "timeout_s", default=20.0, show_default=True, type=click.FloatRange(min=0.1),
              help="Stop after this many seconds.")
@click.option("--snapshot", type=click.Path(dir_okay=False, path_type=Path),
              help="Save the last frame to this image file (to see what the camera sees).")
@config_options
def read_camera(source: str | None, count: int, timeout_s: float, snapshot: Path | None, cfg: ConfigRef) -> None:
    """Read frames; print state changes and a summary (frame size, measured fps, drops) as JSON."""
    from hardware.camera import open_camera
    from hardware.config import CameraConfig

    config = _section(CameraConfig, _base_config(cfg, source is not None).camera, source=source)
    if snapshot is not None:
        import cv2
        if not cv2.haveImageWriter(str(snapshot)):
            raise InvalidInput(f"cannot save a snapshot as {snapshot.name}: not an image file name",
                               fix="Use a .jpg or .png path, e.g. --snapshot /tmp/cam.jpg.")
    camera = open_camera(config)
    if not camera.configured:
        raise ConfigError("no camera configured", fix="Pass --source SRC or set camera.source in the config.")
    frames = []

    def keep(frame) -> None:
        frames.append((frame.mono_ns, frame.size))
        if snapshot is not None:
            keep.last = frame

    keep.last = None
    camera.add_listener(lambda status: echo_json({"event": "state", **status.as_dict()}))
    _run_camera(camera, count, timeout_s, keep)
    if keep.last is not None:
        import cv2
        if not cv2.imwrite(str(snapshot), keep.last.image):
            raise InvalidInput(f"cannot write {snapshot}", fix="Use a .jpg or .png path in a writable folder.")
    echo_json(_camera_summary(camera, frames))
    if len(frames) < count and not (camera.ended.is_set() and frames):  # a source that ended with no frame failed
        sys.exit(1)


def _run_camera(camera, count: int, timeout_s: float, keep) -> None:
    camera.start()
    deadline = time.monotonic() + timeout_s
    got = 0
    try:
        while got < count and time.monotonic() < deadline and not camera.finished:
            frame = camera.read(READ_POLL_S)
            if frame is not None:
                keep(frame)
                got += 1
    finally:
        camera.stop()


def _camera_summary(camera, frames: list) -> dict:
    fps = None
    if len(frames) > 1:
        span_s = (frames[-1][0] - frames[0][0]) / 1e9
        fps = round((len(frames) - 1) / span_s, 2) if span_s > 0 else None
    sizes = sorted({f"{w}x{h}" for _, (w, h) in frames})
    return {"event": "summary", "source": camera.describe(), "frames": len(frames), "sizes": sizes,
            "fps": fps, "dropped": camera.dropped, "ended": camera.ended.is_set(), "state": camera.state.value}


@hw.command("probe")
@click.option("--wait", "wait_s", default=5.0, show_default=True,
              help="Seconds to let devices open and report before the table is printed.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@config_options
def probe(wait_s: float, as_json: bool, cfg: ConfigRef) -> None:
    """Open every configured device and report each one's state; exit 1 if one is not working."""
    from kiosk.cli.probe import open_devices, probe_rows, wait_settled

    config = cfg.load()
    devices = open_devices(config)
    devices.start()
    try:
        wait_settled(devices.all(), wait_s)
        if config.gps.port and config.geofence.policy != "off":
            devices.gps.wait_for(lambda s: s.state.value == "running", min(wait_s, 2.0))
        rows = probe_rows(config, devices)
    finally:
        devices.stop()
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False))
    else:
        _print_table(rows)
    if not all(row["ok"] for row in rows):
        sys.exit(1)


def _print_table(rows: list[dict]) -> None:
    headers = ("DEVICE", "WHERE", "STATE", "REASON")
    keys = ("device", "where", "state", "reason")
    widths = [max(len(h), *(len(str(r[k])) for r in rows)) for h, k in zip(headers, keys, strict=True)]
    widths[1] = min(widths[1], 40)
    line = "  ".join(f"{{:<{w}}}" for w in widths[:3]) + "  {}"
    click.echo(line.format(*headers))
    for row in rows:
        where = str(row["where"])
        where = where if len(where) <= 40 else where[:37] + "..."
        click.echo(line.format(row["device"], where, row["state"], row["reason"]))
