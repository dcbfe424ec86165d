"""Options of `recon4d masks`: which motion-mask estimator and its settings, network, frames."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from recon4d.errors import OptionError
from recon4d.options.motion import MotionOptions
from recon4d.options.pipeline import FrameOptions, NetworkOptions


@dataclass(frozen=True)
class MasksOptions:
    """Every option of `recon4d masks` (recorded in scene.json)."""

    motion: MotionOptions = dataclasses.field(default_factory=MotionOptions)
    network: NetworkOptions = dataclasses.field(default_factory=NetworkOptions)
    frames: FrameOptions = dataclasses.field(default_factory=FrameOptions)

    def __post_init__(self) -> None:
        if self.motion.motion == "none":
            raise OptionError("--motion none: `recon4d masks` estimates motion; choose auto, "
                              "attention or flow")
