"""`generate_scene`: a seeded textured room with moving boxes, rendered with full ground truth."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tqdm import tqdm

from recon4d.errors import InputError
from recon4d.geometry.cameras import depth_to_world, intrinsics_from_fov
from recon4d.options import TRAJECTORIES, SynthOptions
from recon4d.summary_repr import summary_repr
from recon4d.synthetic.flow import forward_flow, move_points
from recon4d.synthetic.geometry import Surfaces, box, room
from recon4d.synthetic.motion import random_mover
from recon4d.synthetic.rasterizer import rasterize, shade
from recon4d.synthetic.trajectories import camera_trajectory

ROOM_SIZE = (10.0, 10.0, 3.0)
GENERATOR_VERSION = 1

_SYNTH = SynthOptions()  # defaults of `recon4d synth`, declared once in recon4d.options


@dataclass
class SyntheticScene:
    """Rendered frames and ground truth; shapes use N frames of H x W pixels, K movers."""

    rgb: np.ndarray  # (N, H, W, 3) uint8
    depth: np.ndarray  # (N, H, W) float32 z-depth, 0 where no surface
    dynamic_mask: np.ndarray  # (N, H, W) bool: pixels of movers
    instance: np.ndarray  # (N, H, W) int32: 0 static, k mover k
    poses_c2w: np.ndarray  # (N, 4, 4) float64, OpenCV camera axes
    intrinsics: np.ndarray  # (N, 3, 3) float64, pixels
    flow_fwd: np.ndarray  # (N-1, H, W, 2) float32, pixel displacement t -> t+1
    flow_valid: np.ndarray  # (N-1, H, W) bool
    scene_flow_fwd: np.ndarray  # (N-1, H, W, 3) float32, world displacement t -> t+1
    timestamps: np.ndarray  # (N,) float64 seconds
    object_poses: np.ndarray  # (N, K+1, 4, 4) float64 body-to-world, entry 0 = identity
    seed: int = 0
    params: dict[str, Any] = field(default_factory=dict)

    __repr__ = summary_repr

    @property
    def num_frames(self) -> int:
        return self.rgb.shape[0]

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W)."""
        return self.rgb.shape[1], self.rgb.shape[2]

    def world_points(self, i: int) -> np.ndarray:
        """World points (H, W, 3) float64 of frame i (camera centre where depth is 0)."""
        return depth_to_world(self.depth[i], self.intrinsics[i], self.poses_c2w[i])

    def surface_coords(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Surface identity of frame i's pixels: object id (H, W) and body-frame point (H, W, 3).

        The same physical point has the same (id, body point) in every frame, whatever moved.
        """
        inst = self.instance[i]
        identity = np.broadcast_to(np.eye(4), self.object_poses[i].shape)
        body = move_points(self.world_points(i), inst, self.object_poses[i], identity)
        return inst, body


def _static_boxes(rng: np.random.Generator, count: int) -> list[Surfaces]:
    """`count` boxes standing on the floor against the walls (outside every camera path)."""
    half = ROOM_SIZE[0] / 2
    boxes = []
    for _ in range(count):
        depth, width, height = rng.uniform(0.3, 0.8), rng.uniform(0.4, 1.5), rng.uniform(0.3, 2.2)
        along = rng.uniform(-half + width, half - width)
        across = half - depth / 2 - 0.01
        wall = rng.integers(4)
        x, y = [(across, along), (-across, along), (along, across), (along, -across)][wall]
        size = (depth, width, height) if wall < 2 else (width, depth, height)
        boxes.append(box(size, object_id=0, rng=rng, centre=(x, y, height / 2)))
    return boxes


def _check_args(frames: int, width: int, height: int, movers: int, seed: int, trajectory: str,
                fps: float, hfov_deg: float) -> None:
    """Raise InputError naming the first bad generator argument."""
    problems = [(frames < 2, f"frames must be at least 2 (got {frames})"),
                (width < 8 or height < 8, f"image must be at least 8x8 (got {width}x{height})"),
                (movers < 0, f"movers must be >= 0 (got {movers})"),
                (seed < 0, f"seed must be >= 0 (got {seed})"),
                (trajectory not in TRAJECTORIES,
                 f"unknown trajectory {trajectory!r}; choose one of {', '.join(TRAJECTORIES)}"),
                (not fps > 0, f"fps must be positive (got {fps})"),
                (not 10 <= hfov_deg <= 150, f"hfov_deg must be in [10, 150] (got {hfov_deg})")]
    for bad, message in problems:
        if bad:
            raise InputError(f"synthetic scene: {message}")


def generate_scene(frames: int = _SYNTH.frames, width: int = _SYNTH.width,
                   height: int = _SYNTH.height, movers: int = _SYNTH.movers,
                   seed: int = _SYNTH.seed, trajectory: str = _SYNTH.trajectory, *,
                   fps: float = _SYNTH.fps, hfov_deg: float = 60.0, static_boxes: int = 8,
                   stops: bool = _SYNTH.stops, freeze_movers: bool = _SYNTH.freeze_movers,
                   progress: bool = False) -> SyntheticScene:
    """Render a seeded dynamic scene: a textured room, `movers` moving boxes, a camera path.

    Movers alternate between ground boxes (slide and turn) and floating cubes (tumble); with
    `stops` each pauses once for 20-40 % of the sequence; `freeze_movers` keeps every mover at
    its first pose (the static twin of the same scene). The same arguments give identical arrays.
    """
    _check_args(frames, width, height, movers, seed, trajectory, fps, hfov_deg)
    times = np.arange(frames, dtype=np.float64) / fps
    duration = frames / fps
    # independent streams: changing one setting (e.g. frames) keeps the rest of the world the same
    layout_rng = np.random.default_rng([seed, 1])
    mover_specs = [random_mover(np.random.default_rng([seed, 2, k]), floating=k % 2 == 1,
                                duration=duration, stops=stops) for k in range(movers)]
    parts = [room(ROOM_SIZE, layout_rng)] + _static_boxes(layout_rng, static_boxes)
    parts += [box(m.size, object_id=k + 1, rng=np.random.default_rng([seed, 3, k]))
              for k, m in enumerate(mover_specs)]
    surfaces = Surfaces.concat(parts)
    poses = camera_trajectory(trajectory, times, np.random.default_rng([seed, 4]))
    object_poses = np.broadcast_to(np.eye(4), (frames, movers + 1, 4, 4)).copy()
    for k, m in enumerate(mover_specs):
        object_poses[:, k + 1] = m.poses(times[:1] if freeze_movers else times)
    k_matrix = intrinsics_from_fov(width, height, hfov_deg)

    rgb = np.zeros((frames, height, width, 3), np.uint8)
    depth = np.zeros((frames, height, width), np.float64)
    instance = np.zeros((frames, height, width), np.int32)
    flow = np.zeros((frames - 1, height, width, 2), np.float32)
    flow_valid = np.zeros((frames - 1, height, width), bool)
    scene_flow = np.zeros((frames - 1, height, width, 3), np.float32)
    for i in tqdm(range(frames), desc="rendering", unit="frame", disable=not progress):
        frag = rasterize(surfaces, object_poses[i], poses[i], k_matrix, width, height)
        rgb[i] = shade(surfaces, frag, object_poses[i])
        depth[i] = frag.depth
        instance[i] = np.where(frag.quad >= 0, surfaces.object_ids[frag.quad], 0)
        if i > 0:
            flow[i - 1], flow_valid[i - 1], scene_flow[i - 1] = forward_flow(
                depth[i - 1], instance[i - 1], depth[i], k_matrix, k_matrix, poses[i - 1],
                poses[i], object_poses[i - 1], object_poses[i])
    params = dict(frames=frames, width=width, height=height, movers=movers, seed=seed,
                  trajectory=trajectory, fps=fps, hfov_deg=hfov_deg, static_boxes=static_boxes,
                  stops=stops, room_size=list(ROOM_SIZE), generator_version=GENERATOR_VERSION,
                  mover_specs=[m.as_dict() for m in mover_specs])
    if freeze_movers:  # recorded only when set: default scenes stay byte-identical
        params["freeze_movers"] = True
    return SyntheticScene(
        rgb=rgb, depth=depth.astype(np.float32), dynamic_mask=instance > 0, instance=instance,
        poses_c2w=poses, intrinsics=np.broadcast_to(k_matrix, (frames, 3, 3)).copy(),
        flow_fwd=flow, flow_valid=flow_valid, scene_flow_fwd=scene_flow, timestamps=times,
        object_poses=object_poses, seed=seed, params=params)

