"""The unknowns of the global alignment, shared by the initialisation and both solvers."""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch import Tensor

from recon4d.geometry.cameras import intrinsics_matrix, unproject_depth
from recon4d.geometry.transforms import apply_similarity

BASE_SCALE = 0.5  # geometric mean of the pairwise scales (the reference's scale gauge)


@dataclass
class AlignState:
    """Cameras (camera-to-world R, t; focal; principal point), depths and per-edge similarities.

    Small blocks are float64 (N or E rows), depths float32 (N, H, W). Edge e maps its pair frame
    to the world: x -> pw_scale[e] * pw_rot[e] @ x + pw_trans[e].
    """

    rot: Tensor
    trans: Tensor
    focals: Tensor
    pps: Tensor
    depths: Tensor
    pw_scale: Tensor
    pw_rot: Tensor
    pw_trans: Tensor

    def copy(self) -> AlignState:
        return replace(self, **{k: v.clone() for k, v in vars(self).items()})

    def cam_points(self) -> Tensor:
        """(N, H, W, 3) points in each camera's frame."""
        return unproject_depth(self.depths, intrinsics_matrix(self.focals, self.pps))

    def world_points(self) -> Tensor:
        """(N, H, W, 3) points in the world frame."""
        return apply_similarity(self.rot, self.trans, self.cam_points())

    def rescale(self, factor: float | Tensor, centre: Tensor | None = None) -> None:
        """Scale the world about `centre` (default origin) by `factor`, in place: camera
        positions, depths and pairwise similarities."""
        c = torch.zeros(3, dtype=self.trans.dtype) if centre is None else centre
        self.trans = c + factor * (self.trans - c)
        self.depths *= float(factor)
        self.pw_scale = self.pw_scale * factor
        self.pw_trans = c + factor * (self.pw_trans - c)

    def apply_similarity(self, scale: Tensor, rot: Tensor, trans: Tensor) -> None:
        """Move the whole reconstruction by x -> scale R x + t ((1,), (1, 3, 3), (1, 3)), in
        place: camera poses, depths and pairwise similarities."""
        s, r, t = float(scale[0]), rot[0], trans[0]
        self.rot = r @ self.rot
        self.trans = s * self.trans @ r.T + t
        self.depths *= s
        self.pw_rot = r @ self.pw_rot
        self.pw_trans = s * self.pw_trans @ r.T + t
        self.pw_scale = s * self.pw_scale

    def pw_scale_mean(self) -> Tensor:
        """Geometric mean of the pairwise scales (what the scale gauge pins)."""
        return torch.exp(torch.log(self.pw_scale).mean())

    def normalise_scale(self, base: float | Tensor = BASE_SCALE, centre: Tensor | None = None
                        ) -> None:
        """Apply the scale gauge: geometric mean of the pairwise scales = `base`."""
        self.rescale(base / self.pw_scale_mean(), centre)
