"""Evaluation: pose, video-depth, motion-mask and point-cloud metrics, benchmark readers.

The metric functions take plain arrays (see each module for formulas and alignment):
`pose_metrics`, `depth_metrics`, `mask_metrics`, `cloud_metrics`; `evaluate` runs them on a
recon4d output folder against a benchmark folder (the `recon4d eval` command).
"""

from recon4d.eval.clouds import cloud_metrics
from recon4d.eval.depth import depth_metrics
from recon4d.eval.evaluate import evaluate
from recon4d.eval.masks import mask_metrics
from recon4d.eval.poses import pose_metrics
from recon4d.eval.readers import FrameSelection, GroundTruth, list_sequences, load_sequence
from recon4d.io.tum import Trajectory, read_tum, write_tum
from recon4d.options import EvalOptions

__all__ = ["EvalOptions", "FrameSelection", "GroundTruth", "Trajectory", "cloud_metrics",
           "depth_metrics", "evaluate", "list_sequences", "load_sequence", "mask_metrics",
           "pose_metrics", "read_tum", "write_tum"]
