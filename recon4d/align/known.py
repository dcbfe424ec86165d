"""Cameras the user already knows (poses and/or intrinsics), checked and put in one form."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recon4d.errors import InputError


@dataclass
class KnownCameras:
    """Known camera-to-world poses (N, 4, 4) with a mask of which are known, and intrinsics.

    `fix_poses`/`fix_intrinsics`: keep them fixed (True) or use them as initial values only.
    """

    poses: Tensor | None = None
    pose_mask: Tensor | None = None
    focals: Tensor | None = None
    pps: Tensor | None = None
    fix_poses: bool = True
    fix_intrinsics: bool = True

    @property
    def n_known_poses(self) -> int:
        return 0 if self.pose_mask is None else int(self.pose_mask.sum())

    @property
    def fixed_pose_mask(self) -> Tensor | None:
        """Images whose pose the solvers must not change (None: none)."""
        return self.pose_mask if self.fix_poses and self.n_known_poses else None


def _array(value: Any, what: str) -> Tensor:
    try:
        t = torch.as_tensor(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what}: not numeric ({exc})") from None
    if not torch.isfinite(t).all():
        raise InputError(f"{what}: contains NaN or infinite values")
    return t


def _poses(poses: Any, n: int) -> tuple[Tensor, Tensor]:
    """(N, 4, 4) poses and mask from an (N, 4, 4) array or a {image index: 4x4} mapping."""
    items = poses.items() if isinstance(poses, Mapping) else enumerate(poses)
    out = torch.eye(4, dtype=torch.float64).repeat(n, 1, 1)
    mask = torch.zeros(n, dtype=torch.bool)
    for k, pose in items:
        if not 0 <= int(k) < n:
            raise InputError(f"known poses: image index {k} outside 0..{n - 1}")
        p = _array(pose, f"known pose of image {k}")
        if p.shape == (3, 4):
            p = torch.cat((p, p.new_tensor([[0, 0, 0, 1]])))
        if p.shape != (4, 4):
            raise InputError(f"known pose of image {k}: expected a 4x4 (or 3x4) matrix, got "
                             f"{tuple(p.shape)}")
        rot = p[:3, :3]
        if (rot @ rot.T - torch.eye(3, dtype=rot.dtype)).abs().max() > 1e-4 or torch.det(rot) < 0:
            raise InputError(f"known pose of image {k}: the 3x3 block is not a rotation")
        out[int(k)], mask[int(k)] = p, True
    if not isinstance(poses, Mapping) and len(poses) != n:
        raise InputError(f"known poses: {len(poses)} given for {n} images")
    return out, mask


def known_cameras(n_images: int, height: int, width: int, poses: Any = None,
                  focals: Any = None, intrinsics: Any = None, fix_poses: bool = True,
                  fix_intrinsics: bool = True) -> KnownCameras:
    """Check user-given cameras: `poses` (N, 4, 4) or {index: 4x4}; `focals` scalar or (N,);
    `intrinsics` (3, 3) or (N, 3, 3) K in pixels of the model input (focal = mean(fx, fy))."""
    known = KnownCameras(fix_poses=fix_poses, fix_intrinsics=fix_intrinsics)
    if poses is not None:
        known.poses, known.pose_mask = _poses(poses, n_images)
    if focals is not None and intrinsics is not None:
        raise InputError("give either known focals or known intrinsics, not both")
    if intrinsics is not None:
        k = _array(intrinsics, "known intrinsics")
        k = k.expand(n_images, 3, 3) if k.shape == (3, 3) else k
        if k.shape != (n_images, 3, 3):
            raise InputError(f"known intrinsics: expected (3, 3) or ({n_images}, 3, 3), got "
                             f"{tuple(k.shape)}")
        known.focals = (k[:, 0, 0] + k[:, 1, 1]) / 2
        known.pps = k[:, :2, 2].clone()
    elif focals is not None:
        f = _array(focals, "known focals").reshape(-1)
        if f.numel() not in (1, n_images):
            raise InputError(f"known focals: expected 1 or {n_images} values, got {f.numel()}")
        known.focals = f.expand(n_images).clone()
        known.pps = torch.tensor([width / 2, height / 2], dtype=torch.float64).repeat(n_images, 1)
    if known.focals is not None and not (known.focals > 0).all():
        raise InputError("known focals must be positive")
    return known
