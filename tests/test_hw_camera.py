"""Cameras on video files and image folders written here; stalls, recovery, drops, end of source."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError
from waiting import StateHistory, wait_for, wait_state

from hardware.camera import open_camera
from hardware.config import CameraConfig
from hardware.device import DeviceState

DEADLINE_S = 60.0  # an upper bound for a loaded machine: every wait ends as soon as its condition holds
SIZE = (64, 48)  # width, height


def numbered_image(index: int) -> np.ndarray:
    """A frame whose top-left pixel block encodes its index (survives PNG exactly, JPEG roughly)."""
    image = np.zeros((SIZE[1], SIZE[0], 3), np.uint8)
    image[:16, :16] = (index * 10) % 256
    image[:, -8:, 2] = 255  # a red bar on the right, to see rotation and mirroring
    return image


def image_folder(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        cv2.imwrite(str(folder / f"frame_{index:03d}.png"), numbered_image(index))
    return folder


def video_file(path: Path, count: int, fourcc: str, fps: float = 20.0) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, SIZE)
    assert writer.isOpened(), f"this OpenCV cannot write {fourcc}"
    for index in range(count):
        writer.write(numbered_image(index))
    writer.release()
    return path


def camera_for(source: str, **settings):
    return open_camera(CameraConfig(source=source, **{"stall_timeout_s": 0.3, "reopen_backoff_s": 0.05,
                                                      "reopen_backoff_max_s": 0.2, **settings}))


def drain(camera, timeout_s: float = DEADLINE_S, delay_s: float = 0.0) -> list:
    """Read every frame until the source has ended and its queue is empty; ``delay_s`` between reads
    makes a consumer slower than the source (the scenario, not a wait)."""
    frames = []

    def take() -> bool:
        frame = camera.read(0.1)
        if frame is not None:
            frames.append(frame)
        return camera.finished

    wait_for(take, timeout_s, interval_s=delay_s, what=lambda: f"the end of the source ({camera.status})")
    return frames


def test_lossless_images_deliver_every_frame_in_name_order_then_end(tmp_path) -> None:
    folder = image_folder(tmp_path / "imgs", 12)
    (folder / "notes.txt").write_text("not an image")
    camera = camera_for(f"images:{folder}?fps=0", queue_frames=1)
    with camera:
        frames = drain(camera, delay_s=0.01)  # a consumer slower than the source loses nothing
        assert camera.finished
    assert [f.origin for f in frames] == [f"frame_{i:03d}.png" for i in range(12)]
    assert [int(f.image[0, 0, 0]) for f in frames] == [(i * 10) % 256 for i in range(12)]
    assert [f.seq for f in frames] == list(range(12))
    assert all(b.mono_ns > a.mono_ns for a, b in zip(frames, frames[1:], strict=False))
    assert camera.dropped == 0 and camera.state == DeviceState.ENDED and camera.ended.is_set()
    assert frames[0].image.dtype == np.uint8 and frames[0].image.shape == (SIZE[1], SIZE[0], 3)


def test_live_pacing_drops_oldest_frames_never_blocks(tmp_path) -> None:
    folder = image_folder(tmp_path / "imgs", 40)
    camera = camera_for(f"images:{folder}?fps=200", queue_frames=2)
    with camera:
        wait_state(camera, DeviceState.ENDED)  # the camera ran to the end without a reader
        frames = drain(camera)
    assert camera.dropped == 38 and len(frames) == 2
    assert [f.origin for f in frames] == ["frame_038.png", "frame_039.png"]  # the newest survive


@pytest.mark.parametrize("suffix, fourcc", [(".mp4", "mp4v"), (".avi", "MJPG")])
def test_video_files(tmp_path, suffix: str, fourcc: str) -> None:
    path = video_file(tmp_path / f"clip{suffix}", 15, fourcc)
    camera = camera_for(f"file:{path}?fps=0")
    with camera:
        frames = drain(camera)
    assert len(frames) == 15 and camera.state == DeviceState.ENDED
    assert {f.size for f in frames} == {SIZE}
    assert [round(int(f.image[8, 8, 0]) / 10) for f in frames[:5]] == [0, 1, 2, 3, 4]


def test_looping_video_keeps_going(tmp_path) -> None:
    path = video_file(tmp_path / "clip.avi", 5, "MJPG")
    camera = camera_for(f"file:{path}?loop=1&fps=0")
    with camera:
        frames = [camera.read(DEADLINE_S) for _ in range(12)]
        assert camera.state == DeviceState.RUNNING and not camera.ended.is_set()
    assert all(f is not None for f in frames)
    assert [f.seq for f in frames] == list(range(12))


def test_resize_rotate_mirror(tmp_path) -> None:
    folder = image_folder(tmp_path / "imgs", 1)
    camera = camera_for(f"images:{folder}?fps=0", width_px=32, height_px=24, rotation_deg=90, mirror=True)
    with camera:
        frame = camera.read(DEADLINE_S)
    assert frame.size == (24, 32)  # resized to 32x24 first, then turned a quarter
    # The red bar was on the right; rotated clockwise it is at the bottom; mirroring keeps it there.
    assert frame.image[-2, :, 2].mean() > 200 and frame.image[1, :, 2].mean() < 50


def test_stalled_camera_is_reopened_and_recovers() -> None:
    camera = camera_for("fake:?fps=50", stall_timeout_s=0.5)
    history = StateHistory(camera)
    with camera:
        history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
        history.mark()
        camera.fake.go_silent()
        stalled = history.wait(DeviceState.STALLED, timeout_s=DEADLINE_S)
        assert "no frame for 0.5 s" in stalled.reason
        opens = camera.fake.opens
        wait_for(lambda: camera.fake.opens >= opens + 2, DEADLINE_S, what="reopening while stalled")
        camera.fake.resume()
        history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
        assert camera.read(DEADLINE_S) is not None
    states = [s.state for s in history.statuses]
    assert states[:4] == [DeviceState.STARTING, DeviceState.RUNNING, DeviceState.STALLED, DeviceState.RUNNING]


def test_unplugged_camera_is_disconnected_until_it_comes_back() -> None:
    camera = camera_for("fake:?fps=50")
    with camera:
        wait_state(camera, DeviceState.RUNNING)
        camera.fake.unplug()
        wait_state(camera, DeviceState.DISCONNECTED)
        assert "unplugged" in camera.reason
        camera.fake.replug()
        wait_state(camera, DeviceState.RUNNING)


def test_image_folder_that_vanishes_and_returns(tmp_path) -> None:
    folder = image_folder(tmp_path / "imgs", 5)
    camera = camera_for(f"images:{folder}?fps=50&loop=1")
    history = StateHistory(camera)
    with camera:
        history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
        history.mark()
        hidden = folder.rename(tmp_path / "hidden")
        # Lost, then a reopen fails for want of the folder: the camera does not come back on its own.
        history.wait(DeviceState.DISCONNECTED, reason="does not exist; retrying", timeout_s=DEADLINE_S)
        assert not camera.state.working
        history.mark()
        hidden.rename(folder)
        history.wait(DeviceState.RUNNING, timeout_s=DEADLINE_S)
        assert camera.read(DEADLINE_S) is not None


def test_missing_video_file_is_reported(tmp_path) -> None:
    camera = camera_for(f"file:{tmp_path / 'nope.mp4'}")
    with camera:
        wait_state(camera, DeviceState.DISCONNECTED)
        assert "does not exist" in camera.reason


def test_picamera2_missing_on_this_machine_fails_with_instructions() -> None:
    try:
        import picamera2  # noqa: F401
        pytest.skip("picamera2 is installed here")
    except ImportError:
        pass
    camera = camera_for("picamera2:0")
    with camera:
        wait_state(camera, DeviceState.FAILED)
    assert "python3-picamera2" in camera.reason and "--system-site-packages" in camera.reason


def test_gstreamer_pipeline_without_gstreamer_support_fails_clearly() -> None:
    from hardware.camera_backends import gstreamer_available
    if gstreamer_available():
        pytest.skip("this OpenCV has GStreamer")
    camera = camera_for("gst:videotestsrc ! videoconvert ! appsink")
    with camera:
        wait_state(camera, DeviceState.FAILED)
    assert "GStreamer" in camera.reason


def test_no_camera_is_off() -> None:
    camera = open_camera(CameraConfig())
    camera.start()
    assert camera.state == DeviceState.OFF and not camera.configured
    assert camera.read(0.01) is None and not camera.finished
    camera.stop()


@pytest.mark.parametrize("source", ["webcam", "images:", "file:/x?speed=2", "picamera2:one", "images:/d?fps=-1"])
def test_bad_source_strings_are_config_errors(source: str) -> None:
    with pytest.raises(ValidationError):
        CameraConfig(source=source)


def test_cli_reads_an_image_folder(invoke, tmp_path) -> None:
    folder = image_folder(tmp_path / "imgs", 8)
    snapshot = tmp_path / "last.png"
    result = invoke("hw", "read", "camera", "--source", f"images:{folder}?fps=0", "--count", "5",
                    "--snapshot", str(snapshot), "--config", str(tmp_path / "absent.toml"))
    assert result.exit_code == 0, result.output
    events = [json.loads(line) for line in result.stdout.splitlines()]
    summary = events[-1]
    assert summary["frames"] == 5 and summary["sizes"] == ["64x48"] and summary["fps"] > 0
    assert any(e.get("state") == "running" for e in events)
    assert cv2.imread(str(snapshot)).shape == (48, 64, 3)


def test_cli_camera_that_never_opens_exits_1(invoke, tmp_path) -> None:
    # The command reads for --timeout seconds whatever happens: long enough for a loaded machine to report.
    result = invoke("hw", "read", "camera", "--source", f"images:{tmp_path / 'missing'}", "--count", "1",
                    "--timeout", "10", "--config", str(tmp_path / "absent.toml"))
    assert result.exit_code == 1
    assert '"disconnected"' in result.stdout


def test_a_folder_of_real_photos_is_a_camera(face_data) -> None:
    folder = next(d for d in sorted(face_data.iterdir()) if d.is_dir() and any(d.glob("*.jpg")))
    photos = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    camera = camera_for(f"images:{folder}?fps=0")
    with camera:
        frames = drain(camera)
    assert [f.origin for f in frames] == photos
    assert all(f.image.ndim == 3 and f.image.dtype == np.uint8 for f in frames)


def test_cli_snapshot_name_that_is_not_an_image(invoke, tmp_path) -> None:
    folder = image_folder(tmp_path / "imgs", 3)
    result = invoke("hw", "read", "camera", "--source", f"images:{folder}?fps=0", "--count", "2",
                    "--snapshot", str(tmp_path / "last.txt"), "--config", str(tmp_path / "absent.toml"))
    assert result.exit_code == 1
    assert "not an image file name" in result.output and "what to do:" in result.output


def test_cli_file_without_a_single_frame_exits_1(invoke, tmp_path) -> None:
    not_video = tmp_path / "clip.mp4"
    not_video.write_text("not a video")
    result = invoke("hw", "read", "camera", "--source", f"file:{not_video}?fps=0", "--count", "1",
                    "--timeout", "5", "--config", str(tmp_path / "absent.toml"))
    assert result.exit_code == 1, result.output
    assert json.loads(result.stdout.splitlines()[-1])["frames"] == 0


def test_image_folder_emptied_or_replaced_mid_loop_is_one_state_change_not_a_warning_per_file(tmp_path,
                                                                                               caplog) -> None:
    """A folder camera whose files are taken away (or replaced by new ones) while it plays them: the
    stale listing is read again once, instead of one 'unreadable image' warning per vanished file."""
    folder = image_folder(tmp_path / "imgs", 60)
    camera = camera_for(f"images:{folder}?fps=200&loop=1")
    with caplog.at_level("DEBUG", logger="hardware"), camera:
        wait_state(camera, DeviceState.RUNNING)
        aside = tmp_path / "aside"
        aside.mkdir()
        for path in sorted(folder.iterdir()):
            path.rename(aside / path.name)
        assert camera.wait_for(lambda s: s.state is DeviceState.DISCONNECTED, DEADLINE_S)
        for index, path in enumerate(sorted(aside.iterdir())):
            path.rename(folder / f"new_{index:03d}.png")  # other names, as a replaced scene has
        wait_state(camera, DeviceState.RUNNING)
        assert camera.read(1.0) is not None
    assert not [r for r in caplog.records if "unreadable image" in r.getMessage()]
    assert not [r for r in caplog.records if r.levelname == "WARNING" and "disconnected -> disconnected" in
                r.getMessage()]
