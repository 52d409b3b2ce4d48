"""FaceEngine: the model stages — detect, choose, quality, align + embed — on onnxruntime.

Each stage takes and returns plain data, so it can be timed and tested alone::

    engine = FaceEngine.from_config(cfg.face, cfg.quality)
    faces = engine.detect(frame)                 # list[Face]: bbox, kps (5x2), det_score
    face = engine.choose(faces, frame.shape)     # the person at the kiosk, or None
    report = engine.assess_quality(frame, face)  # QualityReport(ok, reasons, metrics)
    vector = engine.embed(frame, face)           # float32 (512,), L2-normalised

``detect`` is one detector pass (camera frames); ``detect_photo`` adds the retries a still photo
may need: a larger detector input for a small face in a big picture, and a padded border for a
tight ID-style crop, whose face is too large for the detector's anchors; and it levels each face
found as the frame path does (``levelled``); ``photo_face`` chooses a photo's presenting face among the faces
as found and levels that one alone. ``detect_region`` looks
only around a face followed from the previous frame (cheap, and sharper landmarks), or that region
turned upright by the face's landmarks (``turned``: a head tilted sideways); ``detect_rolled`` is one pass over a whole
frame turned by a given angle, for a tilted head the upright pass misses; ``levelled`` gives a face landmarks that show
its tilt when the detector's own barely do (YuNet), before it is aligned.
"""

from __future__ import annotations

import logging
import math

import cv2
import numpy as np
import onnxruntime as ort

from kiosk.base.errors import ModelError
from kiosk.face import quality
from kiosk.face.config import FaceConfig, PickPolicy, QualityConfig
from kiosk.face.insightface_models import ArcFace, Scrfd
from kiosk.face.pack import ModelMemory, ModelPack, resolve_pack
from kiosk.face.sessions import KeptGraphs
from kiosk.face.types import Face, QualityReport

log = logging.getLogger(__name__)

EMBEDDING_DIM = 512
ALIGNED_SIZE_PX = 112
# insightface's ArcFace template: where the five landmarks land in the 112x112 aligned crop.
ARCFACE_DST = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                        [41.5493, 92.3655], [70.7299, 92.2041]], dtype=np.float64)
OPT_LEVELS = {
    "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
    "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
    "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
}
# A region searched around a followed face, in face widths, and the least region side in px.
REGION_SCALE = 2.2
REGION_MIN_PX = 96
# A followed face tilted sideways (roll) by more than this that the upright region pass loses is looked for
# once more in the region turned upright: the detector, trained on mostly upright faces, loses a face rolled
# 30 degrees 3 times in 4 (at 40 px between the eyes, full frame at 160 px).
REGION_ROLL_MIN_DEG = 10.0


def session_options(cfg: FaceConfig) -> ort.SessionOptions:
    """onnxruntime options from [face]: threads, spinning, graph optimisation."""
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = cfg.threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = OPT_LEVELS[cfg.graph_optimization]
    opts.log_severity_level = 3
    spin = "1" if cfg.spinning else "0"
    opts.add_session_config_entry("session.intra_op.allow_spinning", spin)
    opts.add_session_config_entry("session.inter_op.allow_spinning", spin)
    return opts


def load_model(path, role: str, pack: ModelPack, opts: ort.SessionOptions, model_class: type,  # noqa: ANN001, ANN201
               graphs: KeptGraphs | None = None):
    """One model of an insightface-layout pack (kiosk.face.insightface_models) from an explicit file, or a
    ModelError naming the file; with ``graphs``, from its kept optimised graph (kiosk.face.sessions)."""
    if not path.is_file():
        raise ModelError(f"the {role} model file {path} is missing", fix=pack.fix)
    try:
        return model_class(path, opts, graphs)
    except ValueError:  # a valid ONNX file of another kind of model
        raise ModelError(f"{path} is not a face {role} model", fix=pack.fix) from None
    except Exception as exc:  # onnx/onnxruntime raise many unrelated types for a damaged file
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"the {role} model file {path} is damaged or not an ONNX model ({first})",
                         fix=pack.fix) from None


def load_opencv_zoo(pack: ModelPack, opts: ort.SessionOptions, graphs: KeptGraphs | None = None):  # noqa: ANN201
    """The OpenCV Zoo pack's detector and recogniser (kiosk.face.opencv_zoo), or a ModelError naming the file."""
    from kiosk.face.opencv_zoo import SFace, YuNet

    models = []
    for cls, path, role in ((YuNet, pack.detector, "detector"), (SFace, pack.recognizer, "recognizer")):
        try:
            models.append(cls(path, opts, graphs))
        except Exception as exc:  # onnx/onnxruntime raise many unrelated types for a damaged file
            first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            raise ModelError(f"the {role} model file {path} is damaged or not the OpenCV Zoo model ({first})",
                             fix=pack.fix) from None
    return models[0], models[1]


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (Umeyama) mapping ``src`` points onto ``dst``, as insightface does."""
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(cov) < 0:
        d[-1] = -1
    rot = u @ np.diag(d) @ vt
    scale = (s * d).sum() / src_c.var(0).sum()
    matrix = np.zeros((2, 3))
    matrix[:, :2] = scale * rot
    matrix[:, 2] = dst_mean - scale * rot @ src_mean
    return matrix


def as_bgr(image: np.ndarray) -> np.ndarray:
    """Frames and photos as 3-channel uint8 BGR (grey and BGRA inputs are converted)."""
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def roll_deg(face: Face) -> float:
    """How far the head is tilted sideways: the angle of the line from the left to the right eye, in degrees
    (positive: the right eye, as seen in the image, is lower)."""
    (lx, ly), (rx, ry) = face.kps[0], face.kps[1]
    return math.degrees(math.atan2(float(ry - ly), float(rx - lx)))


def mapped(face: Face, matrix: np.ndarray) -> Face:
    """A face found in an image warped by the 2x3 ``matrix``, in the coordinates of the original image: the
    landmarks mapped exactly, the box the same size around its mapped centre (still upright, as boxes are)."""
    back = cv2.invertAffineTransform(matrix)
    kps = face.kps.astype(np.float64) @ back[:, :2].T + back[:, 2]
    cx, cy = np.array(face.center) @ back[:, :2].T + back[:, 2]
    w, h = face.width / 2, face.height / 2
    return Face(np.array([cx - w, cy - h, cx + w, cy + h], np.float32), kps.astype(np.float32), face.det_score)


def region_side(around: Face) -> float:
    """The side in px of the square region a region pass searches around a face."""
    return max(REGION_MIN_PX, REGION_SCALE * max(around.width, around.height))


def relative_size(face: Face, reference: Face) -> float:
    """How large ``face`` looks next to ``reference``: the ratio of their box areas."""
    return (face.width * face.height) / max(reference.width * reference.height, 1e-6)


class FaceEngine:
    """The loaded models of one pack and the stage methods (see the module docstring)."""

    def __init__(self, pack: ModelPack, cfg: FaceConfig, quality_cfg: QualityConfig,
                 graphs: KeptGraphs | None = None) -> None:
        self.pack = pack
        self.cfg = cfg
        self.quality_cfg = quality_cfg
        self.graphs = graphs
        opts = session_options(cfg)
        if pack.kind == "opencv_zoo":
            self._det, self._rec = load_opencv_zoo(pack, opts, graphs)
        else:
            self._det = load_model(pack.detector, "detector", pack, opts, Scrfd, graphs)
            self._rec = load_model(pack.recognizer, "recognizer", pack, opts, ArcFace, graphs)
        if not self._det.use_kps:
            raise ModelError(f"detector {pack.detector} gives no facial landmarks (needed for alignment)",
                             fix="Use an SCRFD detector with keypoints (*_bnkps / det_*.onnx).")
        if tuple(self._rec.input_size) != (ALIGNED_SIZE_PX, ALIGNED_SIZE_PX) or \
                self._rec.output_shape[-1] != EMBEDDING_DIM:
            raise ModelError(f"recognizer {pack.recognizer} takes {self._rec.input_size} faces and gives "
                             f"{self._rec.output_shape[-1]} numbers; the kiosk needs 112x112 -> 512 (ArcFace)",
                             fix=pack.fix)
        self.model_id = pack.model_id
        log.info("face models: %s + %s (model id %s), %d thread(s)", pack.detector.name,
                 pack.recognizer.name, self.model_id[:12], cfg.threads)

    @classmethod
    def from_config(cls, cfg: FaceConfig, quality_cfg: QualityConfig | None = None,
                    memory: ModelMemory | None = None, graphs: KeptGraphs | None = None) -> FaceEngine:
        """Resolve the pack named by [face] and load it (no download, ever); with ``memory`` (the kiosk's
        store) the model id is taken from it while the recogniser file is unchanged (kiosk.face.pack), with
        ``graphs`` the sessions from the graphs optimised at an earlier start (kiosk.face.sessions)."""
        return cls(resolve_pack(cfg, memory), cfg, quality_cfg or QualityConfig(), graphs)

    def warm_up(self) -> None:
        """Run the detector once at each configured size and the recogniser once, on blank images: a benchmark's
        first timed frame is then not a first run. The daemon does not: it cost ~0.05 CPU-s at every start and made
        the first frames after it only a few ms cheaper (README, start-up cost)."""
        blank = np.zeros((480, 640, 3), np.uint8)
        cfg = self.cfg
        for size in {cfg.det_size_px, cfg.idle_det_size_px, cfg.track_det_size_px, cfg.search_det_size_px} - {0}:
            self.detect(blank, size=size)
        self._rec.get_feat(np.zeros((ALIGNED_SIZE_PX, ALIGNED_SIZE_PX, 3), np.uint8))

    # -- detect ---------------------------------------------------------------

    def detect(self, frame: np.ndarray, size: int | None = None, min_score: float | None = None) -> list[Face]:
        """All faces in one detector pass at ``size`` (default det_size_px), most confident first."""
        size = size or self.cfg.det_size_px
        thresh = self.cfg.det_score_min if min_score is None else min_score
        boxes, kpss = self._det.detect(as_bgr(frame), input_size=(size, size), det_thresh=thresh)
        return [Face(boxes[i, :4].astype(np.float32), kpss[i].astype(np.float32), float(boxes[i, 4]))
                for i in range(boxes.shape[0])]

    def detect_photo(self, image: np.ndarray) -> list[Face]:
        """Faces in a still photo, retrying with a larger input and then a padded border if none; each with
        landmarks that follow a tilted head (``levelled``), as the frame path aligns it. For a caller that uses
        every face; one that uses only the presenting face asks ``photo_face``, which levels that one alone."""
        image = as_bgr(image)
        return [self.levelled(image, face)[0] for face in self._found_in_photo(image)]

    def photo_face(self, image: np.ndarray, policy: PickPolicy | None = None) -> tuple[Face | None, list[Face]]:
        """The presenting face of a still photo, levelled, and the photo's faces with it in its place (the
        others as detected, not levelled: to count them, ``crowded``): the one rule for a photo's face.

        The face is chosen among the faces as detected, then levelled: ``choose`` reads only the boxes, which
        ``levelled`` keeps, so it is the face ``choose(detect_photo(image))`` gives, without the region passes
        for every other face (with YuNet two per face: check_photo on a photo of 24 faces 16 ms CPU, not 204)."""
        image = as_bgr(image)
        faces = self._found_in_photo(image)
        chosen = self.choose(faces, image.shape, policy)
        if chosen is None:
            return None, faces
        face = self.levelled(image, chosen)[0]
        return face, [face if f is chosen else f for f in faces]

    def _found_in_photo(self, image: np.ndarray) -> list[Face]:
        """A still photo's faces as the detector gives them (``detect_photo``, ``photo_face``)."""
        faces = self.detect(image)
        if faces:
            return faces
        h, w = image.shape[:2]
        retry = self.cfg.retry_det_score_min
        if max(h, w) > 2 * self.cfg.det_size_px and self.cfg.photo_det_size_px > self.cfg.det_size_px:
            faces = self.detect(image, size=self.cfg.photo_det_size_px, min_score=retry)
            if faces:
                return faces
        pad = int(round(max(h, w) * self.cfg.pad_ratio))
        if pad == 0:
            return []
        padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))
        return [f.shifted(-pad, -pad) for f in self.detect(padded)]

    def detect_rolled(self, frame: np.ndarray, degrees: float, size: int | None = None,
                      min_score: float | None = None) -> list[Face]:
        """All faces in one pass over the frame turned ``degrees`` about its centre (positive:
        counter-clockwise, which levels a head whose right eye is lower), in the frame's coordinates."""
        h, w = frame.shape[:2]
        matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, 1.0)
        turned = cv2.warpAffine(as_bgr(frame), matrix, (w, h), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_REPLICATE)
        return [mapped(f, matrix) for f in self.detect(turned, size=size, min_score=min_score)]

    def detect_region(self, frame: np.ndarray, around: Face, size: int | None = None,
                      turned: bool = False) -> list[Face]:
        """Faces in a square region around ``around`` (a face from the previous frame); ``turned``: the region
        turned upright by the landmarks of ``around`` (a head tilted sideways), found faces mapped back."""
        h, w = frame.shape[:2]
        cx, cy = around.center
        side = region_side(around)
        size = size or self.cfg.track_det_size_px
        if turned:
            return self._region_turned(frame, around, roll_deg(around), size)
        x1, y1 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
        x2, y2 = int(min(w, cx + side / 2)), int(min(h, cy + side / 2))
        if x2 - x1 < 16 or y2 - y1 < 16:
            return []
        crop = frame[y1:y2, x1:x2]
        return [f.shifted(x1, y1) for f in self.detect(crop, size=size)]

    def _region_turned(self, frame: np.ndarray, around: Face, degrees: float, size: int) -> list[Face]:
        """Faces in the square region around ``around`` turned ``degrees`` (counter-clockwise) about its centre,
        mapped back to the frame; what lies outside the frame is black, as if cut off."""
        cx, cy = around.center
        side = region_side(around)
        matrix = cv2.getRotationMatrix2D((cx, cy), degrees, 1.0)
        matrix[:, 2] += (side / 2 - cx, side / 2 - cy)
        n = int(round(side))
        region = cv2.warpAffine(as_bgr(frame), matrix, (n, n), flags=cv2.INTER_LINEAR,
                                borderMode=cv2.BORDER_CONSTANT, borderValue=(0, 0, 0))
        return [mapped(f, matrix) for f in self.detect(region, size=size)]

    def levelled(self, frame: np.ndarray, face: Face) -> tuple[Face, tuple[str, ...]]:
        """``face`` with landmarks that show how far the head is tilted sideways, for aligning it, and the
        detector passes that cost (named as FrameResult.passes). The one rule for both paths: the frame path
        (``kiosk.face.walkup``) calls it on a face about to be judged and embedded, ``photo_face`` on a photo's
        chosen face (enrolment, the hub's photos, ``kiosk identify``, ``kiosk bench accuracy``) and
        ``detect_photo`` on every face of a photo.

        SCRFD's landmarks follow a tilted head, so ``face`` is returned as it is. YuNet's barely do
        (``kps_follow_roll`` False): in a region pass at 160 px a head rolled 30 degrees gets landmarks rolled
        about 4 (in a photo at 320 px, about 17), the five-point alignment leaves the face tilted and SFace's
        score falls (mean 0.29-0.38 against 0.68 level on ../shared/faces). In a picture turned so the head is
        upright its landmarks are right, so the region around ``face`` is looked at once more turned by
        +``face.search_roll_deg`` and once by -``face.search_roll_deg`` (at ``face.track_det_size_px``), and the
        landmarks and score of the most confident of the three detections of this face are kept. The box stays
        the one found upright: a box is upright in the frame, and one found turned is only carried back at its
        size (``mapped``), which for a face filling the frame reaches past its edge and would be refused as cut
        off."""
        turn = self.cfg.search_roll_deg
        if self._det.kps_follow_roll or not turn:
            return face, ()
        best, passes = face, []
        for degrees in (turn, -turn):
            passes.append(f"region{degrees:+g}")
            for found in self._region_turned(frame, face, degrees, self.cfg.track_det_size_px):
                x, y = found.center
                inside = face.bbox[0] <= x <= face.bbox[2] and face.bbox[1] <= y <= face.bbox[3]
                if inside and found.det_score > best.det_score:
                    best = found
        return Face(face.bbox, best.kps, best.det_score), tuple(passes)

    # -- choose ---------------------------------------------------------------

    def choose(self, faces: list[Face], frame_shape: tuple[int, ...], policy: PickPolicy | None = None) -> Face | None:
        """The face of the person presenting: largest, nearest the centre, or both (the [face] pick)."""
        if not faces:
            return None
        policy = policy or self.cfg.pick
        h, w = frame_shape[:2]

        def offset2(face: Face) -> float:
            cx, cy = face.center
            return (cx - w / 2) ** 2 + (cy - h / 2) ** 2

        if policy == "center":
            return min(faces, key=offset2)
        if policy == "largest":
            return max(faces, key=lambda f: f.width * f.height)
        # insightface's rule: area, with extra weight on being central.
        return max(faces, key=lambda f: f.width * f.height - 2.0 * offset2(f))

    def crowded(self, faces: list[Face], chosen: Face) -> bool:
        """Whether another face is nearly as large as the chosen one: several people presenting. A much
        smaller face (a bystander in a news photo, someone behind in the queue) is background."""
        return any(f is not chosen and relative_size(f, chosen) >= self.cfg.crowd_face_ratio for f in faces)

    # -- quality, align, embed -------------------------------------------------

    def align(self, frame: np.ndarray, face: Face) -> np.ndarray:
        """The 112x112 crop the recogniser was trained on (five-point similarity alignment)."""
        matrix = similarity_transform(face.kps.astype(np.float64), ARCFACE_DST)
        return cv2.warpAffine(as_bgr(frame), matrix, (ALIGNED_SIZE_PX, ALIGNED_SIZE_PX), borderValue=0.0)

    def assess_quality(self, frame: np.ndarray, face: Face, walkup: bool = False,
                       aligned: np.ndarray | None = None) -> QualityReport:
        """The quality gate with the [quality] thresholds (``walkup``: a walk-up frame's, else enrolment's);
        ``aligned``: the face's crop when the caller has aligned it already (to embed it too)."""
        aligned = self.align(frame, face) if aligned is None else aligned
        return quality.assess(frame, face, aligned, self.quality_cfg, walkup)

    def embed(self, frame: np.ndarray, face: Face) -> np.ndarray:
        """The face's L2-normalised 512-d embedding (float32)."""
        return self.embed_aligned(self.align(frame, face))

    def embed_aligned(self, aligned: np.ndarray) -> np.ndarray:
        """Embedding of an already aligned 112x112 BGR crop (a dark one brightened first: quality.lit)."""
        vec = np.asarray(self._rec.get_feat(quality.lit(aligned, self.quality_cfg)), dtype=np.float32).ravel()
        norm = float(np.linalg.norm(vec))
        if not np.isfinite(norm) or norm == 0:
            raise ModelError("the recognizer returned an empty embedding", fix=self.pack.fix)
        return vec / norm
