"""4D point clouds: the static kept points of all frames merged into one voxel-deduplicated
cloud (`static.ply`), and the moving kept points of each frame (`dynamic/NNNNNN.ply`).

Voxel size: VOXEL_FRACTION (1/200) of the median camera-to-point distance of the static points,
about two pixels' footprint at that distance for a 512-pixel-wide frame with a 60 degree field of
view: the many observations of one surface merge, pixel-scale detail stays. Each occupied voxel
becomes one point: mean position, mean colour, highest confidence. When more than `max_points`
voxels are occupied, the voxel side grows until at most that many are.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path

import numpy as np

from recon4d.io.layout import DYNAMIC_CLOUD_DIR, STATIC_CLOUD_FILE, frame_file
from recon4d.io.writers.colmap import DEFAULT_MAX_POINTS
from recon4d.io.writers.ply import write_ply
from recon4d.io.writers.points import Cloud, MaskedPoints, masked_points, moving_flags
from recon4d.scene import Scene

VOXEL_FRACTION = 1 / 200
_GROWTH_MARGIN = 1.05  # grow the voxel a little more than the count ratio asks, to converge fast


def relative_voxel(scene: Scene, points: MaskedPoints) -> float:
    """VOXEL_FRACTION of the median distance from the points to their own camera (0 if none)."""
    if len(points) == 0:
        return 0.0
    centres = scene.poses_c2w[points.frame, :3, 3]
    return VOXEL_FRACTION * float(np.median(np.linalg.norm(points.xyz - centres, axis=1)))


def voxel_ids(xyz: np.ndarray, voxel: float) -> np.ndarray:
    """(M,) int64, equal exactly for points in the same cube of side `voxel`."""
    cells = np.floor(xyz / voxel).astype(np.int64)
    cells -= cells.min(axis=0)
    dims = cells.max(axis=0) + 1
    if np.prod(dims.astype(np.float64)) < 2.0 ** 62:
        return np.ravel_multi_index(tuple(cells.T), tuple(int(d) for d in dims))
    return np.unique(cells, axis=0, return_inverse=True)[1].reshape(-1)  # huge extent: slower


def voxel_merge(cloud: Cloud, voxel: float) -> Cloud:
    """One point per occupied voxel: mean position and colour, highest confidence.

    Points come out in voxel-id order (deterministic); `voxel` <= 0 returns `cloud` unchanged.
    """
    if voxel <= 0 or len(cloud) == 0:
        return Cloud(cloud.xyz, cloud.rgb, cloud.conf)
    ids = voxel_ids(cloud.xyz, voxel)
    order = np.argsort(ids)
    ids = ids[order]
    starts = np.flatnonzero(np.concatenate([[True], ids[1:] != ids[:-1]]))
    counts = np.diff(np.append(starts, len(ids)))[:, None]
    xyz = np.add.reduceat(cloud.xyz[order].astype(np.float64), starts) / counts
    rgb = np.add.reduceat(cloud.rgb[order].astype(np.float64), starts) / counts
    return Cloud(xyz.astype(np.float32), np.rint(rgb).astype(np.uint8),
                 np.maximum.reduceat(cloud.conf[order], starts))


def static_cloud(points: MaskedPoints, voxel: float,
                 max_points: int | None = DEFAULT_MAX_POINTS) -> Cloud:
    """`points` merged by `voxel`, the voxel grown until at most `max_points` remain."""
    merged = voxel_merge(points, voxel)
    while max_points is not None and len(merged) > max(max_points, 1) and voxel > 0:
        voxel *= _GROWTH_MARGIN * np.sqrt(len(merged) / max_points)  # surfaces: count ~ 1/side^2
        merged = voxel_merge(points, voxel)
    return merged


class SceneClouds:
    """The point sets the writers share, each computed once, on first use.

    `voxel`: the static cloud's voxel side in scene units (None: `relative_voxel`).
    """

    def __init__(self, scene: Scene, voxel: float | None = None,
                 max_points: int | None = DEFAULT_MAX_POINTS) -> None:
        self.scene, self.voxel, self.max_points = scene, voxel, max_points

    @cached_property
    def kept(self) -> MaskedPoints:
        """Every kept point (the static path's cloud)."""
        return masked_points(self.scene)

    @cached_property
    def _is_moving(self) -> np.ndarray:
        return moving_flags(self.scene, self.kept)

    @cached_property
    def static(self) -> Cloud:
        """Kept and not moving, all frames, voxel-deduplicated."""
        points = self.kept.subset(~self._is_moving)
        voxel = relative_voxel(self.scene, points) if self.voxel is None else self.voxel
        return static_cloud(points, voxel, self.max_points)

    @cached_property
    def moving(self) -> MaskedPoints:
        """Kept and moving, in frame order."""
        return self.kept.subset(self._is_moving)

    def moving_in(self, frame: int) -> MaskedPoints:
        """The moving kept points of one frame."""
        return self.moving.subset(self.moving.frame == frame)


def write_static_ply(clouds: SceneClouds, out_dir: Path) -> list[str]:
    """Write `static.ply` (nothing for a Scene without dynamic masks)."""
    if clouds.scene.dynamic_masks is None:
        return []
    return write_ply(clouds.static, out_dir, STATIC_CLOUD_FILE)


def write_dynamic_ply(clouds: SceneClouds, out_dir: Path) -> list[str]:
    """Write `dynamic/NNNNNN.ply` per frame, a header only when a frame has no moving point
    (nothing for a Scene without dynamic masks)."""
    if clouds.scene.dynamic_masks is None:
        return []
    files = []
    for i, part in enumerate(clouds.moving.frame_slices(len(clouds.scene))):
        path = frame_file(DYNAMIC_CLOUD_DIR, i, ".ply")
        files += write_ply(clouds.moving.subset(part), out_dir, path)
    return files
