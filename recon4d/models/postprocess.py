"""Maps raw head channels (channels last) to pointmaps, confidences and descriptors.

Modes are the official `(name, vmin, vmax)` tuples: depth `exp` | `square` | `linear` (unbounded
only), confidence `exp` | `sigmoid`, descriptors `norm`.
"""

from __future__ import annotations

import math

import torch

DEPTH_MODES = ("exp", "square", "linear")
CONF_MODES = ("exp", "sigmoid")
DESC_MODES = ("norm",)


def check_modes(depth_mode: tuple, conf_mode: tuple | None, desc_mode: str | None = None,
                desc_conf_mode: tuple | None = None) -> None:
    """Raise ValueError naming the first unsupported mode."""
    if depth_mode[0] not in DEPTH_MODES:
        raise ValueError(f"depth_mode {depth_mode[0]!r} is not one of {DEPTH_MODES}")
    if depth_mode[1:] != (-math.inf, math.inf):
        raise ValueError(f"depth_mode bounds must be (-inf, inf), got {depth_mode[1:]}")
    for name, mode in (("conf_mode", conf_mode), ("desc_conf_mode", desc_conf_mode)):
        if mode is not None and mode[0] not in CONF_MODES:
            raise ValueError(f"{name} {mode[0]!r} is not one of {CONF_MODES}")
    if desc_mode is not None and desc_mode not in DESC_MODES:
        raise ValueError(f"desc_mode {desc_mode!r} is not one of {DESC_MODES}")


def depth_map(xyz: torch.Tensor, mode: tuple) -> torch.Tensor:
    """Points from raw xyz: keep the direction, map the norm d to expm1(d), d^2 or d."""
    if mode[0] == "linear":
        return xyz
    d = xyz.norm(dim=-1, keepdim=True)
    grow = torch.expm1(d) if mode[0] == "exp" else d.square()
    return xyz * grow.div_(d.clamp(min=1e-8))


def conf_map(c: torch.Tensor, mode: tuple) -> torch.Tensor:
    """Confidence: vmin + min(exp(c), vmax - vmin), or (vmax - vmin) * sigmoid(c) + vmin."""
    name, vmin, vmax = mode
    if name == "exp":
        return torch.exp(c).clamp_(max=vmax - vmin).add_(vmin)
    return torch.sigmoid(c).mul_(vmax - vmin).add_(vmin)


def postprocess(raw: torch.Tensor, depth_mode: tuple, conf_mode: tuple | None, desc_dim: int = 0,
                two_confs: bool = False, desc_conf_mode: tuple | None = None
                ) -> dict[str, torch.Tensor]:
    """raw B x H x W x C with channels [xyz, conf?, desc x desc_dim, desc_conf?] -> output dict."""
    out = {"pts3d": depth_map(raw[..., 0:3], depth_mode)}
    start = 3
    if conf_mode is not None:
        out["conf"] = conf_map(raw[..., 3], conf_mode)
        start = 4
    if desc_dim:
        desc = raw[..., start:start + desc_dim]
        out["desc"] = desc / desc.norm(dim=-1, keepdim=True)
        if two_confs:
            out["desc_conf"] = conf_map(raw[..., start + desc_dim], desc_conf_mode or conf_mode)
        else:
            out["desc_conf"] = out["conf"].clone()
    return out
