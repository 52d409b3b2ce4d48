"""The one rule for a face template vector from outside (HR, a kiosk, a file): finite and normalisable."""

from __future__ import annotations

import numpy as np

from kiosk.base.errors import InvalidInput

# Below this length a vector is noise, not a direction: normalising it would blow rounding errors up.
MIN_NORM = 1e-6


def unit_vector(values: object, dim: int | None = None, what: str = "template") -> np.ndarray:
    """``values`` as an L2-normalised float32 vector, or InvalidInput saying what is wrong with it.

    Every value must be finite once stored as float32 (1e308 is not), and the vector must have a length
    a float32 can hold and divide by (not all zeros, no overflow), so a stored template is never NaN.
    """
    try:
        vec = np.asarray(values, dtype=np.float64).ravel()
    except (TypeError, ValueError):
        raise InvalidInput(f"{what} is not a list of numbers",
                           fix="Send the vector as the model produced it.") from None
    if dim is not None and vec.size != dim:
        raise InvalidInput(f"{what} has {vec.size} values; this model's templates have {dim}",
                           fix="Send the vector exactly as the model produced it.")
    with np.errstate(over="ignore", invalid="ignore"):
        as_f32 = vec.astype(np.float32)
    if not np.all(np.isfinite(as_f32)):
        raise InvalidInput(f"{what} holds values that are not finite 32-bit numbers (NaN, infinity or beyond 3.4e38)",
                           fix="Send the vector exactly as the model produced it.")
    norm = float(np.linalg.norm(as_f32.astype(np.float64)))
    if not np.isfinite(norm) or norm < MIN_NORM:
        raise InvalidInput(f"{what} is all zeros (or too short to normalise)",
                           fix="Send a real face template: its values are not all zero.")
    unit = (as_f32.astype(np.float64) / norm).astype(np.float32)
    if not np.all(np.isfinite(unit)):
        raise InvalidInput(f"{what} cannot be normalised", fix="Send the vector exactly as the model produced it.")
    return unit
