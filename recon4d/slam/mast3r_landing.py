"""Mover pixels of a frame seen from its keyframe, tested densely: every frame point is moved
into the keyframe's camera by the tracked Sim(3) and ray-matched on the keyframe's canonical
pointmap (`projective_match`, the matcher's generalised projection, no intrinsics needed).

Tracking's matches run the other way (each keyframe pixel finds a frame pixel), so on a walk,
where the frame magnifies part of the keyframe, they land on a sparse subset of the frame's
pixels and the masks built from them (`recon4d.dynamics.consistency.frame_movers`) miss most
of a mover's pixels. Here each frame pixel is tested on its own. A frame pixel is a mover where
its point
- lands on a pixel the keyframe knows as a mover and is not behind that mover's point by more
  than `margin`: the same mover, still there or moved a little (behind it by more: the
  background the mover uncovered);
- or stands in front of all four keyframe points around where it lands by more than `margin`:
  the keyframe saw through that place, so something came into it since.

Landings outside the keyframe's image (a 2-pixel border included) or with a ray error above
the matcher's are not judged. The kinds are returned apart (`Landing`). A frame that becomes a
keyframe keeps the second kind, and of the first only the landings inside a known mover (all
four keyframe pixels around them movers): at a mover's border the rounded landing and the
1-pixel growth of flagged masks would pass static pixels on from keyframe to keyframe, and
keyframes that kept all of the first kind measured worse (docs/slam.md, "Keyframes keep the
free space").
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from recon4d.geometry.sim3 import sim3_act
from recon4d.slam.mast3r_matching import MAX_DIST, MAX_SQ_RAY_ERROR, projective_match


class Landing(NamedTuple):
    """(H, W) bool frame pixels judged movers by the landing test, by kind (module doc)."""

    on_mover: Tensor  # on a keyframe mover and not behind it by more than the margin
    in_free_space: Tensor  # in front of all four keyframe points around the landing
    inside_mover: Tensor  # on_mover with all four keyframe pixels around the landing movers

    def movers(self) -> Tensor:
        """Both kinds: the frame's mover pixels the test finds (its written mask)."""
        return self.on_mover | self.in_free_space

    def keyframe_movers(self) -> Tensor:
        """What a frame that becomes a keyframe keeps (module doc)."""
        return self.inside_mover | self.in_free_space


def landed_movers(points_k: Tensor, movers_k: Tensor, points_f: Tensor, T_kf: Tensor,
                  margin: float = MAX_DIST) -> Landing:
    """The frame pixels judged movers from where they land in the keyframe (module doc).

    `points_k` (H_k, W_k, 3) the keyframe's canonical pointmap in its camera, `movers_k`
    (H_k, W_k) bool its known movers, `points_f` (H, W, 3) the frame's own points in its camera
    (the pair's scale), `T_kf` (4, 4) Sim(3) keyframe <- frame (`TrackResult.T_kf`); `margin`
    in the keyframe's canonical units (about unit mean distance, like the matcher's)."""
    if points_k.shape[:2] != movers_k.shape or points_f.shape[-1] != 3:
        raise ValueError(f"landed_movers: keyframe points {tuple(points_k.shape)}, movers "
                         f"{tuple(movers_k.shape)} and frame points {tuple(points_f.shape)} "
                         "do not fit")
    height, width = points_k.shape[:2]
    moved = sim3_act(T_kf.to(points_f.dtype), points_f.reshape(-1, 3)).reshape(points_f.shape)
    uv, sq_error = projective_match(points_k, moved)
    uv = uv.reshape(-1, 2)
    judged = ((sq_error.reshape(-1) < MAX_SQ_RAY_ERROR)
              & (uv[:, 0] > 1) & (uv[:, 0] < width - 2) & (uv[:, 1] > 1) & (uv[:, 1] < height - 2))
    distance_k = points_k.norm(dim=-1)
    u0, v0 = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    corners = [(v0, u0), (v0, u0 + 1), (v0 + 1, u0), (v0 + 1, u0 + 1)]
    around = torch.stack([distance_k[c] for c in corners])
    mover_around = torch.stack([movers_k[c] for c in corners])
    near_mover, inside = mover_around.any(0), mover_around.all(0)
    u, v = uv[:, 0].round().long(), uv[:, 1].round().long()
    distance_f = moved.reshape(-1, 3).norm(dim=-1)
    on_mover = movers_k[v, u] & (distance_f < distance_k[v, u] + margin)
    in_free_space = ~near_mover & (distance_f < around.amin(0) - margin)
    shape = points_f.shape[:2]
    return Landing((judged & on_mover).reshape(shape), (judged & in_free_space).reshape(shape),
                   (judged & on_mover & inside).reshape(shape))
