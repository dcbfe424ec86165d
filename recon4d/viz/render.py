"""Headless rendering of a 4D reconstruction to an MP4: z-buffered point splatting in torch.

Video frame t shows the static cloud (static kept points of every frame, a random subset of at
most `static_budget`) and the moving kept points of frame t, seen by the virtual camera of
`recon4d.viz.camera_path` (the trajectory smoothed, pulled back and lifted). No OpenGL and no
window: points are projected, each covers a square of `point_size` pixels centred on its
projection, and per pixel the nearest one wins (one `scatter_reduce` of keys that order by depth,
ties going to the lower point index, so the result does not depend on thread timing).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch
from tqdm import tqdm

from recon4d.errors import OptionError, OutputError
from recon4d.geometry.cameras import depth_to_world
from recon4d.geometry.transforms import invert_rigid
from recon4d.scene import Scene
from recon4d.viz.camera_path import virtual_camera_path
from recon4d.viz.overlay import PYAV_INSTALL, check_fps, frame_rate, has_pyav, write_mp4

STATIC_BUDGET = 1_000_000  # static points drawn in every frame
DEFAULT_POINT_SIZE = 2  # pixels per side of a point's square
BACKGROUND = (0, 0, 0)
MAX_PIXELS = 2**24  # pixel indices are computed exactly in float32
_EMPTY = torch.iinfo(torch.int64).max  # z-buffer key of a pixel no point covers
_INDEX_BITS = 32  # low bits of a key: the point index; high bits: the depth's float32 bits


def render_points(points: torch.Tensor, colours: torch.Tensor, pose_c2w: np.ndarray,
                  intrinsics: np.ndarray, size: tuple[int, int], point_size: int = 1,
                  background: tuple[int, int, int] = BACKGROUND) -> np.ndarray:
    """(H, W, 3) uint8 image of world `points` (P, 3) float32 with `colours` (P, 3) uint8, seen
    by a pinhole camera (camera-to-world `pose_c2w`, OpenCV axes, K `intrinsics`), `size` =
    (W, H). Pixel (x, y) covers [x - 0.5, x + 0.5) x [y - 0.5, y + 0.5); points behind the
    camera are not drawn; the nearest point of a pixel wins. At most MAX_PIXELS pixels
    (`size` padded by `point_size`).

    A point's square of `point_size` pixels is found by its top-left pixel (its anchor): the
    z-buffer keeps the nearest point per anchor (one scatter over the points) on a canvas
    `point_size - 1` pixels larger, then a pixel takes the nearest of the anchors whose square
    covers it (a minimum over `point_size`^2 shifted canvases, cheap at image size)."""
    width, height = size
    pad = point_size - 1
    canvas_w, canvas_h = width + pad, height + pad
    world_to_image = np.asarray(intrinsics, np.float64) @ invert_rigid(
        np.asarray(pose_c2w, np.float64))[:3]
    matrix = torch.as_tensor(world_to_image, dtype=torch.float32)
    uvw = torch.addmm(matrix[:, 3], points.to(torch.float32), matrix[:, :3].T)
    depth = uvw[:, 2].contiguous()
    # anchors on the canvas, kept in float32 (exact integers below 2^24) until the last step;
    # comparisons are false for NaN and infinity, so such points are not drawn
    anchor = torch.floor(uvw[:, :2] / uvw[:, 2:] + (0.5 + pad / 2))
    drawn = ((depth > 0) & (anchor >= 0).all(dim=1)
             & (anchor < torch.tensor([canvas_w, canvas_h])).all(dim=1))
    dump = canvas_h * canvas_w  # one extra bin collects the points not drawn
    anchors = torch.where(drawn, anchor[:, 1] * canvas_w + anchor[:, 0], dump).long()
    keys = (depth.view(torch.int32).long() << _INDEX_BITS) | torch.arange(len(depth))
    zbuffer = torch.full((dump + 1,), _EMPTY, dtype=torch.int64)
    zbuffer.scatter_reduce_(0, anchors, keys, "amin")
    zbuffer = zbuffer[:dump].reshape(canvas_h, canvas_w)
    nearest = torch.full((height, width), _EMPTY, dtype=torch.int64)
    for dy in range(point_size):
        for dx in range(point_size):
            torch.minimum(nearest, zbuffer[pad - dy:canvas_h - dy, pad - dx:canvas_w - dx],
                          out=nearest)
    image = torch.tensor(background, dtype=torch.uint8).repeat(height * width, 1)
    nearest = nearest.reshape(-1)
    hit = nearest != _EMPTY
    image[hit] = colours[nearest[hit] & ((1 << _INDEX_BITS) - 1)]
    return image.reshape(height, width, 3).numpy()


def _frame_points(scene: Scene, frame: int,
                  keep: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """World points (M, 3) float32 and colours (M, 3) uint8 of the `keep` pixels of `frame`."""
    depth = torch.as_tensor(scene.depths[frame], dtype=torch.float32)
    world = depth_to_world(depth, scene.intrinsics[frame], scene.poses_c2w[frame])
    keep = torch.as_tensor(keep)
    return world[keep], torch.as_tensor(scene.images[frame])[keep]


def static_cloud(scene: Scene, budget: int = STATIC_BUDGET,
                 seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """World points (P, 3) float32 and colours (P, 3) uint8 of the static kept pixels of all
    frames (kept, positive depth, not moving); a seeded random subset of `budget` when more."""
    static = scene.masks.astype(bool) & (scene.depths > 0)
    if scene.dynamic_masks is not None:
        static &= ~scene.dynamic_masks.astype(bool)
    counts = static.reshape(len(scene), -1).sum(axis=1)
    chosen = np.ones(int(counts.sum()), dtype=bool)
    if chosen.size > budget:
        chosen[:] = False
        chosen[np.random.default_rng(seed).choice(chosen.size, budget, replace=False)] = True
    starts = np.concatenate(([0], np.cumsum(counts)))
    points, colours = [], []
    for frame in range(len(scene)):
        keep = static[frame].copy()
        keep[keep] = chosen[starts[frame]:starts[frame + 1]]
        xyz, rgb = _frame_points(scene, frame, keep)
        points.append(xyz)
        colours.append(rgb)
    return torch.cat(points), torch.cat(colours)


def moving_points(scene: Scene, frame: int) -> tuple[torch.Tensor, torch.Tensor]:
    """World points (M, 3) float32 and colours (M, 3) uint8 of the moving kept pixels of
    `frame` (none without dynamic masks)."""
    keep = scene.masks[frame].astype(bool) & (scene.depths[frame] > 0)
    if scene.dynamic_masks is None:
        keep[:] = False
    else:
        keep &= scene.dynamic_masks[frame].astype(bool)
    return _frame_points(scene, frame, keep)


def render_frames(scene: Scene, poses_c2w: np.ndarray, intrinsics: np.ndarray,
                  size: tuple[int, int], point_size: int = DEFAULT_POINT_SIZE,
                  static_budget: int = STATIC_BUDGET, progress: bool = False
                  ) -> Iterator[np.ndarray]:
    """Yield frame t of the 4D replay (module doc) seen from `poses_c2w[t]` with K `intrinsics`
    at `size` (W, H), one (H, W, 3) uint8 image at a time."""
    static_xyz, static_rgb = static_cloud(scene, static_budget)
    for frame in tqdm(range(len(scene)), desc="render", unit="frame", disable=not progress):
        xyz, rgb = moving_points(scene, frame)
        yield render_points(torch.cat((static_xyz, xyz)), torch.cat((static_rgb, rgb)),
                            poses_c2w[frame], intrinsics, size, point_size)


def virtual_intrinsics(scene: Scene, size: tuple[int, int]) -> np.ndarray:
    """K (3, 3) of the virtual camera: the scene's median K rescaled from its frames to `size`
    (W, H), pixel centres at integer coordinates."""
    height, width = scene.depths.shape[1:]
    scale = np.array([size[0] / width, size[1] / height])
    median = np.median(np.asarray(scene.intrinsics, np.float64), axis=0)
    intrinsics = np.eye(3)
    intrinsics[[0, 1], [0, 1]] = median[[0, 1], [0, 1]] * scale
    intrinsics[:2, 2] = (median[:2, 2] + 0.5) * scale - 0.5
    return intrinsics


def viewing_distance(scene: Scene) -> float:
    """Median depth of the kept points (1.0 when none): how far the virtual camera looks."""
    depths = scene.depths[scene.masks.astype(bool) & (scene.depths > 0)]
    return float(np.median(depths)) if depths.size else 1.0


def check_render_options(size: tuple[int, int], point_size: int) -> None:
    """OptionError for a render size (W, H) or point size that cannot make a video."""
    if point_size < 1 or int(point_size) != point_size:
        raise OptionError(f"render point size must be a positive integer, got {point_size}")
    if len(size) != 2 or min(size) < 1 or any(int(side) != side for side in size):
        raise OptionError(f"render size must be two positive integers (width, height), "
                          f"got {size}")
    if (size[0] + point_size) * (size[1] + point_size) > MAX_PIXELS:
        raise OptionError(f"render size {size[0]}x{size[1]} is too large: at most "
                          f"{MAX_PIXELS} pixels")


def write_render(scene: Scene, path: str | os.PathLike, *, size: tuple[int, int] | None = None,
                 fps: float | None = None, point_size: int = DEFAULT_POINT_SIZE,
                 progress: bool = False) -> None:
    """Write the 4D replay of `scene` (module doc) to the H.264 MP4 `path`, written directly
    (wrap in `recon4d.io.atomic.atomic_path` for an atomic file). `size` (W, H) defaults to
    the scene's frames, `fps` to the frames' rate (`frame_rate`). OutputError without PyAV."""
    height, width = scene.depths.shape[1:]
    size = (width, height) if size is None else tuple(size)
    fps = frame_rate(scene.timestamps) if fps is None else check_fps(fps)
    check_render_options(size, point_size)
    if not has_pyav():
        raise OutputError(f"{path}: cannot write the 4D render: MP4 videos need PyAV "
                          f"({PYAV_INSTALL})")
    poses = virtual_camera_path(scene.poses_c2w, viewing_distance(scene))
    frames = render_frames(scene, poses, virtual_intrinsics(scene, size), size, point_size,
                           progress=progress)
    write_mp4(frames, path, fps)
