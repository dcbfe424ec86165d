"""Video-aware alignment (MonST3R's objective terms): public settings and their checked form.

`VideoTerms` turns `global_align` into the dynamic video alignment: moving pixels out of the
multi-view term, a flow term against precomputed optical flow, temporal smoothness of the
trajectory (frames in image-index order) and one shared focal. Both solvers use the same terms
(`flow_term`, `smooth_term`; see docs/algorithms.md, "Video alignment").

Flow layout (memory): `flows` is (E, h, w, 2), one field per predictions edge (i, j), from frame
i to frame j, values (du, dv) in model-resolution pixels, sampled on the pixels (s*y, s*x) of
frame i for an integer stride s >= 1 with h = ceil(H / s), w = ceil(W / s): e.g.
`optical_flow(images, edges)[:, ::s, ::s].astype(np.float16)` computed edge chunk by edge
chunk. A symmetrized graph holds each ordered frame pair once, so each unordered pair costs two
fields (MonST3R keeps four per pair, float32, full resolution); float16 and s = 4 bring 2000
edges at 512x288 from 2.4 GB to 37 MB. NaN flow marks a pixel without a measurement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recon4d.align.inputs import PairData
from recon4d.errors import InputError


@dataclass(frozen=True)
class VideoTerms:
    """MonST3R's video terms for `global_align`; the defaults are its video demo's.

    `dynamic_masks` (N, H, W) bool, True = moving (None: none). `flows`: see the module doc.
    `mask_align`: moving pixels get weight 0 in the multi-view term (MonST3R keeps them: False).
    `flow_weight` w_f, active from the fraction `flow_start` of the iterations, skipped in an
    iteration where the flow loss exceeds `flow_gate`; flow components whose smooth-L1 loss is
    at least `pixel_threshold` are dropped. `smooth_weight` w_s on sum_t |R_rel - I|_F +
    `translation_weight` |t_rel| over consecutive frames. `shared_focal`: one focal for all.
    """

    dynamic_masks: Any = None
    flows: Any = None
    mask_align: bool = True
    flow_weight: float = 0.01
    flow_start: float = 0.1
    flow_gate: float = 25.0
    pixel_threshold: float = 50.0
    smooth_weight: float = 0.01
    translation_weight: float = 1.0
    shared_focal: bool = True


@dataclass
class VideoSetup:
    """`VideoTerms` checked against the predictions, as tensors on the alignment's device."""

    terms: VideoTerms
    masks: Tensor | None  # (N, H, W) bool, True = moving
    flows: Tensor | None  # (E, h, w, 2) float16/32 as given
    stride: int  # flow grid stride in pixels

    @property
    def static_weights(self) -> Tensor | None:
        """(N, H, W) float weights of the multi-view term (0 on moving pixels), or None."""
        if self.masks is None or not self.terms.mask_align:
            return None
        return (~self.masks).float()

    @property
    def uses_flow(self) -> bool:
        return self.flows is not None and self.terms.flow_weight > 0

    @property
    def uses_smooth(self) -> bool:
        return self.terms.smooth_weight > 0

    def flow_start_iteration(self, iterations: int) -> int | None:
        """First iteration of `iterations` with the flow term (None: no flow term)."""
        return math.ceil(self.terms.flow_start * iterations) if self.uses_flow else None


def _check_numbers(t: VideoTerms) -> None:
    checks = [("flow_weight", t.flow_weight, 0.0, False), ("smooth_weight", t.smooth_weight, 0.0,
              False), ("translation_weight", t.translation_weight, 0.0, False),
              ("pixel_threshold", t.pixel_threshold, 0.0, True)]
    for name, value, low, strict in checks:
        ok = isinstance(value, (int, float)) and math.isfinite(value) and (
            value > low if strict else value >= low)
        if not ok:
            raise InputError(f"video terms: {name} must be a finite number "
                             f"{'>' if strict else '>='} {low:g}, got {value!r}")
    if not (isinstance(t.flow_start, (int, float)) and 0 <= t.flow_start <= 1):
        raise InputError(f"video terms: flow_start must be a fraction in [0, 1], got "
                         f"{t.flow_start!r}")
    if not (isinstance(t.flow_gate, (int, float)) and t.flow_gate > 0):
        raise InputError(f"video terms: flow_gate must be positive (inf = no gate), got "
                         f"{t.flow_gate!r}")


def _masks(value: Any, data: PairData) -> Tensor | None:
    if value is None:
        return None
    arr = np.asarray(value)
    want = (data.n_images, data.height, data.width)
    if arr.shape != want:
        raise InputError(f"video dynamic_masks: expected {want[0]} masks of {want[2]}x{want[1]} "
                         f"pixels (one per frame, at the predictions' resolution), got an array "
                         f"of shape {arr.shape}")
    return torch.from_numpy(arr != 0)


def flow_stride(shape: tuple[int, ...], height: int, width: int) -> int | None:
    """The stride s with shape[1:3] == (ceil(H / s), ceil(W / s)), or None."""
    for s in range(1, max(height, width) + 1):
        if (-(-height // s), -(-width // s)) == tuple(shape[1:3]):
            return s
    return None


def _flows(value: Any, data: PairData) -> tuple[Tensor | None, int]:
    if value is None:
        return None, 1
    arr = value if isinstance(value, Tensor) else torch.from_numpy(np.asarray(value))
    stride = flow_stride(tuple(arr.shape), data.height, data.width) if arr.ndim == 4 else None
    if arr.ndim != 4 or arr.shape[0] != data.n_edges or arr.shape[-1] != 2 or stride is None:
        raise InputError(f"video flows: expected ({data.n_edges}, h, w, 2), one flow per "
                         f"predictions edge on frame i's grid at {data.width}x{data.height} "
                         f"pixels or a stride of it (h = ceil(H/s), w = ceil(W/s)), got "
                         f"{tuple(arr.shape)}")
    if not arr.is_floating_point():
        raise InputError(f"video flows: expected floating-point values, got {arr.dtype}")
    return arr, stride


def resolve_video(video: VideoTerms | None, data: PairData) -> VideoSetup | None:
    """Check `video` against the predictions `data`; None when no video terms are asked for."""
    if video is None:
        return None
    if not isinstance(video, VideoTerms):
        raise InputError(f"video must be a VideoTerms, got {type(video).__name__}")
    _check_numbers(video)
    masks = _masks(video.dynamic_masks, data)
    flows, stride = _flows(video.flows, data)
    device = data.pts_i.device
    return VideoSetup(video, None if masks is None else masks.to(device),
                      None if flows is None else flows.to(device), stride)
