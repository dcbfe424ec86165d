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

from recon4d.align.block_system import BlockSystem


@dataclass
class PoseQuadratic:
    """q(d) = const + 2 grad.d + d.hess d, d = the poses' displacement from the base poses."""

    hess: BlockSystem  # 6N x 6N, blocks at the terms' frame pairs
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
        return self.const + 2 * self.grad @ d + d @ self.hess.matvec(d)

    def system(self, rot: Tensor, trans: Tensor) -> tuple[BlockSystem, Tensor]:
        """(H, g) at (rot, trans): g is half the gradient of the model."""
        return self.hess, self.grad + self.hess.matvec(self.displacement(rot, trans))


def pair_quadratic(pairs: Tensor, moment: Tensor, first: Tensor, const: Tensor,
                   rot: Tensor, trans: Tensor) -> PoseQuadratic:
    """The model of terms over frame `pairs` (P, 2) with moments M (P, 6, 6), m (P, 6) and
    value `const`, linearised at the poses (rot, trans)."""
    n = rot.shape[0]
    a, b = pairs[:, 0], pairs[:, 1]
    moment = moment.double()
    # d_b - d_a: blocks M at (a, a) and (b, b), -M at (a, b) and (b, a)
    hess = BlockSystem.from_blocks(n, torch.cat((a, b, a, b)), torch.cat((a, b, b, a)),
                                   torch.cat((moment, moment, -moment, -moment)))
    grad = torch.zeros(n, moment.shape[-1], dtype=torch.float64, device=rot.device)
    grad.index_add_(0, b, first.double())
    grad.index_add_(0, a, -first.double())
    return PoseQuadratic(hess, grad.reshape(-1), const.double(), rot.clone(), trans.clone())

