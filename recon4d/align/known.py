"""Cameras the user already knows (poses and/or intrinsics): public form and checked form."""

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
    """Known cameras given to `global_align`, in pixels of the model input.

    `focals`: scalar or (N,); `pps`: (2,) or (N, 2) principal points (default: image centre);
    `poses_c2w`: (N, 4, 4) camera-to-world (OpenCV axes) or {image index: 4x4} for some images.
    `fix=True` keeps them fixed; `fix=False` uses them as initial values only.
    """

    focals: Any = None
    pps: Any = None
    poses_c2w: Any = None
    fix: bool = True

    @classmethod
    def from_intrinsics(cls, intrinsics: Any, poses_c2w: Any = None, fix: bool = True
                        ) -> KnownCameras:
        """From (3, 3) or (N, 3, 3) K matrices: focal = mean(fx, fy), pp = (cx, cy)."""
        k = _array(intrinsics, "known intrinsics")
        if k.shape[-2:] != (3, 3) or k.ndim not in (2, 3):
            raise InputError(f"known intrinsics: expected (3, 3) or (N, 3, 3), got "
                             f"{tuple(k.shape)}")
        return cls(focals=(k[..., 0, 0] + k[..., 1, 1]) / 2, pps=k[..., :2, 2], poses_c2w=poses_c2w,
                   fix=fix)


@dataclass
class CameraPriors:
    """`KnownCameras` checked against N images: float64 tensors, None where not given."""

    poses: Tensor | None = None  # (N, 4, 4)
    pose_mask: Tensor | None = None  # (N,) bool, which poses are known
    focals: Tensor | None = None  # (N,)
    pps: Tensor | None = None  # (N, 2)
    fix: bool = True

    @property
    def n_known_poses(self) -> int:
        return 0 if self.pose_mask is None else int(self.pose_mask.sum())

    @property
    def fixed_pose_mask(self) -> Tensor | None:
        """Images whose pose the solvers must not change (None: none)."""
        return self.pose_mask if self.fix and self.n_known_poses else None


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
    if not isinstance(poses, Mapping) and len(poses) != n:
        raise InputError(f"known poses: {len(poses)} given for {n} images")
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
    return out, mask


def _per_image(value: Any, what: str, n: int, shape: tuple[int, ...]) -> Tensor:
    """A value given once or per image, broadcast to (N, *shape)."""
    t = _array(value, what)
    if tuple(t.shape) == shape:
        return t.expand(n, *shape).clone()
    if tuple(t.shape) != (n, *shape):
        raise InputError(f"{what}: expected {shape or 'a scalar'} or {(n, *shape)}, got "
                         f"{tuple(t.shape)}")
    return t.clone()


def resolve_known(known: KnownCameras | None, n_images: int, height: int, width: int
                  ) -> CameraPriors:
    """Check user-given cameras against N images of H x W and put them in tensor form."""
    if known is None:
        return CameraPriors()
    if not isinstance(known, KnownCameras):
        raise InputError(f"known cameras must be a KnownCameras, got {type(known).__name__}")
    priors = CameraPriors(fix=bool(known.fix))
    if known.poses_c2w is not None:
        priors.poses, priors.pose_mask = _poses(known.poses_c2w, n_images)
    if known.pps is not None and known.focals is None:
        raise InputError("known principal points need known focals too")
    if known.focals is not None:
        priors.focals = _per_image(known.focals, "known focals", n_images, ())
        if not (priors.focals > 0).all():
            raise InputError("known focals must be positive")
        centre = torch.tensor([width / 2, height / 2], dtype=torch.float64)
        priors.pps = (centre.repeat(n_images, 1) if known.pps is None
                      else _per_image(known.pps, "known principal points", n_images, (2,)))
    return priors
