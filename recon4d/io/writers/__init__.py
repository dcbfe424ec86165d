"""Output writers: every file format of a reconstructed Scene, in a fixed documented layout.

`write_scene` validates the Scene (and source images) before writing anything, writes each file
atomically and returns the relative paths written, for the caller's `scene.json`. The file names
are those of `recon4d.io.layout`.

Default formats (`default_formats`, the one rule): STATIC_FORMATS for a Scene without dynamic
masks, every format (FORMATS) for a 4D Scene (one with `dynamic_masks`).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from recon4d.errors import InputError
from recon4d.io.atomic import atomic_path
from recon4d.io.layout import (
    CLOUD_FILE,
    DYNAMIC_MASK_DIR,
    KEPT_MASK_DIR,
    RENDER_VIDEO,
    frame_name,
)
from recon4d.io.writers.clouds4d import SceneClouds, write_dynamic_ply, write_static_ply
from recon4d.io.writers.colmap import DEFAULT_MAX_POINTS, write_colmap
from recon4d.io.writers.conf import write_conf
from recon4d.io.writers.depth import (
    depth_png_scale,
    write_depth_color,
    write_depth_npy,
    write_depth_png,
)
from recon4d.io.writers.glb import glb_clouds, write_glb
from recon4d.io.writers.intrinsics import write_intrinsics
from recon4d.io.writers.masks import write_masks
from recon4d.io.writers.monst3r import write_monst3r
from recon4d.io.writers.nerfstudio import check_sources, write_nerfstudio
from recon4d.io.writers.ply import write_ply
from recon4d.io.writers.trajectory import write_trajectory
from recon4d.io.writers.validate import check_scene
from recon4d.scene import Scene

# dynamic_mask, static_ply and dynamic_ply write nothing for a Scene without dynamic masks
STATIC_FORMATS = ("trajectory", "intrinsics", "depth", "depth_png", "depth_color", "conf",
                  "kept_mask", "dynamic_mask", "ply", "glb", "colmap", "nerfstudio")
DYNAMIC_FORMATS = ("static_ply", "dynamic_ply", "videos", "render", "monst3r")
FORMATS = STATIC_FORMATS + DYNAMIC_FORMATS
ALL_FORMATS = FORMATS

logger = logging.getLogger(__name__)


def default_formats(scene: Scene) -> tuple[str, ...]:
    """Every format for a 4D Scene (dynamic masks set), else STATIC_FORMATS."""
    return FORMATS if scene.dynamic_masks is not None else STATIC_FORMATS


def check_formats(formats: Sequence[str]) -> tuple[str, ...]:
    """The requested format names, in FORMATS order; InputError lists the valid ones."""
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise InputError(f"unknown output format(s) {', '.join(map(repr, unknown))}; "
                         f"valid formats: {', '.join(FORMATS)}")
    return tuple(f for f in FORMATS if f in formats)


def frame_names(scene: Scene) -> list[str]:
    """The Scene's image names when complete, unique and without spaces, else `frame_NNNNNN.png`.

    COLMAP's text format ends an image line with the name, so it cannot hold whitespace.
    """
    names = list(scene.image_names)
    if (len(names) == len(scene) and len(set(names)) == len(names)
            and all(name and name.split() == [name] for name in names)):
        return names
    return [f"{frame_name(i)}.png" for i in range(len(scene))]


def check_glb_frame(scene: Scene, frame: int | None) -> None:
    """InputError unless `frame` is None or a frame index of the Scene."""
    if frame is not None and not 0 <= frame < len(scene):
        raise InputError(f"glb_frame {frame} is not a frame of the scene (0..{len(scene) - 1})")


def _write_videos(scene: Scene, out: Path) -> list[str]:
    from recon4d.io.writers.videos import write_videos  # PyAV and colour maps: only when asked

    return write_videos(scene, out)


def _write_render(scene: Scene, out: Path) -> list[str]:
    """`render_4d.mp4`; skipped with a warning without PyAV, like every MP4 output."""
    from recon4d.viz.overlay import PYAV_INSTALL, has_pyav

    if not has_pyav():
        logger.warning("%s not written: MP4 videos need PyAV (%s)", RENDER_VIDEO, PYAV_INSTALL)
        return []
    from recon4d.viz.render import write_render  # loads the renderer (torch): only when asked

    with atomic_path(out / RENDER_VIDEO) as tmp:
        write_render(scene, tmp)
    return [RENDER_VIDEO]


def write_scene(scene: Scene, out_dir: str | os.PathLike, formats: Sequence[str] | None = None,
                sources: Sequence[str | os.PathLike] | None = None, *,
                frustum_depth: float | None = None,
                colmap_max_points: int | None = DEFAULT_MAX_POINTS,
                static_voxel: float | None = None,
                glb_frame: int | None = None) -> list[str]:
    """Write `formats` (default: `default_formats(scene)`) of `scene` under `out_dir`; return
    the relative POSIX paths written.

    `sources`: the original image files in frame order (nerfstudio copies them instead of
    resizing the model inputs back). `static_voxel`: voxel side of `static.ply` in scene units
    (default relative to the scene, `recon4d.io.writers.clouds4d`). `glb_frame`: the frame
    whose moving points a 4D GLB shows (default: the middle one). Raises InputError before
    writing anything on bad input.
    """
    wanted = check_formats(default_formats(scene) if formats is None else formats)
    check_scene(scene)
    check_glb_frame(scene, glb_frame)
    upright = None
    if sources is not None and "nerfstudio" in wanted:
        sources = list(sources)
        upright = check_sources(scene, sources)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scale = depth_png_scale(scene.depths) if "depth_png" in wanted else None
    clouds = SceneClouds(scene, static_voxel)
    writers = {
        "trajectory": lambda: write_trajectory(scene, out),
        "intrinsics": lambda: write_intrinsics(scene, out, scale),
        "depth": lambda: write_depth_npy(scene, out),
        "depth_png": lambda: write_depth_png(scene, out, scale),
        "depth_color": lambda: write_depth_color(scene, out),
        "conf": lambda: write_conf(scene, out),
        "kept_mask": lambda: write_masks(scene.masks, out, KEPT_MASK_DIR),
        "dynamic_mask": lambda: write_masks(scene.dynamic_masks, out, DYNAMIC_MASK_DIR),
        "ply": lambda: write_ply(clouds.kept, out),
        "glb": lambda: write_glb(scene, glb_clouds(scene, clouds, glb_frame), out, frustum_depth),
        "colmap": lambda: write_colmap(scene, clouds.kept, frame_names(scene), out,
                                       colmap_max_points),
        "nerfstudio": lambda: write_nerfstudio(
            scene, out, sources if upright is not None else None, upright,
            CLOUD_FILE if "ply" in wanted else None),
        "static_ply": lambda: write_static_ply(clouds, out),
        "dynamic_ply": lambda: write_dynamic_ply(clouds, out),
        "videos": lambda: _write_videos(scene, out),
        "render": lambda: _write_render(scene, out),
        "monst3r": lambda: write_monst3r(scene, out),
    }
    written: list[str] = []
    for name in wanted:
        written += writers[name]()
    return written


__all__ = ["ALL_FORMATS", "DYNAMIC_FORMATS", "FORMATS", "STATIC_FORMATS", "check_formats",
           "default_formats", "frame_names", "write_scene"]
