"""Span refinement of the MASt3R-style SLAM's frame poses: a frame is tracked against one
keyframe only (spec §6), and its error grows with its distance from that keyframe. When the next
keyframe B arrives, the frames tracked against the previous keyframe A are decoded against both
A and B again and each gets one pose minimising both sets of tracking residuals (Huber IRLS
Gauss-Newton over the frame's world pose, keyframe poses held, its scale held near the tracked
one: `REFINE_SCALE_SIGMA`).

Each pair's prediction has its own scale, so the frame's points from the (f, B) run are first
brought to the (f, A) run's scale (the ratio of the Sim(3) scales solved against B alone and
tracked against A). The frames are matched against B newest first, each search starting at
the newer frame's matches, as tracking does forwards. At the end of the stream the newest frame
stands in for B (`finish`). At most `max_frames` (the newest) frames of a span are buffered, so
the extra work per frame is bounded: two decoder runs, two matchings and two solves, paid when
B arrives. With the consistency check (`check_consistency`, the stream's "geometry" and "flow"
movers), the matches against B that disagree under the pose solved against B alone, and those
against A that disagree under the tracked pose, are left out first
(`recon4d.dynamics.consistency`): without that, the refinement undid what the check did for
tracking (64 x 48 walk among 20 movers, seed 0, scratch run: ATE 0.51 % of the path with
refinement, 0.19 % without).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recon4d.geometry.sim3 import (
    nearest_sim3,
    sim3_adjoint,
    sim3_inverse,
    sim3_scale,
)
from recon4d.slam.mast3r_keyframe import Keyframe
from recon4d.slam.mast3r_matching import match_keyframe
from recon4d.slam.mast3r_network import SlamPairSource
from recon4d.slam.mast3r_tracking import (
    Residuals,
    frame_residuals,
    gauss_newton_sim3,
    inconsistent_matches,
    plausible_sim3,
    pose_pixels,
    static_pixels,
    usable_matches,
)

WorldResiduals = Callable[[Tensor], Residuals]

# Standard deviation of the Gaussian prior keeping a refined frame's log-scale at the tracked
# one. Ray residuals barely tell a forward move from a change of scale, so on a walk the joint
# solve traded the one for the other between two keyframes whose poses disagree slightly: the
# scale moved up to 5 % and camera centres moved away from both keyframes' solutions (walk
# among 6 movers with their true masks, seed 1: frame 24 error 0.004 -> 0.015). On an orbit the
# joint changes the scale by at most 0.2 % and that helps. Scratch runs, 30-frame walks among 6
# movers, seeds 0-9, mean ATE % of the path with the consistency check / frozen movers: free
# 0.096 / 0.054, 0.01 0.077 / 0.053, 0.003 0.064 / 0.050, fixed 0.062 / 0.049; the orbit of
# tests/test_mast3r_refine.py, seeds 0-3: 0.003 equal to free to 1e-5, fixed up to 15 % worse.
REFINE_SCALE_SIGMA = 0.003


@dataclass
class SpanFrame:
    """A buffered frame: its stream index, code, mover mask (or None) and Sim(3) pose
    keyframe A <- frame as tracked."""

    index: int
    code: Any
    movers: Tensor | None
    T_af: Tensor


class KeyframeResiduals:
    """Tracking residuals of a buffered frame against a keyframe from a fresh decoder run, as a
    function of the frame's world Sim(3) pose (Jacobians for left steps of it); `pixels` (H, W,
    2) the matches' frame pixels (to start the next search), `fraction` the usable match
    fraction (of the keyframe's non-mover pixels, as in tracking)."""

    def __init__(self, source: SlamPairSource, frame: SpanFrame, keyframe: Keyframe,
                 code_k: Any, intrinsics: Tensor | None = None,
                 init: Tensor | None = None) -> None:
        pred_f, pred_k = source.decode(frame.code, code_k)
        points_f = pred_f["pts3d"]
        self.matches = match_keyframe(points_f, pred_k["pts3d"], pred_f["desc"],
                                      pred_k["desc"], init=init, exclude_f=frame.movers,
                                      exclude_k=keyframe.movers)
        self.weight, _, usable = usable_matches(self.matches, pred_f, pred_k,
                                                keyframe.average_conf())
        # the keyframe's prediction only: the rest is not needed past the matching
        self.points_kf = pred_k["pts3d"]
        self.keyframe, self.intrinsics = keyframe, intrinsics
        self.pixels = self.matches.pixels(points_f.shape[1])
        self.fraction = float(usable.sum()) / static_pixels(keyframe.movers)
        device = points_f.device
        self.to_keyframe = sim3_inverse(nearest_sim3(keyframe.pose_c2w.to(device,
                                                                          torch.float64)))
        self._adjoint = sim3_adjoint(self.to_keyframe)
        self._use(pose_pixels(usable, self.matches, intrinsics))

    def _use(self, keep: Tensor) -> None:
        self.keep = keep
        self._relative = frame_residuals(
            self.keyframe.points.reshape(-1, 3)[keep], self.points_kf, keep,
            self.matches.position.reshape(-1, 2)[keep], self.weight[keep], self.intrinsics)

    def __call__(self, pose: Tensor) -> Residuals:
        res = self._relative(self.to_keyframe @ pose.to(self.to_keyframe.device))
        return Residuals(res.r, res.jac @ self._adjoint, res.sqrt_info)

    def drop_inconsistent(self, pose: Tensor) -> None:
        """Leave out the matches that disagree under the frame's world `pose`
        (`inconsistent_matches`: movers the masks missed)."""
        T_kf = self.to_keyframe @ pose.to(self.to_keyframe.device)
        bad = inconsistent_matches(self.keyframe.points, self.points_kf, self.keep, T_kf)
        if bool(bad.any()):
            self._use(self.keep[~bad])


def _rescaled(residuals: WorldResiduals, scale: float) -> WorldResiduals:
    """`residuals` of frame points multiplied by `scale` first (pose T -> T diag(s, s, s, 1))."""
    def scaled(pose: Tensor) -> Residuals:
        factor = torch.tensor([scale, scale, scale, 1.0], dtype=pose.dtype,
                              device=pose.device)
        return residuals(pose * factor)
    return scaled


def _joined(*parts: WorldResiduals) -> WorldResiduals:
    def joined(pose: Tensor) -> Residuals:
        res = [part(pose) for part in parts]
        return Residuals(torch.cat([r.r for r in res]), torch.cat([r.jac for r in res]),
                         torch.cat([r.sqrt_info for r in res]))
    return joined


class SpanRefiner:
    """The frames tracked against the current keyframe (at most `max_frames`, the newest), and
    their refinement once the next keyframe arrives (module doc)."""

    def __init__(self, source: SlamPairSource, max_frames: int,
                 intrinsics: Tensor | None = None, min_valid: float = 0.05,
                 check_consistency: bool = False) -> None:
        self.source, self.max_frames = source, max_frames
        self.intrinsics, self.min_valid = intrinsics, min_valid
        self.check_consistency = check_consistency
        self.frames: deque[SpanFrame] = deque(maxlen=max(1, max_frames))

    def add(self, frame: SpanFrame) -> None:
        """Buffer a frame tracked against the current keyframe (the oldest leaves when full)."""
        if self.max_frames > 0:
            self.frames.append(frame)

    def clear(self) -> None:
        """Forget the buffered frames (a new span starts, or tracking was lost)."""
        self.frames.clear()

    def refine(self, keyframe_a: Keyframe, code_a: Any, keyframe_b: Keyframe, code_b: Any
               ) -> list[tuple[int, Tensor]]:
        """(frame index, refined Sim(3) keyframe A <- frame) of each buffered frame tracked
        against `keyframe_a` that also tracks against the next keyframe `keyframe_b` (newest
        first), at the keyframes' current poses; the buffer is then empty. A frame whose match
        against B is too weak or whose solve is implausible keeps its pose."""
        refined, init = [], None
        pose_a = nearest_sim3(keyframe_a.pose_c2w.double())
        for frame in reversed(self.frames):
            to_b = KeyframeResiduals(self.source, frame, keyframe_b, code_b, self.intrinsics,
                                     init)
            init = to_b.pixels
            if to_b.fraction < self.min_valid:
                continue
            start = pose_a @ frame.T_af.to(pose_a)
            alone, _ = gauss_newton_sim3(to_b, start)
            if self.check_consistency and plausible_sim3(sim3_inverse(start) @ alone):
                to_b.drop_inconsistent(alone)
                alone, _ = gauss_newton_sim3(to_b, alone)
            if not plausible_sim3(sim3_inverse(start) @ alone):
                continue
            to_a = KeyframeResiduals(self.source, frame, keyframe_a, code_a, self.intrinsics)
            if self.check_consistency:
                to_a.drop_inconsistent(start)
            ratio = float(sim3_scale(alone) / sim3_scale(start))
            pose, _ = gauss_newton_sim3(_joined(to_a, _rescaled(to_b, ratio)), start,
                                        scale_sigma=REFINE_SCALE_SIGMA)
            if plausible_sim3(sim3_inverse(start) @ pose):
                refined.append((frame.index, nearest_sim3(sim3_inverse(pose_a) @ pose)))
        self.clear()
        return refined

    def finish(self, keyframe_a: Keyframe, code_a: Any) -> list[tuple[int, Tensor]]:
        """At the end of the stream, with no next keyframe to come: `refine` the buffered frames
        against `keyframe_a` and the newest buffered frame, which stands in for keyframe B as a
        tracked frame becomes one (its prediction from the run against A, whose scale its
        tracked pose carries; that pose stays as it is; never written)."""
        if len(self.frames) < 2:
            self.clear()
            return []
        last = self.frames.pop()
        pred, _ = self.source.decode(last.code, code_a)
        device = pred["pts3d"].device
        pose = nearest_sim3(keyframe_a.pose_c2w.double()).to(device) @ last.T_af.to(device)
        stand_in = Keyframe.from_prediction(last.index, np.zeros((0, 0, 3), np.uint8), pred,
                                            pose, last.movers)
        return self.refine(keyframe_a, code_a, stand_in, last.code)
