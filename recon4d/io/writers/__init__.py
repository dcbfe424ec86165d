"""Output writers: every file format of a reconstructed Scene, in a fixed documented layout.

`write_scene` validates the Scene (and source images) before writing anything, writes each file
atomically and returns the relative paths written, for the caller's `scene.json`. The file names
are those of `recon4d.io.layout`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from recon4d.errors import InputError
from recon4d.io.layout import CLOUD_FILE, DYNAMIC_MASK_DIR, KEPT_MASK_DIR, frame_name
from recon4d.io.writers.colmap import DEFAULT_MAX_POINTS, write_colmap
from recon4d.io.writers.conf import write_conf
from recon4d.io.writers.depth import (
    depth_png_scale,
    write_depth_color,
    write_depth_npy,
    write_depth_png,
)
from recon4d.io.writers.glb import write_glb
from recon4d.io.writers.intrinsics import write_intrinsics
from recon4d.io.writers.masks import write_masks
from recon4d.io.writers.nerfstudio import check_sources, write_nerfstudio
from recon4d.io.writers.ply import write_ply
from recon4d.io.writers.points import masked_points
from recon4d.io.writers.trajectory import write_trajectory
from recon4d.io.writers.validate import check_scene
from recon4d.scene import Scene

# dynamic_mask writes nothing for a Scene without dynamic masks
FORMATS = ("trajectory", "intrinsics", "depth", "depth_png", "depth_color", "conf", "kept_mask",
           "dynamic_mask", "ply", "glb", "colmap", "nerfstudio")
ALL_FORMATS = FORMATS


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


def write_scene(scene: Scene, out_dir: str | os.PathLike, formats: Sequence[str] = ALL_FORMATS,
                sources: Sequence[str | os.PathLike] | None = None, *,
                frustum_depth: float | None = None,
                colmap_max_points: int | None = DEFAULT_MAX_POINTS) -> list[str]:
    """Write `formats` of `scene` under `out_dir`; return the relative POSIX paths written.

    `sources`: the original image files in frame order (nerfstudio copies them instead of
    resizing the model inputs back). Raises InputError before writing anything on bad input.
    """
    wanted = check_formats(formats)
    check_scene(scene)
    upright = None
    if sources is not None and "nerfstudio" in wanted:
        sources = list(sources)
        upright = check_sources(scene, sources)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    scale = depth_png_scale(scene.depths) if "depth_png" in wanted else None
    points = masked_points(scene) if {"ply", "glb", "colmap"} & set(wanted) else None
    writers = {
        "trajectory": lambda: write_trajectory(scene, out),
        "intrinsics": lambda: write_intrinsics(scene, out, scale),
        "depth": lambda: write_depth_npy(scene, out),
        "depth_png": lambda: write_depth_png(scene, out, scale),
        "depth_color": lambda: write_depth_color(scene, out),
        "conf": lambda: write_conf(scene, out),
        "kept_mask": lambda: write_masks(scene.masks, out, KEPT_MASK_DIR),
        "dynamic_mask": lambda: write_masks(scene.dynamic_masks, out, DYNAMIC_MASK_DIR),
        "ply": lambda: write_ply(points, out),
        "glb": lambda: write_glb(scene, points, out, frustum_depth),
        "colmap": lambda: write_colmap(scene, points, frame_names(scene), out, colmap_max_points),
        "nerfstudio": lambda: write_nerfstudio(
            scene, out, sources if upright is not None else None, upright,
            CLOUD_FILE if "ply" in wanted else None),
    }
    written: list[str] = []
    for name in wanted:
        written += writers[name]()
    return written


__all__ = ["ALL_FORMATS", "FORMATS", "check_formats", "frame_names", "write_scene"]
