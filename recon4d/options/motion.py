"""Options of the motion masks (`recon4d masks`, `recon4d reconstruct`) and of the video terms of
the alignment (`recon4d reconstruct` on a video)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from recon4d.errors import OptionError
from recon4d.options.choices import ATTENTION_PASSES, FLOW_METHODS, MOTION_CHOICES
from recon4d.options.fields import (
    check_choices,
    is_number,
    option,
    require,
    require_at_least,
)


@dataclass(frozen=True)
class MotionOptions:
    """Motion masks: estimator, optical flow, threshold, attention passes and SAM 2."""

    motion: str = option("auto", "which pixels move: attention = Easi3R's decoder "
                         "cross-attention (the network, or predictions saved with probes), flow "
                         "= MonST3R's optical flow against the camera-induced flow, none = "
                         "treat everything as static (reconstruct only); auto = attention when "
                         "the network runs or the predictions hold probes, else flow",
                         choices=MOTION_CHOICES)
    flow: str = option("dis", "optical flow of the flow masks and of the alignment's flow "
                       "term: dis (OpenCV, no weights) or raft (torchvision, local "
                       "--raft-weights)", choices=FLOW_METHODS)
    raft_weights: str | None = option(None, "--flow raft: local RAFT state-dict file (nothing is "
                                      "downloaded)", metavar="PTH")
    threshold: float = option(0.35, "flow masks: a pixel moves where its dynamic map exceeds "
                              "this (attention picks its own threshold by multi-Otsu)")
    passes: int = option(2, "attention masks: 2 = Easi3R's re-weighted second pass with the "
                         "first pass's masks, 1 = the first pass only", choices=ATTENTION_PASSES,
                         type=int)
    sam2: str | None = option(None, "refine the masks with SAM 2 (extra sam2) from this local "
                              "checkpoint (.pt holding {'model': state dict}; nothing is "
                              "downloaded)", metavar="CKPT")
    sam2_config: str | None = option(None, "--sam2: config name inside the sam2 package "
                                     "(default: from a released checkpoint's file name, else "
                                     "configs/sam2.1/sam2.1_hiera_l.yaml)", metavar="NAME")

    def __post_init__(self) -> None:
        check_choices(self)
        value = self.threshold
        require(is_number(value) and math.isfinite(value) and 0 <= value < 1, MotionOptions,
                "threshold", "must be a number in [0, 1) (dynamic maps lie in [0, 1])", value)
        if self.sam2_config is not None and self.sam2 is None:
            raise OptionError("--sam2-config needs --sam2 CKPT (a local SAM 2 checkpoint)")
        if self.flow == "raft" and self.raft_weights is None:
            raise OptionError("--flow raft needs --raft-weights PTH (a local RAFT state dict; "
                              "nothing is downloaded)")


@dataclass(frozen=True)
class VideoOptions:
    """Video alignment: given masks, MonST3R's flow and smoothness terms, windows."""

    masks: str | None = option(None, "folder of motion masks, one image or .npy per frame in "
                               "frame order (white / non-zero = moving), at the frames' or the "
                               "model's resolution; replaces --motion", metavar="DIR")
    flow_weight: float = option(0.01, "weight of the flow term (ego-motion flow of the static "
                                "pixels against optical flow); 0 = off")
    smooth_weight: float = option(0.0, "weight of the trajectory smoothness term (MonST3R: "
                                  "0.01; off by default as in Easi3R: it raised the camera error "
                                  "several-fold on synthetic videos, docs/algorithms.md)")
    shared_focal: bool = option(True, "one focal per frame instead of one for the video")
    window: int | None = option(None, "align long videos in windows of this many frames "
                                "(half overlapping; default: sized from memory, one piece "
                                "when the video fits)", type=int)

    def __post_init__(self) -> None:
        for name in ("flow_weight", "smooth_weight"):
            value = getattr(self, name)
            require(is_number(value) and math.isfinite(value) and value >= 0, VideoOptions,
                    name, "must be a number >= 0", value)
        require_at_least(self, 2, "window")
