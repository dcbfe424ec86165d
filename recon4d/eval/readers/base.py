"""What every benchmark reader returns: one ground-truth sequence, and the frames to take."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from recon4d.errors import InputError


@dataclass(frozen=True)
class FrameSelection:
    """Frames `start, start + stride, ...`, at most `max_frames` of them (benchmark protocols)."""

    start: int = 0
    stride: int = 1
    max_frames: int | None = None

    def indices(self, num: int) -> np.ndarray:
        """The selected indices among `num` frames."""
        if self.start < 0 or self.stride < 1 or (self.max_frames is not None
                                                 and self.max_frames < 1):
            raise InputError(f"invalid frame selection start={self.start} stride={self.stride} "
                             f"max_frames={self.max_frames}")
        return np.arange(self.start, num, self.stride)[:self.max_frames]


ALL_FRAMES = FrameSelection()


def sequence_folders(root: Path, is_sequence: Callable[[Path], bool]) -> dict[str, Path]:
    """{name: folder}: `root` itself when it is a sequence, else its sequence sub-folders."""
    if is_sequence(root):
        return {root.name: root}
    if not root.is_dir():
        return {}
    return {p.name: p for p in sorted(root.iterdir()) if p.is_dir() and is_sequence(p)}


@dataclass
class GroundTruth:
    """One ground-truth sequence; fields a benchmark does not provide are None.

    `poses` (N, 4, 4) camera-to-world (rows of NaN where a frame has no pose), `depth` (N, H, W)
    float32 (0 = no measurement), `masks` (N, H, W) bool (dynamic foreground), `intrinsics`
    (N, 3, 3) in pixels of the depth maps, `timestamps` (N,) in seconds or frame indices,
    `max_depth`: the benchmark's usual depth cap (valid pixels lie below it); `clip_depth`: the
    upper clip its published protocol applies to aligned predictions (Sintel: 70), if any.
    """

    name: str
    frames: list[str]
    timestamps: np.ndarray
    poses: np.ndarray | None = None
    depth: np.ndarray | None = None
    masks: np.ndarray | None = None
    intrinsics: np.ndarray | None = None
    max_depth: float | None = None
    clip_depth: float | None = None

    def __len__(self) -> int:
        return len(self.frames)
