"""A keyframe of the MASt3R-style SLAM: its canonical pointmap in its own camera, refined by
confidence-weighted fusion of every prediction of it (spec §6, `weighted_pointmap`), and its
Sim(3) pose world <- keyframe."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recon4d.errors import InputError
from recon4d.slam.mast3r_store import DenseField, Paged


class Keyframe(Paged):
    """Frame `index` kept as a keyframe; maps are H x W [x C] tensors on one device.

    `points` is the canonical pointmap in the keyframe's camera, `conf_sum` the per-pixel sum C
    of the fused confidences and `count` the number N of fused predictions (average confidence
    C / N); `movers` (H, W) bool marks pixels of moving objects (kept out of tracking and the
    map); `pose_c2w` (4, 4) is the Sim(3) world <- keyframe (`recon4d.geometry.sim3`). Its
    descriptors are not kept: edges and tracking match fresh decoder outputs, and retrieval keeps
    one global descriptor (which keeps a keyframe at 20 bytes a pixel instead of 120).

    The image and the maps are `DenseField`s: in a stream they may be spilled to disk
    (`recon4d.slam.mast3r_store`); index, count and pose always stay in RAM.
    """

    image = DenseField()
    points = DenseField()
    conf_sum = DenseField()
    movers = DenseField()

    def __init__(self, index: int, image: np.ndarray, points: Tensor, conf_sum: Tensor,
                 count: int, movers: Tensor, pose_c2w: Tensor) -> None:
        super().__init__()
        self.index, self.count, self.pose_c2w = index, count, pose_c2w
        self.image, self.points, self.conf_sum, self.movers = image, points, conf_sum, movers

    @classmethod
    def from_prediction(cls, index: int, image: np.ndarray, pred: dict[str, Tensor],
                        pose_c2w: Tensor, movers: Tensor | None = None) -> Keyframe:
        """A keyframe from a frame's own prediction dict (`pts3d`, `conf`, in its camera), e.g.
        the frame side of a `SlamPairSource.decode`."""
        points = pred["pts3d"]
        if movers is None:
            movers = torch.zeros(points.shape[:2], dtype=torch.bool, device=points.device)
        return cls(index, image, points.clone(), pred["conf"].clone(), 1, movers, pose_c2w)

    def fuse(self, points: Tensor, conf: Tensor) -> None:
        """Fuse one more prediction (H, W, 3) of this keyframe in its camera with confidences
        (H, W): X <- (C X + C' X') / (C + C'), C <- C + C', N <- N + 1."""
        if points.shape != self.points.shape or conf.shape != self.conf_sum.shape:
            raise InputError(f"keyframe {self.index}: cannot fuse points {tuple(points.shape)} "
                             f"and confidences {tuple(conf.shape)} into a "
                             f"{tuple(self.points.shape)} pointmap")
        total = self.conf_sum + conf
        self.points = (self.conf_sum[..., None] * self.points
                       + conf[..., None] * points) / total[..., None]
        self.conf_sum = total
        self.count += 1

    def average_conf(self) -> Tensor:
        """(H, W) average confidence C / N of the fused predictions."""
        return self.conf_sum / self.count
