"""A minimal stand-in for the synthetic oracle, used by the alignment tests, and its own checks.

A box room with a box inside, pinhole cameras on an arc; depth by exact ray casting. Pair
predictions are built from the ground truth like the network's: image i in camera i and image j
in camera i, with a random global scale per pair, depth-proportional noise and low-confidence
outliers.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from recon4d.align.geometry import camera_rays, so3_exp, transform_points

ROOM = (np.array([-3.0, -1.5, -3.0]), np.array([3.0, 1.5, 3.0]))
BOX = (np.array([-0.8, 0.2, 1.2]), np.array([0.4, 1.5, 2.0]))


def _slab(origin: torch.Tensor, dirs: torch.Tensor, lo, hi) -> tuple[torch.Tensor, torch.Tensor]:
    """Entry and exit distances of rays through an axis-aligned box."""
    lo, hi = (torch.as_tensor(v, dtype=dirs.dtype) for v in (lo, hi))
    inv = 1 / dirs
    t0, t1 = (lo - origin) * inv, (hi - origin) * inv
    return torch.minimum(t0, t1).amax(-1), torch.maximum(t0, t1).amin(-1)


def room_scene(n_frames: int, width: int = 64, height: int = 48, seed: int = 0,
               focal: float | None = None) -> dict:
    """Ground truth: poses_c2w (N, 4, 4) float64, focal, pp, depth (N, H, W) float64."""
    gen = torch.Generator().manual_seed(seed)
    focal = focal or 0.9 * width
    k = torch.arange(n_frames, dtype=torch.float64)
    yaw = 0.6 * k / max(n_frames - 1, 1) * math.pi + 0.05 * torch.randn(n_frames, generator=gen,
                                                                          dtype=torch.float64)
    centre = torch.stack((0.8 * torch.sin(k * 0.15), 0.1 * torch.cos(k * 0.4),
                          -0.5 + 0.04 * k), dim=-1)
    tilt = 0.05 * torch.randn(n_frames, 3, generator=gen, dtype=torch.float64)
    rot = so3_exp(tilt) @ so3_exp(torch.stack((torch.zeros_like(yaw), yaw, torch.zeros_like(yaw)),
                                               -1))
    poses = torch.eye(4, dtype=torch.float64).repeat(n_frames, 1, 1)
    poses[:, :3, :3], poses[:, :3, 3] = rot, centre
    rays = camera_rays(torch.full((n_frames,), focal, dtype=torch.float64),
                       torch.tensor([[width / 2, height / 2]] * n_frames, dtype=torch.float64),
                       height, width)
    dirs = rays @ rot.transpose(1, 2)[:, None]  # world directions, z-component 1 in camera
    origin = centre[:, None, None]
    _, t_room = _slab(origin, dirs, *ROOM)
    t_in, t_out = _slab(origin, dirs, *BOX)
    hit_box = (t_in > 0) & (t_in < t_out)
    depth = torch.where(hit_box, torch.minimum(t_in, t_room), t_room)
    return {"poses_c2w": poses, "focal": focal, "pp": (width / 2, height / 2), "depth": depth}


def swin_edges(n: int, w: int = 5) -> torch.Tensor:
    """Symmetric cyclic sliding-window pairs (i, i+1..i+w), as `make_pairs(n, "swin-w")`."""
    pairs = {(i, (i + d) % n) for i in range(n) for d in range(1, w + 1) if (i + d) % n != i}
    pairs |= {(j, i) for i, j in pairs}
    return torch.tensor(sorted(pairs), dtype=torch.long)


def complete_edges(n: int) -> torch.Tensor:
    """All ordered pairs i != j."""
    return torch.tensor([(i, j) for i in range(n) for j in range(n) if i != j], dtype=torch.long)


def pair_predictions(scene: dict, edges: torch.Tensor, noise: float = 0.01,
                     outliers: float = 0.02, seed: int = 0) -> dict:
    """The originals' prediction dict for `edges` from the ground truth, corrupted."""
    gen = torch.Generator().manual_seed(seed)
    poses, depth = scene["poses_c2w"], scene["depth"]
    n, h, w = depth.shape
    rays = camera_rays(torch.full((n,), scene["focal"], dtype=torch.float64),
                       torch.tensor([scene["pp"]] * n, dtype=torch.float64), h, w)
    cam = depth[..., None] * rays
    world = transform_points(poses[:, :3, :3], poses[:, :3, 3], cam)
    i, j = edges[:, 0], edges[:, 1]
    inv_rot = poses[i, :3, :3].transpose(1, 2)
    inv_t = -(inv_rot @ poses[i, :3, 3, None])[..., 0]
    scale = torch.exp(0.4 * torch.randn(len(edges), generator=gen, dtype=torch.float64))
    out = {}
    for key, pts, d in (("1", cam[i], depth[i]),
                        ("2", transform_points(inv_rot, inv_t, world[j]), depth[j])):
        noisy = pts + noise * d[..., None] * torch.randn(pts.shape, generator=gen,
                                                         dtype=torch.float64)
        bad = torch.rand(d.shape, generator=gen) < outliers
        noisy = torch.where(bad[..., None], noisy * (1 + torch.rand(d.shape, generator=gen,
                                                                   dtype=torch.float64)[..., None]),
                            noisy)
        conf = 1 + 8 * torch.exp(-d / 4) * (0.5 + torch.rand(d.shape, generator=gen,
                                                             dtype=torch.float64))
        conf = torch.where(bad, 1.05, conf)
        out[key] = ((scale[:, None, None, None] * noisy).float(), conf.float())
    return {"view1": {"idx": i.tolist(), "true_shape": torch.tensor([[h, w]] * len(edges))},
            "view2": {"idx": j.tolist(), "true_shape": torch.tensor([[h, w]] * len(edges))},
            "pred1": {"pts3d": out["1"][0], "conf": out["1"][1]},
            "pred2": {"pts3d_in_other_view": out["2"][0], "conf": out["2"][1]}}


def path_length(poses: torch.Tensor) -> float:
    """Length of the camera centre path."""
    return float((poses[1:, :3, 3] - poses[:-1, :3, 3]).norm(dim=-1).sum())


def test_depth_is_exact_ray_cast_of_the_room() -> None:
    # a camera at the room centre looking down +z sees the far wall (z = 3) through the centre
    # pixel unless the box is in the way: the box spans x in [-0.8, 0.4] at z 1.2..2.0 and
    # y from 0.2 down, so the centre ray (y = 0) passes above it and hits the wall at depth 3.
    scene = room_scene(1, width=8, height=6, seed=0)
    pose = scene["poses_c2w"][0]
    assert pose.shape == (4, 4)
    # the centre ray in world coordinates ends on a room wall or on the box
    d = scene["depth"][0, 3, 4]
    ray = pose[:3, :3] @ torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    end = pose[:3, 3] + d * ray
    on_room = ((end - torch.as_tensor(ROOM[0])).abs().min() < 1e-9) or (
        (end - torch.as_tensor(ROOM[1])).abs().min() < 1e-9)
    on_box = ((end - torch.as_tensor(BOX[0])).abs().min() < 1e-9) or (
        (end - torch.as_tensor(BOX[1])).abs().min() < 1e-9)
    assert on_room or on_box


def test_pair_points_reproject_to_their_pixels() -> None:
    scene = room_scene(3, seed=1)
    preds = pair_predictions(scene, torch.tensor([[0, 2]]), noise=0.0, outliers=0.0)
    # pred2 is image 2 in camera 0: back in camera 2 it must project onto its own pixel grid
    pose0, pose2 = scene["poses_c2w"][0], scene["poses_c2w"][2]
    rel = torch.linalg.inv(pose2) @ pose0
    pts = preds["pred2"]["pts3d_in_other_view"][0].double()
    scale = (preds["pred1"]["pts3d"][0, ..., 2].double() / scene["depth"][0]).mean()
    cam2 = (pts / scale) @ rel[:3, :3].T + rel[:3, 3]
    u = cam2[..., 0] / cam2[..., 2] * scene["focal"] + scene["pp"][0]
    h, w = scene["depth"].shape[1:]
    assert torch.allclose(u, torch.arange(w, dtype=torch.float64).expand(h, w), atol=1e-3)
    assert torch.allclose(cam2[..., 2], scene["depth"][2], rtol=1e-5)
