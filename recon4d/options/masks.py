"""Options of `recon4d masks`: which motion-mask estimator, its settings, network and frames."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from recon4d.errors import OptionError
from recon4d.options.choices import ATTENTION_PASSES, FLOW_METHODS, MOTION_METHODS
from recon4d.options.fields import check_choices, is_number, option, require
from recon4d.options.pipeline import FrameOptions, NetworkOptions


@dataclass(frozen=True)
class MasksOptions:
    """Motion masks: estimator, optical flow, threshold and attention passes."""

    motion: str = option("attention", "attention = Easi3R's decoder cross-attention (needs the "
                         "network or a predictions file with probes; not with --oracle), flow = "
                         "MonST3R's optical flow against the camera-induced flow",
                         choices=MOTION_METHODS)
    flow: str = option("dis", "--motion flow: optical flow, dis (OpenCV, no weights) or raft "
                       "(torchvision, local --raft-weights)", choices=FLOW_METHODS)
    raft_weights: str | None = option(None, "--flow raft: local RAFT state-dict file (nothing is "
                                      "downloaded)", metavar="PTH")
    threshold: float = option(0.35, "--motion flow: a pixel moves where its dynamic map exceeds "
                              "this (attention picks its own threshold by multi-Otsu)")
    passes: int = option(2, "--motion attention: 2 = Easi3R's re-weighted second pass with the "
                         "first pass's masks, 1 = the first pass only", choices=ATTENTION_PASSES,
                         type=int)
    network: NetworkOptions = dataclasses.field(default_factory=NetworkOptions)
    frames: FrameOptions = dataclasses.field(default_factory=FrameOptions)

    def __post_init__(self) -> None:
        check_choices(self)
        value = self.threshold
        require(is_number(value) and math.isfinite(value) and 0 <= value < 1, MasksOptions,
                "threshold", "must be a number in [0, 1) (dynamic maps lie in [0, 1])", value)
        if self.flow == "raft" and self.raft_weights is None:
            raise OptionError("--flow raft needs --raft-weights PTH (a local RAFT state dict; "
                              "nothing is downloaded)")
