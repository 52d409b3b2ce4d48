"""Photos to templates on the hub: a small TemplateMaker interface and its face-engine adapter."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class HubTemplate:
    """One template of one model: made from a photo here, sent by HR, or enrolled at a kiosk (``source``)."""

    model_id: str
    vector: np.ndarray
    quality: float | None
    source: str = "photo"
    scope_branch: str | None = None  # a kiosk's enrolment: sent to its branch only, until HR approves
    held: bool = False  # a kiosk's face for someone HR manages: sent to no kiosk until HR approves


@dataclass(frozen=True)
class FaceLook:
    """One video frame as the liveness check sees it (a field punch's clip): the face the kiosk's engine
    chooses and, when asked, its 106 landmarks and its embedding."""

    bbox: np.ndarray
    kps: np.ndarray
    landmarks: np.ndarray | None
    vector: np.ndarray | None


class TemplateMaker(Protocol):
    """Turns a photo into a template for a model id, or says why it cannot."""

    def model_ids(self) -> dict[str, int]:
        """Model ids this maker can compute, with their template length."""

    def make(self, photo: bytes, model_id: str) -> HubTemplate | str:
        """A template, or a sentence saying why the photo cannot be used."""

    def threshold(self, model_id: str, employees: int) -> float:
        """The kiosk's decision threshold for this model with ``employees`` enrolled (1: a 1:1 check)."""

    def look(self, image: np.ndarray, model_id: str, embed: bool, landmarks: bool) -> FaceLook | None:
        """The presenting face in a video frame (with its 106 landmarks, its embedding: when asked), or None if
        no face."""


class NoTemplateMaker:
    """A hub without a face engine: HR must send ready templates."""

    def model_ids(self) -> dict[str, int]:
        return {}

    def make(self, photo: bytes, model_id: str) -> HubTemplate | str:
        return "this hub has no face model to make templates from photos; send templates instead"

    def threshold(self, model_id: str, employees: int) -> float:
        raise ValueError("this hub has no face model")

    def look(self, image: np.ndarray, model_id: str, embed: bool, landmarks: bool) -> FaceLook | None:
        raise ValueError("this hub has no face model")


class EngineTemplateMaker:
    """The kiosk's own face engine and enrolment rule (enrollment.photos.check_photo), per model pack.

    Model ids are known at once (a hash of each recogniser file); a pack's models are loaded on its
    first photo, so a hub that only receives punches never pays for them.
    """

    def __init__(self, pack_dirs: list[Path | None]) -> None:
        from kiosk.face.config import FaceConfig
        from kiosk.face.pack import resolve_pack
        self._configs = {}
        for pack_dir in pack_dirs:
            cfg = FaceConfig(pack_dir=pack_dir)
            self._configs[resolve_pack(cfg).model_id] = cfg
        self._engines: dict[str, Any] = {}
        self._landmarks: dict[str, Any] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_engines(cls, engines: list[Any]) -> EngineTemplateMaker:
        """A maker over engines already loaded (tests share one engine per session)."""
        maker = cls([])
        for engine in engines:
            maker._configs[engine.model_id] = engine.cfg
            maker._engines[engine.model_id] = engine
        return maker

    def model_ids(self) -> dict[str, int]:
        from kiosk.face.engine import EMBEDDING_DIM
        return {model_id: EMBEDDING_DIM for model_id in self._configs}

    def _engine(self, model_id: str) -> Any:
        from kiosk.face.engine import FaceEngine
        if model_id not in self._engines:
            self._engines[model_id] = FaceEngine.from_config(self._configs[model_id])
        return self._engines[model_id]

    def make(self, photo: bytes, model_id: str) -> HubTemplate | str:
        from enrollment.photos import check_photo
        from kiosk.face.images import ImageRefused, decode_image
        if model_id not in self._configs:
            return f"the hub has no model pack for model {model_id[:12]}"
        try:
            image = decode_image(photo)
        except ImageRefused as exc:
            return f"{exc.reason}: {exc.what}"
        # One photo at a time: the engine already uses every core for one image.
        with self._lock:
            check = check_photo(self._engine(model_id), image, "photo")
        if not check.ok:
            return f"{check.reason}: {check.detail}"
        return HubTemplate(model_id, check.vector, check.quality.score if check.quality else None)

    def look(self, image: np.ndarray, model_id: str, embed: bool, landmarks: bool) -> FaceLook | None:
        """The kiosk's walk-up steps on one frame: detect, choose and, when asked, the 106-point landmarks
        (kiosk.face.landmarks, loaded on first use: only while the liveness check waits for a blink, as at the
        kiosk) and the embedding."""
        from kiosk.face.landmarks import Landmarks106
        with self._lock:
            engine = self._engine(model_id)
            face = engine.choose(engine.detect(image), image.shape)
            if face is None:
                return None
            points = None
            if landmarks:
                if model_id not in self._landmarks:
                    self._landmarks[model_id] = Landmarks106(engine)
                points = np.asarray(self._landmarks[model_id](image, face.bbox), np.float32)
            vector = engine.embed(image, face) if embed else None
        return FaceLook(face.bbox, face.kps, points, vector)

    def threshold(self, model_id: str, employees: int) -> float:
        """The kiosk's rule (kiosk.face.calibration.operating_point) at [match]'s defaults."""
        from kiosk.face.calibration import operating_point
        from kiosk.face.config import MatchConfig
        from kiosk.face.pack import resolve_pack
        cfg = self._configs[model_id]
        return operating_point(resolve_pack(cfg), cfg, MatchConfig(), employees).threshold


def build_template_maker(config) -> TemplateMaker:  # noqa: ANN001 - FacesConfig
    """The hub's template maker for [faces]: the kiosk's own face engine, or none when disabled."""
    if not config.enabled:
        return NoTemplateMaker()
    return EngineTemplateMaker(list(config.model_packs) or [None])
