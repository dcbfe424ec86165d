"""DAVIS 2016/2017: `JPEGImages/<res>/<seq>/00000.jpg` and `Annotations/<res>/<seq>/00000.png`.

Annotations are palette PNGs of object ids (2017) or 0/255 masks (2016); every non-zero pixel
is foreground, so the objects of a frame merge into one mask (2016-style evaluation).
`<res>` is `480p` when present, else the first resolution folder found.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.eval.files import numbered_files, read_mask, stack_frames
from recon4d.eval.readers.base import ALL_FRAMES, FrameSelection, GroundTruth


def annotations_dir(root: Path) -> Path | None:
    """`Annotations/<res>` of a DAVIS root, preferring 480p."""
    ann = root / "Annotations"
    if not ann.is_dir():
        return None
    if (ann / "480p").is_dir():
        return ann / "480p"
    found = sorted(p for p in ann.iterdir() if p.is_dir())
    return found[0] if found else None


def detect(root: Path) -> bool:
    """A DAVIS root."""
    return (root / "JPEGImages").is_dir() and annotations_dir(root) is not None


def sequences(root: Path) -> dict[str, Path]:
    """Sequence name -> its annotation folder."""
    ann = annotations_dir(root)
    return {p.name: p for p in sorted(ann.iterdir()) if p.is_dir()} if ann else {}


def load(folder: Path, selection: FrameSelection = ALL_FRAMES) -> GroundTruth:
    """Read the selected annotated frames of one sequence (its annotation folder)."""
    listing = numbered_files(folder, ".png")
    if not listing:
        raise InputError(f"{folder}: no annotation PNG files")
    keep = selection.indices(len(listing))
    if len(keep) == 0:
        raise InputError(f"{folder}: the frame selection leaves no frame")
    paths = [listing[i] for i in keep]
    return GroundTruth(name=folder.name, frames=[p.stem for p in paths],
                       timestamps=keep.astype(np.float64),
                       masks=stack_frames([read_mask(p) for p in paths], paths))
