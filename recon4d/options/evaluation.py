"""Options of `recon4d eval`: metric groups, alignments, depth protocol, caps and tolerances."""

from __future__ import annotations

from dataclasses import dataclass

from recon4d.options.choices import (
    BOUNDARY_TOLERANCE,
    DEPTH_ALIGN_MODES,
    DEPTH_PROTOCOLS,
    FIT_SPACES,
    GEOMETRIES,
    METRIC_GROUPS,
    POSE_ALIGN_MODES,
    RESIZE_METHODS,
    SCALE_SHIFT_FITS,
)
from recon4d.options.fields import (
    check_choices,
    comma_list,
    is_number,
    option,
    require,
    require_at_least,
    require_positive,
)

DEFAULT = "default"  # max_depth: the benchmark's usual cap


def max_depth_value(text: str) -> float | str | None:
    """Command-line value of max_depth: `default` (the benchmark's cap), `none` (no cap) or a
    positive number (ValueError otherwise)."""
    if text.lower() in (DEFAULT, "none"):
        return None if text.lower() == "none" else DEFAULT
    value = float(text)
    if not value > 0:
        raise ValueError(f"max depth must be positive, 'none' or 'default', got {text!r}")
    return value


@dataclass(frozen=True)
class EvalOptions:
    """Settings of `evaluate` (the flags of `recon4d eval`)."""

    metrics: tuple[str, ...] = option(METRIC_GROUPS, "metric groups to compute",
                                      choices=METRIC_GROUPS, type=comma_list)
    align: str = option("sim3", "trajectory alignment before the pose metrics",
                        choices=POSE_ALIGN_MODES)
    delta: int = option(1, "RPE frame offset")
    all_pairs: bool = option(True, "RPE on pairs (0,d),(d,2d),... instead of all (i,i+d)",
                             flag="--consecutive-pairs")
    max_dt: float = option(0.01, "timestamp association tolerance in seconds")
    depth_align: str = option("median", "depth alignment to the ground truth",
                              choices=DEPTH_ALIGN_MODES)
    depth_fit: str = option("l1", "scale_shift objective (reference = the reference's Adam run)",
                            choices=SCALE_SHIFT_FITS)
    depth_space: str = option("depth", "space of the depth alignment fit", choices=FIT_SPACES)
    depth_protocol: str = option("monst3r", "monst3r: the published depth protocol; robust: "
                                 "clip aligned depths to the cap, median over positive depths",
                                 choices=DEPTH_PROTOCOLS)
    max_depth: float | str | None = option(DEFAULT, "depth cap: a number, 'none', or 'default' "
                                           "(Sintel/Bonn 70)", type=max_depth_value)
    resize: str = option("bicubic", "resampling of predicted depth to the ground-truth size",
                         choices=RESIZE_METHODS)
    geometry: str = option("resize", "prediction covers the whole GT image (resize) or its "
                           "centre crop", choices=GEOMETRIES)
    boundary_tolerance: float = option(BOUNDARY_TOLERANCE, "mask F tolerance: fraction of the "
                                       "image diagonal (>= 1: pixels)")
    truncate: bool = option(False, "if frame counts differ, evaluate the common prefix "
                            "(else: error)")
    cloud_threshold: float = option(0.05, "F-score distance (ground-truth units)")
    cloud_voxel: float | None = option(None, "voxel size for downsampling both clouds "
                                       "(default threshold/2)", type=float)

    def __post_init__(self) -> None:
        check_choices(self)
        require_at_least(self, 1, "delta")
        require_positive(self, "boundary_tolerance", "cloud_threshold", "cloud_voxel")
        require(is_number(self.max_dt) and self.max_dt >= 0, EvalOptions, "max_dt",
                "must be a number >= 0", self.max_dt)

    def depth_cap(self, benchmark_cap: float | None) -> float | None:
        """The depth cap to use: the benchmark's own (`benchmark_cap`) unless one was given."""
        return benchmark_cap if self.max_depth == DEFAULT else self.max_depth

    def depth_clip(self, benchmark_clip: float | None) -> float | None:
        """The upper clip of aligned predictions: the benchmark's published one (Sintel 70) with
        its own cap, none when a cap was given."""
        return benchmark_clip if self.max_depth == DEFAULT else None
