"""Drop points that other views contradict: they float in front of a more confident surface."""

from __future__ import annotations

import torch
from torch import Tensor

from recon4d.geometry.cameras import intrinsics_matrix, unproject_depth
from recon4d.geometry.transforms import apply_similarity, apply_transform, invert_rigid, make_rigid

CLEAN_TOL = 0.01


def contradicted_points(depths: Tensor, focals: Tensor, pps: Tensor, rot: Tensor, trans: Tensor,
                        confs: Tensor, tol: float = CLEAN_TOL) -> Tensor:
    """(N, H, W) bool: pixels of image i whose 3D point, seen from another camera j, lands in
    j's image in front of j's own surface while being less confident than j's nearest pixel.

    The reference's `clean_pointcloud` compares z with (1 - tol) D_j at the rounded pixel, which
    flags most points of slanted surfaces at low resolution; here "in front" means in front of
    all four pixels around the projection, by more than `tol` relative.

    One image against all others at a time: memory O(N H W), time O(N^2 H W).
    """
    n, h, w = depths.shape
    dev = depths.device
    cam_points = unproject_depth(depths, intrinsics_matrix(focals, pps))
    world = apply_similarity(rot, trans, cam_points).reshape(n, -1, 3)
    world_to_cam = invert_rigid(make_rigid(rot, trans))
    flat_depth, flat_conf = depths.reshape(n, -1), confs.reshape(n, -1)
    bad = torch.zeros(n, h * w, dtype=torch.bool, device=dev)
    others = torch.arange(n, device=dev)
    for i in range(n):
        cam = apply_transform(world_to_cam, world[i].expand(n, -1, -1))  # (N, HW, 3)
        z = cam[..., 2]
        safe_z = torch.where(z > 0, z, torch.ones_like(z))
        x = cam[..., 0] / safe_z * focals.to(z.dtype)[:, None] + pps[:, None, 0]
        y = cam[..., 1] / safe_z * focals.to(z.dtype)[:, None] + pps[:, None, 1]
        inside = (z > 0) & (x > -0.5) & (x < w - 0.5) & (y > -0.5) & (y < h - 0.5)
        inside &= others[:, None] != i
        x0 = x.floor().clamp(0, w - 1).long()
        y0 = y.floor().clamp(0, h - 1).long()
        x1, y1 = (x0 + 1).clamp(max=w - 1), (y0 + 1).clamp(max=h - 1)
        surface = torch.stack([torch.gather(flat_depth, 1, yy * w + xx)
                               for yy in (y0, y1) for xx in (x0, x1)]).amin(0)
        front = z < (1 - tol) * surface
        pix = (y.round().clamp(0, h - 1) * w + x.round().clamp(0, w - 1)).long()
        weaker = flat_conf[i][None] < torch.gather(flat_conf, 1, pix)
        bad[i] = (inside & front & weaker).any(0)
    return bad.reshape(n, h, w)
