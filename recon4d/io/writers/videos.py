"""Per-frame maps as videos (MP4 and GIF): inverse depth, confidence and the motion overlay.

Each map is colour-mapped with one robust range for the whole video, so a colour means the same
depth (confidence) in every frame. MP4s are skipped, with a warning, when PyAV is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from recon4d.io.atomic import atomic_path
from recon4d.io.layout import CONF_VIDEO_STEM, DEPTH_VIDEO_STEM, DYNAMIC_MASK_VIDEO_STEM
from recon4d.scene import Scene
from recon4d.viz.colormap import inverse_depth_colours, log_colours
from recon4d.viz.overlay import (
    PYAV_INSTALL,
    check_fps,
    frame_rate,
    has_pyav,
    tint_moving,
    write_gif,
    write_mp4,
)

logger = logging.getLogger(__name__)


def _write_video(frames: np.ndarray, out_dir: Path, stem: str, fps: float) -> list[str]:
    """`stem.gif` and, with PyAV, `stem.mp4` of (N, H, W, 3) uint8 `frames`, each atomically."""
    written = [f"{stem}.gif"]
    with atomic_path(out_dir / written[0]) as tmp:
        write_gif(frames, tmp, fps)
    if has_pyav():
        written.append(f"{stem}.mp4")
        with atomic_path(out_dir / written[1]) as tmp:
            write_mp4(frames, tmp, fps)
    return written


def write_videos(scene: Scene, out_dir: Path, fps: float | None = None) -> list[str]:
    """Write `depth.{mp4,gif}` (inverse depth), `conf.{mp4,gif}` (log confidence) and, when the
    scene has dynamic masks, `dynamic_mask.{mp4,gif}` (moving pixels tinted) under `out_dir`;
    return the relative paths written. `fps` defaults to the frames' rate (`frame_rate`)."""
    out_dir = Path(out_dir)
    fps = frame_rate(scene.timestamps) if fps is None else check_fps(fps)
    if not has_pyav():
        logger.warning("%s: MP4 videos not written, only GIFs: they need PyAV (%s)", out_dir,
                       PYAV_INSTALL)
    written = _write_video(inverse_depth_colours(scene.depths), out_dir, DEPTH_VIDEO_STEM, fps)
    written += _write_video(log_colours(scene.confs), out_dir, CONF_VIDEO_STEM, fps)
    if scene.dynamic_masks is not None:
        overlay = tint_moving(scene.images, scene.dynamic_masks.astype(bool))
        written += _write_video(overlay, out_dir, DYNAMIC_MASK_VIDEO_STEM, fps)
    return written
