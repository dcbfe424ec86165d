"""Images as the network sees them: uint8 frames <-> normalised input tensors, and the frames
recovered from reference-style view dicts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

Images = np.ndarray | list[np.ndarray]  # (N, H, W, 3) uint8, or one (H_n, W_n, 3) per frame


def uint8_to_img(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> the model input (1, 3, H, W) float32 in [-1, 1], as the loader does."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255
    return (x - 0.5) / 0.5


def img_to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) model input -> (H, W, 3) uint8 (exact inverse of the loader's normalisation)."""
    u8 = ((img.detach().float().cpu() * 0.5 + 0.5) * 255).round().clamp(0, 255)
    return u8.to(torch.uint8).permute(1, 2, 0).numpy()


def stack_if_uniform(images: list[np.ndarray]) -> Images:
    """One (N, H, W, 3) array when every image has the same shape, else the list itself."""
    return np.stack(images) if len({im.shape for im in images}) == 1 else images


def images_from_views(view1: Mapping[str, Any], view2: Mapping[str, Any],
                      edges: np.ndarray) -> Images | None:
    """uint8 images recovered from the views' `img` (E entries of 3 x H x W in -1..1, tensors or
    arrays), or None if absent, malformed or some image index unused."""
    if "img" not in view1 or "img" not in view2 or len(edges) == 0:
        return None
    num = int(edges.max()) + 1
    found: dict[int, torch.Tensor] = {}
    for side, view in ((0, view1), (1, view2)):
        if len(view["img"]) != len(edges):
            return None
        for e, i in enumerate(edges[:, side].tolist()):
            if i not in found:
                img = torch.as_tensor(view["img"][e])
                img = img[0] if img.ndim == 4 else img
                if img.ndim != 3 or img.shape[0] != 3:
                    return None
                found[i] = img
    if len(found) < num:
        return None
    return stack_if_uniform([img_to_uint8(found[i]) for i in range(num)])
