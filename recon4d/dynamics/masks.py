"""The result type shared by every motion-mask estimator (attention, optical flow).

Conventions: N frames, H x W the model resolution (the network's input size); `masks[n, y, x]`
is True where frame n is moving; `maps` are the per-frame dynamic scores the masks threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class MotionMasks:
    """Per-frame motion masks and the dynamic maps they were thresholded from."""

    masks: np.ndarray  # bool (N, H, W) at model resolution, True = moving
    maps: np.ndarray  # float32 (N, H, W) raw per-frame dynamic maps in [0, 1] at model resolution
    threshold: float  # the value `maps` were compared against (mask = maps > threshold)
    method: str  # which estimator produced them, e.g. "easi3r" or "flow:dis"

    def __post_init__(self) -> None:
        """Check shapes and dtypes once, so consumers can rely on them."""
        if self.masks.ndim != 3 or self.masks.dtype != np.bool_:
            raise ValueError(f"MotionMasks.masks must be bool (N, H, W), got "
                             f"{self.masks.dtype} {self.masks.shape}")
        if self.maps.shape != self.masks.shape:
            raise ValueError(f"MotionMasks.maps shape {self.maps.shape} != masks shape "
                             f"{self.masks.shape}")
