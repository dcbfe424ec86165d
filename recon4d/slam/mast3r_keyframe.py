"""A keyframe of the MASt3R-style SLAM: its canonical pointmap in its own camera, refined by
confidence-weighted fusion of every prediction of it (spec §6, `weighted_pointmap`), and its
Sim(3) pose world <- keyframe."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recon4d.errors import InputError
from recon4d.slam.mast3r_store import DenseField, Paged

FLAGS_TO_MOVER = 2  # consistency flags after which a keyframe pixel is a mover


class Keyframe(Paged):
    """Frame `index` kept as a keyframe; maps are H x W [x C] tensors on one device.

    `points` is the canonical pointmap in the keyframe's camera, `conf_sum` the per-pixel sum C
    of the fused confidences and `count` the number N of fused predictions (average confidence
    C / N); `movers` (H, W) bool marks pixels of moving objects (kept out of tracking and the
    map); `flags` (H, W) uint8 counts the tracks whose consistency check flagged a pixel
    (`flag`); `pose_c2w` (4, 4) is the Sim(3) world <- keyframe (`recon4d.geometry.sim3`). Its
    descriptors are not kept: edges and tracking match fresh decoder outputs, and retrieval keeps
    one global descriptor (which keeps a keyframe at 21 bytes a pixel instead of 121).

    The image and the maps are `DenseField`s: in a stream they may be spilled to disk
    (`recon4d.slam.mast3r_store`); index, count and pose always stay in RAM.
    """

    image = DenseField()
    points = DenseField()
    conf_sum = DenseField()
    movers = DenseField()
    flags = DenseField()

    def __init__(self, index: int, image: np.ndarray, points: Tensor, conf_sum: Tensor,
                 count: int, movers: Tensor, pose_c2w: Tensor,
                 flags: Tensor | None = None) -> None:
        super().__init__()
        self.index, self.count, self.pose_c2w = index, count, pose_c2w
        self.image, self.points, self.conf_sum, self.movers = image, points, conf_sum, movers
        self.flags = (torch.zeros(movers.shape, dtype=torch.uint8, device=movers.device)
                      if flags is None else flags)

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

    def flag(self, pixels: Tensor, to_mover: int = FLAGS_TO_MOVER) -> None:
        """Count one more flag at the flat pixels `pixels` (a consistency check); a pixel
        flagged `to_mover` times becomes a mover (one flag can be noise)."""
        if pixels.numel() == 0:
            return
        flags = self.flags.reshape(-1).clone()
        flags[pixels] = (flags[pixels].int() + 1).clamp_max(255).to(flags.dtype)
        self.flags = flags.reshape(self.movers.shape)
        self.movers = self.movers | (self.flags >= to_mover)

    def map_pixels(self, min_conf: float) -> Tensor:
        """(H, W) bool: the pixels that enter the map, average confidence above `min_conf` and
        not movers."""
        return (self.average_conf() > min_conf) & ~self.movers

    def average_conf(self) -> Tensor:
        """(H, W) average confidence C / N of the fused predictions."""
        return self.conf_sum / self.count
