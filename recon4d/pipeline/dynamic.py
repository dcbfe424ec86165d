"""The dynamic (4D) path of `reconstruct`: which frames move, optical flow, the video terms.

A video or a numbered frame folder takes this path by default (`--motion auto`); an unordered
image set, fewer than 3 frames or `--motion none` keep the static path. The motion masks come
from the network's attention (Easi3R's two passes), from optical flow against the pair-induced
flow (MonST3R), or from a folder the user gives (`--masks`); they leave the multi-view term of
the alignment, and the flow and smoothness terms join it (`recon4d.align.VideoTerms`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from recon4d.align.video import VideoTerms
from recon4d.dynamics.masks import MotionMasks
from recon4d.dynamics.optical_flow import optical_flow
from recon4d.errors import OptionError
from recon4d.io import FrameSource
from recon4d.options import MotionOptions, VideoOptions

logger = logging.getLogger(__name__)

MIN_VIDEO_FRAMES = 3  # attention statistics need the other frames of each frame
FLOW_STRIDE = 2  # the flow term samples every 2nd pixel of every 2nd row (float16)
FLOW_CHUNK = 32  # edges per optical-flow call: bounds the float32 full-resolution fields


@dataclass
class Motion:
    """What moves: the estimator used ("attention", "flow", "given" or "none") and its masks on
    the model grid (None on the static path)."""

    method: str
    masks: np.ndarray | None = None  # (N, H, W) bool, True = moving
    estimate: MotionMasks | None = None  # the estimator's output (maps, threshold), if any
    record: dict[str, Any] = field(default_factory=dict)  # scene.json "motion"


def masks_given(motion: MotionOptions, video: VideoOptions) -> bool:
    """Whether the user gave the masks (`--masks`), which then replace any estimator."""
    if video.masks is not None and motion.motion not in ("auto", "none"):
        raise OptionError(f"--masks replaces --motion {motion.motion}: give one of them")
    return video.masks is not None


def frames_method(motion: MotionOptions, video: VideoOptions, source: FrameSource) -> str:
    """The estimator for frames run through the network: given masks win; auto takes the
    static path ("none") for unordered image sets and fewer than 3 frames, else attention."""
    if masks_given(motion, video):
        return "given"
    if motion.motion != "auto":
        return motion.motion
    if not source.ordered:
        logger.info("%s: an unordered image set (no video, no numbered frames): static path",
                    source.input)
        return "none"
    if len(source) < MIN_VIDEO_FRAMES:
        logger.info("%s: %d frames, fewer than %d: static path", source.input, len(source),
                    MIN_VIDEO_FRAMES)
        return "none"
    return "attention"


def video_flows(images: np.ndarray, edges: np.ndarray, motion: MotionOptions,
                stride: int = FLOW_STRIDE, progress: Any = None) -> np.ndarray:
    """(E, ceil(H/s), ceil(W/s), 2) float16 optical flow i -> j of every edge, at stride `s`,
    computed `FLOW_CHUNK` edges at a time (the layout `VideoTerms.flows` takes)."""
    height, width = images.shape[1:3]
    out = np.empty((len(edges), -(-height // stride), -(-width // stride), 2), np.float16)
    for start in range(0, len(edges), FLOW_CHUNK):
        chunk = edges[start:start + FLOW_CHUNK]
        flow = optical_flow(images, chunk, motion.flow, raft_weights=motion.raft_weights)
        out[start:start + len(chunk)] = flow[:, ::stride, ::stride]
        if progress is not None:
            progress.update(len(chunk))
    return out


def video_terms(masks: np.ndarray, flows: np.ndarray | None, video: VideoOptions) -> VideoTerms:
    """The alignment's video terms from the options (MonST3R's video-demo defaults)."""
    return VideoTerms(dynamic_masks=masks, flows=flows, flow_weight=video.flow_weight,
                      smooth_weight=video.smooth_weight, shared_focal=video.shared_focal)
