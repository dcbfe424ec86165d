"""Extra terms of the fast solver's pose step, as Gauss-Newton quadratic models in the poses.

The flow and smoothness residuals of a frame pair (a, b) depend only on the relative pose, so
under the pose step's left perturbations d (see `pose_graph`) they change as r + A (d_b - d_a).
With IRLS weights w, a pair contributes the moments M = sum w A^T A and m = sum w A^T r; the
model q(d) = c + 2 g.d + d.H d is built once per pose step and costs nothing per pixel inside
the Levenberg-Marquardt loop.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from recon4d.align.pose_graph import POSE_SIZE


@dataclass
class PoseQuadratic:
    """q(d) = const + 2 grad.d + d.hess d, d = the poses' displacement from the base poses."""

    hess: Tensor  # (6N, 6N)
    grad: Tensor  # (6N,)
    const: Tensor  # ()
    base_rot: Tensor  # (N, 3, 3)
    base_trans: Tensor  # (N, 3)

    def displacement(self, rot: Tensor, trans: Tensor) -> Tensor:
        """(6N,) left-perturbation step from the base poses to (rot, trans) (small angles)."""
        turn = rot @ self.base_rot.transpose(1, 2)
        w = torch.stack((turn[:, 2, 1] - turn[:, 1, 2], turn[:, 0, 2] - turn[:, 2, 0],
                         turn[:, 1, 0] - turn[:, 0, 1]), dim=-1) / 2
        v = trans - (turn @ self.base_trans[..., None])[..., 0]
        return torch.cat((w, v), dim=-1).reshape(-1)

    def cost(self, rot: Tensor, trans: Tensor) -> Tensor:
        d = self.displacement(rot, trans)
        return self.const + 2 * self.grad @ d + d @ (self.hess @ d)

    def system(self, rot: Tensor, trans: Tensor) -> tuple[Tensor, Tensor]:
        """(H, g) at (rot, trans): g is half the gradient of the model."""
        return self.hess, self.grad + self.hess @ self.displacement(rot, trans)


def pair_quadratic(pairs: Tensor, moment: Tensor, first: Tensor, const: Tensor,
                   rot: Tensor, trans: Tensor) -> PoseQuadratic:
    """The model of terms over frame `pairs` (P, 2) with moments M (P, 6, 6), m (P, 6) and
    value `const`, linearised at the poses (rot, trans)."""
    n = rot.shape[0]
    a, b = pairs[:, 0], pairs[:, 1]
    hess = torch.zeros(n, n, POSE_SIZE, POSE_SIZE, dtype=torch.float64, device=rot.device)
    moment = moment.double()
    for rows, cols, sign in ((a, a, 1), (b, b, 1), (a, b, -1), (b, a, -1)):
        hess.index_put_((rows, cols), sign * moment, accumulate=True)
    grad = torch.zeros(n, POSE_SIZE, dtype=torch.float64, device=rot.device)
    grad.index_add_(0, b, first.double())
    grad.index_add_(0, a, -first.double())
    size = n * POSE_SIZE
    return PoseQuadratic(hess.permute(0, 2, 1, 3).reshape(size, size), grad.reshape(-1),
                         const.double(), rot.clone(), trans.clone())

