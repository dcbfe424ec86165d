"""Per-frame mover masks for the MASt3R-style SLAM from optical flow (MonST3R's test, spec §2.4):
where the flow from the frame to its keyframe disagrees with the flow the camera motion induces,
something moved.

It reads the decoder run that tracking makes anyway (frame f as view 1, keyframe k): the
camera motion is the similarity taking k's canonical points onto its prediction in f's camera,
so no extra network call is needed; the optical flow is DIS (or RAFT) from f to k. Errors are
normalised by the pair's own noise ("noise"), smoothed and thresholded as `recon4d.dynamics.flow`
does. A frame decoded alone (the first, relocalisation) gets no mask.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from recon4d.dynamics.flow import (
    FLOW_THRESHOLD,
    SMOOTHING,
    flow_errors,
    normalise_errors,
    smooth_maps,
)
from recon4d.dynamics.flow_geometry import pair_induced_flows
from recon4d.dynamics.optical_flow import optical_flow
from recon4d.inference.model_images import img_to_uint8
from recon4d.slam.mast3r_keyframe import Keyframe


class FlowMovers:
    """`MoverMasks` of `recon4d.slam.mast3r` from the flow between a frame and its keyframe."""

    def __init__(self, method: str = "dis", threshold: float = FLOW_THRESHOLD) -> None:
        self.method, self.threshold = method, threshold

    def __call__(self, view: dict, pred_f: dict, pred_k: dict | None,
                 keyframe: Keyframe | None) -> Tensor | None:
        if pred_k is None or keyframe is None:
            return None
        own_f, k_in_f, own_k = (p.double().cpu().numpy() for p in
                                (pred_f["pts3d"], pred_k["pts3d"], keyframe.points))
        weights = (pred_k["conf"] * keyframe.average_conf()).double().cpu().numpy()
        induced = pair_induced_flows(own_f, k_in_f, own_k, weights)[0][None]
        images = np.stack([img_to_uint8(view["img"][0]), keyframe.image])
        optical = optical_flow(images, np.array([[0, 1]]), self.method,
                               initial=induced if self.method == "dis" else None)
        maps = np.nan_to_num(normalise_errors(flow_errors(induced, optical), "noise"))
        maps = smooth_maps(maps, SMOOTHING * float(np.hypot(*images.shape[1:3])))
        return torch.from_numpy(maps[0] > self.threshold).to(pred_f["pts3d"].device)
