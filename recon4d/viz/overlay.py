"""Frames to video files (H.264 MP4 via PyAV, animated GIF via Pillow) and motion overlays.

Conventions: `frames` (N, H, W, 3) uint8 RGB; `masks` (N, H, W) bool, True = moving, on the
frames' grid. Arrays in, files out; nothing here knows about predictions or output folders. The
container format is fixed by the writer, not by the file name, so callers may write to a
temporary name (`recon4d.io.atomic.atomic_path`) and rename it.
"""

from __future__ import annotations

import importlib.util
import logging
import os
from collections.abc import Iterable
from fractions import Fraction
from itertools import chain

import numpy as np
from PIL import Image

from recon4d.errors import OptionError

logger = logging.getLogger(__name__)

TINT = (255, 40, 40)  # RGB of the moving pixels' tint
TINT_ALPHA = 0.55  # weight of the tint over the frame
DEFAULT_FPS = 10.0  # frame rate of a video whose frames have no timestamps
PYAV_INSTALL = "pip install 'recon4d[video]'"


def tint_moving(frames: np.ndarray, masks: np.ndarray, colour: tuple[int, int, int] = TINT,
                alpha: float = TINT_ALPHA) -> np.ndarray:
    """(N, H, W, 3) uint8 frames blended with `colour` where `masks` is True (module doc)."""
    frames, masks = np.asarray(frames), np.asarray(masks)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"frames must be uint8 (N, H, W, 3), got {frames.dtype} {frames.shape}")
    if masks.shape != frames.shape[:3] or masks.dtype != np.bool_:
        raise ValueError(f"masks must be bool {frames.shape[:3]}, got {masks.dtype} "
                         f"{masks.shape}")
    tinted = frames * (1 - alpha) + np.asarray(colour, np.float32) * alpha
    return np.where(masks[..., None], np.rint(tinted), frames).astype(np.uint8)


def frame_rate(timestamps: np.ndarray | None, default: float = DEFAULT_FPS) -> float:
    """Frames per second of a video of frames taken at `timestamps` (seconds): one over the
    median interval, robust to dropped frames; `default` when unknown or not increasing."""
    if timestamps is None or len(timestamps) < 2:
        return default
    step = float(np.median(np.diff(np.asarray(timestamps, np.float64))))
    return 1.0 / step if step > 0 else default


def check_fps(fps: float) -> float:
    """`fps` itself, or OptionError when it is not a positive finite frame rate."""
    if not 0 < fps < float("inf"):
        raise OptionError(f"video frame rate must be positive, got {fps}")
    return fps


def has_pyav() -> bool:
    """Whether PyAV, which MP4 writing needs (extra `video`), is installed."""
    return importlib.util.find_spec("av") is not None


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: float) -> None:
    """An endlessly looping animated GIF of (N, H, W, 3) uint8 frames (Pillow, which stores a
    run of identical frames once, shown for their total time)."""
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:], loop=0,
                   duration=max(int(round(1000 / fps)), 20))


def write_mp4(frames: Iterable[np.ndarray], path: str | os.PathLike, fps: float) -> bool:
    """An H.264 MP4 of (H, W, 3) uint8 frames, encoded as they come (an iterator is never held
    whole); odd sides are padded by one edge pixel (the codec needs even ones). False, with a
    warning and no file, when PyAV is missing."""
    if not has_pyav():
        logger.warning("%s not written: MP4 videos need PyAV (%s)", path, PYAV_INSTALL)
        return False
    import av

    frames = iter(frames)
    first = next(frames)
    height, width = first.shape[:2]
    pad = ((0, height % 2), (0, width % 2), (0, 0))
    with av.open(os.fspath(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = height + height % 2, width + width % 2
        stream.pix_fmt = "yuv420p"
        for frame in chain([first], frames):
            image = av.VideoFrame.from_ndarray(np.pad(frame, pad, mode="edge"), format="rgb24")
            container.mux(stream.encode(image))
        container.mux(stream.encode())
    return True
