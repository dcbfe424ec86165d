"""Motion overlays: frames with their moving pixels tinted, written as an MP4 (PyAV) and a GIF.

Conventions: `frames` (N, H, W, 3) uint8 RGB; `masks` (N, H, W) bool, True = moving, on the
frames' grid. Arrays in, files out; nothing here knows about predictions or output folders.
"""

from __future__ import annotations

import logging
import os
from fractions import Fraction

import numpy as np
from PIL import Image

logger = logging.getLogger(__name__)

TINT = (255, 40, 40)  # RGB of the moving pixels' tint
TINT_ALPHA = 0.55  # weight of the tint over the frame


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


def write_gif(frames: np.ndarray, path: str | os.PathLike, fps: float) -> None:
    """An endlessly looping animated GIF of (N, H, W, 3) uint8 frames (Pillow)."""
    images = [Image.fromarray(frame) for frame in frames]
    images[0].save(path, save_all=True, append_images=images[1:], loop=0,
                   duration=max(int(round(1000 / fps)), 20))


def write_mp4(frames: np.ndarray, path: str | os.PathLike, fps: float) -> bool:
    """An H.264 MP4 of (N, H, W, 3) uint8 frames (PyAV, extra `video`); odd sides are padded by
    one edge pixel (the codec needs even ones). False, with a warning, when PyAV is missing."""
    try:
        import av
    except ImportError:
        logger.warning("%s not written: the overlay video needs PyAV (pip install "
                       "'recon4d[video]')", path)
        return False
    height, width = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, height % 2), (0, width % 2), (0, 0)), mode="edge")
    with av.open(os.fspath(path), "w") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.height, stream.width = frames.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return True
