"""What the MASt3R-style SLAM asks of its network (`SlamPairSource`), and the source that
answers with the MASt3R network (`NetworkPairSource`).

The stream keeps one opaque code per frame (`encode`: encoder tokens once per frame) and asks
for one decoder run per (frame, keyframe) pair (`decode`). The oracle of
`recon4d.synthetic.mast3r_slam_oracle` plugs in the same way (its codes are frame indices).

`decode(code_f, code_k)` runs f as view 1 and returns (pred_f, pred_k), batch-free, both in
f's camera: `pts3d` (H, W, 3) = X_ff resp. X_kf, `conf` (H, W) >= 1, `desc` (H, W, D) unit
descriptors, `desc_conf` (H, W) >= 0; float32 on the source's device.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import torch
from torch import Tensor

from recon4d.errors import InputError
from recon4d.inference.engine import has_encoder, resolve_device
from recon4d.models.network import view_true_shape
from recon4d.models.precision import autocast_context
from recon4d.slam.mast3r_store import DenseField, Paged

PRED_KEYS = ("pts3d", "conf", "desc", "desc_conf")


class SlamPairSource(Protocol):
    """Encoder once per frame, one decoder run per (frame, keyframe) pair."""

    def encode(self, view: dict) -> Any:
        """The code of one frame (a view dict with `img` 1 x 3 x H x W, as `load_images`)."""

    def decode(self, code_f: Any, code_k: Any) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """(pred_f, pred_k) of frame f (view 1) and keyframe k, both in f's camera (module
        doc)."""


class FrameCode(Paged):
    """A frame's encoder tokens (1, T, enc_dim) after enc_norm, positions (1, T, 2), and its
    true shape (1, 2) as (H, W); `DenseField`s, so the stream may spill keyframes' codes
    (`recon4d.slam.mast3r_store`)."""

    feat = DenseField()
    pos = DenseField()
    true_shape = DenseField()

    def __init__(self, feat: Tensor, pos: Tensor, true_shape: Tensor) -> None:
        super().__init__()
        self.feat, self.pos, self.true_shape = feat, pos, true_shape


def _single(pred: dict[str, Tensor], points_key: str) -> dict[str, Tensor]:
    """The batch-free float32 prediction dict (PRED_KEYS) of one decoder side."""
    return {key: pred[points_key if key == "pts3d" else key][0].float() for key in PRED_KEYS}


class NetworkPairSource:
    """`SlamPairSource` over the MASt3R network (`recon4d.models`, `encode` / `decode` split).

    `dtype` bf16 / fp16 autocasts the trunk where `recon4d.models.precision` allows it; the
    heads run in float32 (as in `recon4d.inference.engine`).
    """

    def __init__(self, model: torch.nn.Module, device: str | torch.device | None = None,
                 dtype: str = "fp32") -> None:
        config = getattr(model, "config", None)
        if not has_encoder(model) or not getattr(config, "is_mast3r", False):
            raise InputError(f"MASt3R-style SLAM needs the MASt3R network (descriptor head), "
                             f"not {getattr(config, 'arch', type(model).__name__)}")
        self.model = model
        self.device = resolve_device(model, device)
        self.dtype = dtype
        autocast_context(dtype, self.device)  # refuses a dtype this device cannot run

    def _autocast(self) -> contextlib.AbstractContextManager:
        return autocast_context(self.dtype, self.device)

    @torch.no_grad()
    def encode(self, view: dict) -> FrameCode:
        img = view["img"].to(self.device)
        shape = view_true_shape(view).to(torch.int32)
        with self._autocast():
            feat, pos = self.model.encode(img, shape)
        return FrameCode(feat, pos, shape)

    @torch.no_grad()
    def decode(self, code_f: FrameCode,
               code_k: FrameCode) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        with self._autocast():
            pred1, pred2 = self.model.decode({"true_shape": code_f.true_shape},
                                             {"true_shape": code_k.true_shape},
                                             code_f.feat, code_f.pos, code_k.feat, code_k.pos)
        return _single(pred1, "pts3d"), _single(pred2, "pts3d_in_other_view")
