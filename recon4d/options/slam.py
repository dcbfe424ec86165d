"""Options of `recon4d slam`: the method, its networks and frames (`SlamOptions`), the SLAM3R
stream's keyframe stride, windows, retrieval, buffer and output thresholds (`Slam3rOptions`;
defaults are the reference's wild-video ones), and the MASt3R-SLAM stream's tracking, keyframe,
back-end, retrieval and mover settings (`Mast3rSlamOptions`; defaults are MASt3R-SLAM's base
config, algorithms-spec §6 / §8.4), and the live view of a running session (`LiveViewOptions`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from recon4d.options.choices import DEVICES
from recon4d.options.fields import (
    check_choices,
    option,
    require,
    require_at_least,
    require_port,
    require_positive,
)

BUFFER_STRATEGIES = ("reservoir", "fifo")
SLAM_METHODS = ("slam3r", "mast3r")
# geometry: the consistency check of every solve; flow: flow masks and that check; oracle: the
# synthetic scene's true dynamic masks
MOVER_MASKS = ("none", "geometry", "flow", "oracle")
DEFAULT_SIZES = {"slam3r": 224, "mast3r": 512}  # the networks' training resolutions


@dataclass(frozen=True)
class Slam3rOptions:
    """SLAM3R: keyframe stride, I2P windows, scene-frame retrieval, buffer, output thresholds."""

    keyframe_stride: int = option(0, "frames between keyframes; 0 = automatic, chosen by I2P "
                                  "confidence on the first --stride-probe frames")
    stride_probe: int = option(121, "frames buffered to choose the automatic keyframe stride "
                               "(6 x max stride + 1 lets every stride up to 20 be tried)")
    max_stride: int = option(20, "largest keyframe stride the automatic choice tries")
    win_r: int = option(5, "I2P window radius: the frame and up to this many keyframe strides "
                        "on each side")
    initial_winsize: int = option(5, "keyframes of the initial window (fewer on short streams, "
                                  "at least 2)")
    init_conf: float = option(5.0, "mean I2P confidence below which the initial window shrinks "
                              "(down to 3 keyframes)")
    num_scene_frame: int = option(10, "scene frames retrieved from the buffer per registration")
    max_num_register: int = option(10, "most frames registered per L2W call "
                                   "(max(1, min((stride + 1) // 2, this)))")
    conf_thres_i2p: float = option(1.5, "I2P confidence below which local points are zeroed and "
                                   "left out of normalisation")
    conf_thres_l2w: float = option(12.0, "L2W confidence below which world points are left out "
                                   "of the fused cloud")
    update_buffer_intv: int = option(1, "buffer update interval, in keyframe strides")
    buffer_size: int = option(100, "scene frames kept for retrieval (0 = unbounded)")
    buffer_strategy: str = option("reservoir", "which frame leaves a full buffer",
                                  choices=BUFFER_STRATEGIES)
    points_per_frame: int = option(4096, "confident world points of each frame kept for the "
                                   "fused cloud (a random sample)")
    fuse: bool = option(True, "keep SLAM3R's single L2W estimate per point instead of "
                        "averaging it with the frame's local pointmap and its predictions in "
                        "earlier windows")
    seed: int = option(42, "random seed of the stride probe, the reservoir and point sampling")

    def __post_init__(self) -> None:
        check_choices(self)
        require_at_least(self, 0, "keyframe_stride", "buffer_size", "seed")
        require_at_least(self, 1, "max_stride", "win_r", "num_scene_frame", "max_num_register",
                         "update_buffer_intv", "points_per_frame")
        require_at_least(self, 2, "initial_winsize")
        require_at_least(self, 7, "stride_probe")
        require_positive(self, "init_conf", "conf_thres_i2p", "conf_thres_l2w")
        require(self.buffer_size == 0 or self.buffer_size >= self.initial_winsize, Slam3rOptions,
                "buffer_size", "must be 0 or at least --initial-winsize", self.buffer_size)


@dataclass(frozen=True)
class Mast3rSlamOptions:
    """MASt3R-SLAM: tracking, keyframes, back end, retrieval, movers and outputs."""

    weights: str = option("mast3r", "MASt3R checkpoint: a registry name, a .pth file or a "
                          "Hugging Face folder / hf-hub:owner/name")
    retrieval_weights: str | None = option(
        None, "MASt3R retrieval checkpoint (..._trainingfree.pth, its _codebook.pkl beside it; "
        "extra 'retrieval'): ASMK retrieval; default: pooled encoder tokens", metavar="PTH")
    calib: str | None = option(None, "JSON intrinsics at the original resolution ({fx, fy, cx, "
                               "cy}, {\"K\": 3x3} or a 3x3 list): calibrated tracking",
                               metavar="JSON")
    subsample: int = option(1, "use every n-th frame")
    min_valid: float = option(0.05, "tracking is lost (relocalisation starts) below this "
                              "fraction of usable matches")
    keyframe_overlap: float = option(0.333, "a frame becomes a keyframe when its matched or "
                                     "unique matched fraction of the keyframe drops below this")
    edge_min_valid: float = option(0.1, "a retrieved back-end edge is kept when both "
                                   "directions reach this valid match fraction")
    reloc_min_valid: float = option(0.3, "relocalisation succeeds when the candidates reach "
                                    "this valid match fraction")
    retrieval_k: int = option(3, "keyframes retrieved per new keyframe and per relocalisation")
    retrieval_min_score: float | None = option(
        None, "score below which a retrieved keyframe is ignored (default: cosine similarity "
        "0.5 of pooled descriptors; ASMK score 5e-3 with --retrieval-weights)", type=float)
    loop_gap: int = option(5, "retrieved keyframes at least this many keyframes older make "
                           "loop edges (their old endpoints join the solve, see "
                           "--loop-keyframes)")
    window: int = option(10, "newest keyframes the back end moves (older ones are held), so "
                         "the cost per keyframe does not grow with the map")
    loop_keyframes: int = option(5, "most older keyframes a solve also moves: the old endpoints "
                                 "of the window's most recent loop edges")
    anchor_edges: int = option(4, "most edges from each moving keyframe to held ones (its most "
                               "recent) that tie a solve to the held map")
    backend_iters: int = option(10, "most Gauss-Newton iterations of the back end")
    refine_frames: int = option(32, "when a keyframe is made, re-solve the pose of each of "
                                "the last this many frames tracked against the previous "
                                "keyframe against both keyframes (two more decoder runs per "
                                "frame; the written trajectory has the refined poses, the "
                                "streamed ones are the tracked ones); 0 = off")
    movers: str = option("none", "per-frame motion masks kept out of tracking and the map: "
                         "geometry (matches that disagree with the solved pose), flow (optical "
                         "flow against the camera's, plus the geometry check), oracle (the "
                         "synthetic scene's true masks, with --oracle)", choices=MOVER_MASKS)
    cloud_conf: float = option(1.5, "average confidence above which keyframe points enter the "
                               "fused cloud")

    def __post_init__(self) -> None:
        check_choices(self)
        require_at_least(self, 1, "subsample", "retrieval_k", "backend_iters")
        require_at_least(self, 0, "loop_gap", "loop_keyframes", "refine_frames")
        require_at_least(self, 1, "anchor_edges")
        require_at_least(self, 2, "window")
        require_positive(self, "min_valid", "keyframe_overlap", "edge_min_valid",
                         "reloc_min_valid", "cloud_conf")
        for name in ("min_valid", "keyframe_overlap", "edge_min_valid", "reloc_min_valid"):
            require(getattr(self, name) <= 1, Mast3rSlamOptions, name, "must be at most 1",
                    getattr(self, name))


@dataclass(frozen=True)
class LiveViewOptions:
    """Live view: a browser viewer that follows the running session."""

    view: bool = option(False, "serve a live 3D view of the map (static points only), the "
                        "trajectory so far and the current camera while the frames stream "
                        "(needs the extra viewer); the address is printed, the server stops "
                        "when the run ends")
    port: int = option(8080, "port of the live view on 127.0.0.1 (the next free one when "
                       "taken; 0 = any free port)")
    view_rate: float = option(2.0, "most live-view updates per second (the last frame is "
                              "always sent)", metavar="HZ")

    def __post_init__(self) -> None:
        require_port(self)
        require_positive(self, "view_rate")


@dataclass(frozen=True)
class SlamOptions:
    """SLAM: the method, its networks and which frames to use."""

    method: str = option("slam3r", "streaming method", choices=SLAM_METHODS)
    i2p: str = option("slam3r-i2p", "SLAM3R I2P checkpoint: a registry name, a .pth file or a "
                      "Hugging Face folder / hf-hub:owner/name")
    l2w: str = option("slam3r-l2w", "SLAM3R L2W checkpoint (as --i2p)")
    size: int | None = option(None, "model input size (default: 224 for slam3r, 512 for "
                              "mast3r, the networks' training sizes)", type=int)
    device: str | None = option(None, "default: cuda when available, else cpu", choices=DEVICES)
    fps: float | None = option(None, "video: frames per second to sample", type=float)
    num_frames: int | None = option(None, "use at most this many frames (the first ones)",
                                    type=int)
    map_video: bool = option(True, "skip the MP4 of the map growing beside the input (written "
                             "when PyAV is installed)")
    slam3r: Slam3rOptions = dataclasses.field(default_factory=Slam3rOptions)
    mast3r: Mast3rSlamOptions = dataclasses.field(default_factory=Mast3rSlamOptions)
    live: LiveViewOptions = dataclasses.field(default_factory=LiveViewOptions)

    def __post_init__(self) -> None:
        check_choices(self)
        require_at_least(self, 16, "size")
        require(self.size is None or self.size % 16 == 0, SlamOptions, "size",
                "must be a multiple of 16", self.size)
        require_positive(self, "fps")
        require_at_least(self, 1, "num_frames")

    @property
    def model_size(self) -> int:
        """--size, or the method's training size."""
        return DEFAULT_SIZES[self.method] if self.size is None else self.size
