"""The unknowns of the sparse alignment and the cameras and 3D points they give (§4.3.5).

Per image: a quaternion and translation relative to its parent in the kinematic tree (the root's
absolute), a log-size, a log-focal, a principal point normalised by the image size and the anchor
depths normalised by their median. Each camera turns about the point at its median depth on its
optical axis (its "body" frame), which decouples rotation from translation; the world is divided
by the smallest size so that the scale cannot collapse (unless two or more poses are fixed, which
fix the scale). float64 throughout: the problem is small.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon4d.align.sparse.anchors import focal_compensated
from recon4d.align.sparse.tree import KinematicTree
from recon4d.geometry.quaternions import matrix_to_quat, quat_to_matrix

FOCAL_LIMITS = (0.25, 10.0)  # focal clip, units of the image diagonal


@dataclass
class Cameras:
    """Cameras of one evaluation: c2w rotation (N, 3, 3) and centre (N, 3) before the global
    factor, focal (N,), principal point (N, 2), size (N,), global factor (scalar tensor)."""

    rot: Tensor
    centre: Tensor
    focal: Tensor
    pp: Tensor
    size: Tensor
    factor: Tensor


class SparseParameters:
    """Optimisable tensors plus the fixed data that turns them into cameras and points."""

    def __init__(self, tree: KinematicTree, median: Tensor, focal0: Tensor, anchor_depth: Tensor,
                 height: int, width: int, shared: bool = False,
                 known_rot: Tensor | None = None, known_centre: Tensor | None = None,
                 fixed_pose: Tensor | None = None) -> None:
        n = median.shape[0]
        f64 = {"dtype": torch.float64}
        self.tree, self.median, self.focal0 = tree, median.double(), focal0.double()
        self.size_wh = torch.tensor([width, height], **f64)
        self.diag = float(self.size_wh.norm())
        self.shared = shared
        rows = 1 if shared else n
        self.quat = torch.zeros(n, 4, **f64)
        self.quat[:, 3] = 1
        self.trans = torch.zeros(n, 3, **f64)
        self.log_size = torch.zeros(n, **f64)
        f_init = focal0.double().median().reshape(1) if shared else focal0.double()
        self.log_focal = f_init.log().clone()
        self.pp = torch.full((rows, 2), 0.5, **f64)
        self.depth = (anchor_depth.double() / self.median[:, None]).clone()
        self.fixed_pose = torch.zeros(n, dtype=torch.bool) if fixed_pose is None else fixed_pose
        self.known_rot, self.known_centre = known_rot, known_centre
        self.metric = int(self.fixed_pose.sum()) >= 2

    def tensors(self) -> dict[str, Tensor]:
        return {"quat": self.quat, "trans": self.trans, "log_size": self.log_size,
                "log_focal": self.log_focal, "pp": self.pp, "depth": self.depth}

    def set_cameras(self, rot: Tensor, centre: Tensor, size: Tensor) -> None:
        """Express camera-to-world rotations (N, 3, 3), centres (N, 3) and sizes (N,) in the
        tree's parameters (rescaled so that the smallest size is 1 unless metric)."""
        if not self.metric:
            centre, size = centre / size.min(), size / size.min()
        self.log_size = size.log().clone()
        focal, _ = self.intrinsics()
        body = centre + rot[:, :, 2] * (size * self.median * focal / self.focal0)[:, None]
        quat, trans = matrix_to_quat(rot).clone(), body.clone()
        for parent, child in self.tree.edges:
            quat[child] = matrix_to_quat(rot[parent].T @ rot[child])
            trans[child] = rot[parent].T @ (body[child] - body[parent])
        self.quat, self.trans = quat, trans

    def intrinsics(self) -> tuple[Tensor, Tensor]:
        """Focal (N,) clipped to FOCAL_LIMITS x diagonal, principal point (N, 2) in pixels."""
        n = self.median.shape[0]
        focal = self.log_focal.exp().clamp(FOCAL_LIMITS[0] * self.diag,
                                           FOCAL_LIMITS[1] * self.diag).expand(n)
        return focal, (self.pp * self.size_wh).expand(n, 2)

    def cameras(self) -> Cameras:
        """Compose the tree into camera-to-world rotations and centres."""
        focal, pp = self.intrinsics()
        size = self.log_size.exp()
        pivot = size * self.median * focal / self.focal0  # depth of the point each camera turns on
        rel_rot = quat_to_matrix(self.quat)
        rots: list[Tensor] = [None] * len(size)  # type: ignore[list-item]
        bodies: list[Tensor] = [None] * len(size)  # type: ignore[list-item]
        for node in self.tree.order:
            parent = int(self.tree.parent[node])
            if self.fixed_pose[node]:
                rot = self.known_rot[node]
                body = self.known_centre[node] + rot[:, 2] * pivot[node]
            elif parent < 0:
                rot, body = rel_rot[node], self.trans[node]
            else:
                rot = rots[parent] @ rel_rot[node]
                body = bodies[parent] + rots[parent] @ self.trans[node]
            rots[node], bodies[node] = rot, body
        rot, body = torch.stack(rots), torch.stack(bodies)
        centre = body - rot[:, :, 2] * pivot[:, None]
        factor = torch.ones((), dtype=size.dtype) if self.metric else 1 / size.min()
        return Cameras(rot, centre, focal, pp, size, factor)

    def anchor_depths(self, cams: Cameras) -> Tensor:
        """(N, A) anchor depths: size * median * (f / f0 + d - 1) (the reference's 'add' mode)."""
        scale = (cams.size * self.median)[:, None]
        return scale * ((cams.focal / self.focal0)[:, None] + self.depth - 1)

    def points(self, cams: Cameras, anchor_depth: Tensor, img: Tensor, anchor: Tensor,
               offset: Tensor, pix: Tensor) -> Tensor:
        """World points (M, 3) of pixels `pix` (M, 2) of images `img` hanging off `anchor`
        with canonical depth ratio `offset` (world already multiplied by the global factor)."""
        focal = _take(cams.focal, img)
        flat = anchor_depth.reshape(-1).index_select(0, img * anchor_depth.shape[1] + anchor)
        depth = flat * focal_compensated(offset, _take(self.focal0, img) / focal)
        xy = (pix - _take(cams.pp, img)) / focal[:, None] * depth[:, None]
        cam = torch.cat((xy, depth[:, None]), dim=1)
        world = (_take(cams.rot, img) * cam[:, None, :]).sum(-1) + _take(cams.centre, img)
        return world * cams.factor

    def project(self, cams: Cameras, world: Tensor, img: Tensor) -> Tensor:
        """Pixels (M, 2) of world points (M, 3) in cameras `img` (depth clamped >= 1e-3)."""
        rel = world / cams.factor - _take(cams.centre, img)
        local = (_take(cams.rot, img) * rel[:, :, None]).sum(1)  # R^T rel
        z = local[:, 2:].clamp(min=1e-3)
        pix = local[:, :2] / z * _take(cams.focal, img)[:, None] + _take(cams.pp, img)
        return pix.clamp(-1000, 2000)


def _take(t: Tensor, idx: Tensor) -> Tensor:
    """t[idx] along dim 0 (index_select: far cheaper than advanced indexing on CPU)."""
    return t.index_select(0, idx)
