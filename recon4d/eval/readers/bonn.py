"""Bonn RGB-D Dynamic sequences: the TUM layout (rgb.txt, depth.txt, groundtruth.txt, depth / 5000).

Depth is capped at 70 m by default as in the MonST3R protocol; the ground-truth poses are used
as given in groundtruth.txt.
"""

from __future__ import annotations

from pathlib import Path

from recon4d.eval.readers import tum
from recon4d.eval.readers.base import ALL_FRAMES, FrameSelection, GroundTruth

MAX_DEPTH = 70.0
BONN_CALIBRATION = {"": (542.822841, 542.576870, 315.593520, 237.756098)}


def sequences(root: Path) -> dict[str, Path]:
    """{name: folder} of a sequence folder or of a folder of sequences."""
    return tum.sequences(root)


def detect(root: Path) -> bool:
    """TUM layout with "bonn" in the folder or sequence names (the official names)."""
    found = tum.sequences(root)
    return bool(found) and ("bonn" in root.name.lower()
                            or any("bonn" in name.lower() for name in found))


def load(path: Path, selection: FrameSelection = ALL_FRAMES) -> GroundTruth:
    """Read the selected frames of one Bonn sequence folder."""
    return tum.load(path, selection, max_depth=MAX_DEPTH, calibrations=BONN_CALIBRATION)
