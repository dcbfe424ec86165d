"""Options of `recon4d infer` and `recon4d reconstruct`: network, frames, alignment, outputs."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from recon4d.errors import OptionError
from recon4d.options.choices import (
    AUTO_GRAPH_WINDOW,
    CHECKPOINT_HELP,
    DEFAULT_WEIGHTS,
    DEVICES,
    DTYPES,
    GRAPH_HELP,
    PREFILTER_HELP,
    SOLVERS,
)
from recon4d.options.fields import (
    check_choices,
    comma_list,
    is_number,
    option,
    require,
    require_at_least,
    require_model_size,
    require_positive,
)
from recon4d.options.motion import MotionOptions, VideoOptions

ALIGN_METHODS = ("dense", "sparse")  # recon4d.align.global_align(method=...)
SPARSE_TREES = ("hclust-ward", "mst")  # recon4d.align.sparse.tree
SPARSE_LEVELS = ("coarse", "refine", "refine+depth")  # recon4d.align.sparse.run.LEVELS
SPARSE_SCHEDULES = ("fast", "reference")  # recon4d.align.sparse.solve.SCHEDULES


@dataclass(frozen=True)
class NetworkOptions:
    """Network: checkpoint, input size, pair graph, device and batching."""

    weights: str = option(DEFAULT_WEIGHTS, f"checkpoint: {CHECKPOINT_HELP}",
                          flag=("--weights", "--model"), metavar="CKPT")
    size: int | None = option(None, "model input size, 512 or 224 (default: from the "
                              "checkpoint)", type=int)
    graph: str = option("auto", f"pair graph: {GRAPH_HELP}; auto (default) = complete up to "
                        f"{2 * AUTO_GRAPH_WINDOW + 1} frames, else swin-{AUTO_GRAPH_WINDOW}")
    prefilter: str | None = option(None, PREFILTER_HELP)
    symmetrize: bool = option(True, "do not add the swapped copy (j, i) of every pair (i, j)")
    batch_size: int | None = option(None, "pairs per network call (default: sized from free "
                                    "memory)", type=int)
    device: str | None = option(None, "default: cuda when available, else cpu", choices=DEVICES)
    dtype: str = option("fp32", "bf16/fp16 autocast of the network trunk on CUDA; bf16 also on "
                        "CPUs with native bf16 (AMX-BF16, AVX512-BF16, Arm BF16); default fp32 "
                        "(golden-exact)", choices=DTYPES)
    retrieval_weights: str | None = option(
        None, "MASt3R retrieval checkpoint (a local ..._trainingfree.pth with its "
        "_codebook.pkl beside it) scoring image similarity for --graph retrieval-Na-k; "
        "default: pooled encoder tokens of the pair network", metavar="PTH")

    def __post_init__(self) -> None:
        check_choices(self)
        require_model_size(self)
        require_at_least(self, 1, "batch_size")


@dataclass(frozen=True)
class FrameOptions:
    """Frames: which frames of a video or folder to use."""

    fps: float | None = option(None, "video: frames per second to sample", type=float)
    num_frames: int | None = option(None, "use at most this many frames (the first ones)",
                                    type=int)

    def __post_init__(self) -> None:
        require_positive(self, "fps")
        require_at_least(self, 1, "num_frames")


@dataclass(frozen=True)
class AlignOptions:
    """Alignment: method, solver, confidence threshold and known intrinsics."""

    align: str = option("dense", "dense (DUSt3R's global alignment of whole pointmaps) or sparse "
                        "(MASt3R's, from descriptor matches; needs a MASt3R checkpoint)",
                        choices=ALIGN_METHODS)
    sparse_tree: str = option("hclust-ward", "sparse: kinematic tree of the cameras",
                              choices=SPARSE_TREES)
    sparse_level: str = option("refine+depth", "sparse: coarse (3D matches only), refine (+ 2D "
                               "reprojection, intrinsics) or refine+depth (+ anchor depths)",
                               choices=SPARSE_LEVELS)
    sparse_schedule: str = option("fast", "sparse: fast (chained Procrustes start, L-BFGS) or "
                                  "reference (MASt3R's Adam 300 + 300)",
                                  choices=SPARSE_SCHEDULES)
    shared_intrinsics: bool = option(False, "sparse: one focal and principal point for all "
                                     "frames")
    match_cache: str | None = option(None, "sparse: folder caching matches by descriptor "
                                     "content", metavar="DIR")
    solver: str = option("fast", "fast or adam (the originals' 300-step schedule)",
                         choices=SOLVERS)
    niter: int | None = option(None, "solver iterations (default: the solver's own; 0 = "
                               "initialisation only)", type=int)
    tsdf: float = option(0.0, "TSDF depth refinement after the alignment (MASt3R's): the "
                         "truncation distance in scene units; 0 = off", type=float)
    conf_threshold: float = option(3.0, "keep points with confidence above this (confidences "
                                   "start at 1)")
    focal: float | None = option(None, "known focal length in pixels of the original images "
                                 "(model-input pixels with --predictions), kept fixed",
                                 type=float)
    calib: str | None = option(None, "JSON calibration at the original resolution (model-input "
                               "pixels with --predictions): {fx, fy, cx, cy}, {\"K\": 3x3} or a "
                               "3x3 list, kept fixed", metavar="JSON")

    def __post_init__(self) -> None:
        check_choices(self)
        require_at_least(self, 0, "niter")
        threshold = self.conf_threshold
        require(is_number(threshold) and math.isfinite(threshold) and threshold >= 1,
                 AlignOptions, "conf_threshold", "must be a number >= 1 (confidences start at 1)",
                 threshold)
        require_positive(self, "focal")
        require(is_number(self.tsdf) and math.isfinite(self.tsdf) and self.tsdf >= 0,
                AlignOptions, "tsdf", "must be a number >= 0 (0 = off)", self.tsdf)
        if self.focal is not None and self.calib is not None:
            raise OptionError("give either --focal or --calib, not both")


@dataclass(frozen=True)
class OutputOptions:
    """Outputs: which files to write."""

    formats: tuple[str, ...] | None = option(None, "comma-separated subset of the output "
                                             "formats (default: all)", type=comma_list)

    def __post_init__(self) -> None:
        if self.formats is not None:
            object.__setattr__(self, "formats", tuple(self.formats))
            if not self.formats:
                raise OptionError("--formats: no format given")


@dataclass(frozen=True)
class InferOptions:
    """Every option of `recon4d infer`: what to keep, network and frames."""

    probes: bool = option(False, "also keep Easi3R's attention probes (per-pair attention maps "
                          "and encoder tokens) for `recon4d masks --predictions`")
    network: NetworkOptions = dataclasses.field(default_factory=NetworkOptions)
    frames: FrameOptions = dataclasses.field(default_factory=FrameOptions)


@dataclass(frozen=True)
class ReconstructOptions:
    """Every option of `recon4d reconstruct` (recorded in scene.json)."""

    network: NetworkOptions = dataclasses.field(default_factory=NetworkOptions)
    frames: FrameOptions = dataclasses.field(default_factory=FrameOptions)
    motion: MotionOptions = dataclasses.field(default_factory=MotionOptions)
    video: VideoOptions = dataclasses.field(default_factory=VideoOptions)
    alignment: AlignOptions = dataclasses.field(default_factory=AlignOptions)
    outputs: OutputOptions = dataclasses.field(default_factory=OutputOptions)

    def __post_init__(self) -> None:
        # a retrieval graph pairs images however far apart: its pairs fit in no window
        require(self.video.window is None or not self.network.graph.startswith("retrieval"),
                VideoOptions, "window", f"cannot split the pairs of --graph "
                f"{self.network.graph} (image similarity pairs frames however far apart); "
                "omit --window or use a swin/logwin graph", self.video.window)
