"""Normalise pair predictions (our PairPredictions, the originals' dict, or flat npz keys)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recon4d.errors import InputError
from recon4d.inference.model_images import images_from_views
from recon4d.inference.predictions import PairPredictions


@dataclass
class PairData:
    """Pair predictions stacked over E ordered edges (i, j), all images H x W.

    `pts_i` (E, H, W, 3): image i in camera i; `pts_j`: image j in camera i (pair frame);
    `conf_i`, `conf_j` (E, H, W): raw confidences (>= 1); `images` (N, H, W, 3) uint8 or None.
    """

    edges: Tensor
    pts_i: Tensor
    pts_j: Tensor
    conf_i: Tensor
    conf_j: Tensor
    n_images: int
    images: Tensor | None = None

    @property
    def n_edges(self) -> int:
        return self.edges.shape[0]

    @property
    def height(self) -> int:
        return self.pts_i.shape[1]

    @property
    def width(self) -> int:
        return self.pts_i.shape[2]

    def image_confidence(self) -> Tensor:
        """(N, H, W) per-pixel maximum raw confidence over every edge containing the image."""
        hw = self.height * self.width
        out = torch.ones(self.n_images, hw, device=self.conf_i.device)
        for idx, conf in ((self.edges[:, 0], self.conf_i), (self.edges[:, 1], self.conf_j)):
            out.scatter_reduce_(0, idx[:, None].expand(-1, hw), conf.reshape(-1, hw), "amax")
        return out.reshape(self.n_images, self.height, self.width)


def unflatten_npz_keys(flat: Mapping[str, Any]) -> dict[str, Any]:
    """{"view1/idx": a, ...} (the predictions.npz layout) -> {"view1": {"idx": a}, ...}."""
    nested: dict[str, Any] = {}
    for key, value in flat.items():
        head, _, tail = key.partition("/")
        if tail:
            nested.setdefault(head, {})[tail] = value
        else:
            nested[head] = value
    return nested


def _tensor(value: Any, what: str, source: str) -> Tensor:
    if isinstance(value, (list, tuple)) and value and hasattr(value[0], "shape"):
        shapes = sorted({tuple(v.shape) for v in value})
        if len(shapes) > 1:
            raise InputError(f"{source}: images of different sizes are not supported by the "
                             f"global alignment ({what} has per-pair shapes {shapes}); resize "
                             "the inputs to one size")
        value = torch.stack([torch.as_tensor(np.asarray(v) if not isinstance(v, Tensor) else v)
                             for v in value])
    try:
        return torch.as_tensor(np.asarray(value) if not isinstance(value, Tensor) else value)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{source}: {what} is not an array ({exc})") from None


def _get(d: Mapping[str, Any], section: str, key: str, source: str) -> Any:
    if section not in d or not isinstance(d[section], Mapping) or key not in d[section]:
        raise InputError(f"{source}: pair predictions lack '{section}/{key}'")
    return d[section][key]


def as_pair_data(predictions: Any, source: str = "predictions",
                 device: torch.device | str = "cpu") -> PairData:
    """Validate and normalise pair predictions into `PairData`.

    Accepts `recon4d.inference.PairPredictions` (read without copies), the originals' dict
    {"view1", "view2", "pred1", "pred2"} or its flat "view1/idx" form (npz).
    Problems raise InputError naming `source`.
    """
    if isinstance(predictions, PairPredictions):
        if not predictions.uniform:
            shapes = sorted({tuple(s) for s in np.concatenate(
                (predictions.true_shape1, predictions.true_shape2)).tolist()})
            raise InputError(f"{source}: images of different sizes are not supported by the "
                             f"global alignment (H, W: {shapes}); resize the inputs to one size")
        edges = torch.as_tensor(np.asarray(predictions.edges))
        d = {"view1": {"idx": edges[:, 0]}, "view2": {"idx": edges[:, 1]},
             "pred1": predictions.pred1, "pred2": predictions.pred2}
        if predictions.images is not None:
            d["images"] = np.asarray(predictions.images)
    elif isinstance(predictions, Mapping):
        d = dict(predictions)
    else:
        raise InputError(f"{source}: expected pair predictions, got {type(predictions).__name__}")
    if any("/" in k for k in d):
        d = unflatten_npz_keys(d)
    idx_i = _tensor(_get(d, "view1", "idx", source), "view1/idx", source).long().reshape(-1)
    idx_j = _tensor(_get(d, "view2", "idx", source), "view2/idx", source).long().reshape(-1)
    pts_i = _tensor(_get(d, "pred1", "pts3d", source), "pred1/pts3d", source)
    pts_j = _tensor(_get(d, "pred2", "pts3d_in_other_view", source),
                    "pred2/pts3d_in_other_view", source)
    conf_i = _tensor(_get(d, "pred1", "conf", source), "pred1/conf", source)
    conf_j = _tensor(_get(d, "pred2", "conf", source), "pred2/conf", source)
    n_edges = idx_i.numel()
    if n_edges == 0 or idx_j.numel() != n_edges:
        raise InputError(f"{source}: view1/idx and view2/idx must list the same number (>0) of "
                         f"pairs, got {idx_i.numel()} and {idx_j.numel()}")
    if pts_i.ndim != 4 or pts_i.shape[-1] != 3 or pts_i.shape[0] != n_edges:
        raise InputError(f"{source}: pred1/pts3d must be ({n_edges}, H, W, 3), got "
                         f"{tuple(pts_i.shape)}")
    shape = tuple(pts_i.shape)
    if tuple(pts_j.shape) != shape:
        raise InputError(f"{source}: images of different sizes are not supported by the global "
                         f"alignment (pred1/pts3d {shape[1:3]} vs pred2/pts3d_in_other_view "
                         f"{tuple(pts_j.shape[1:3])}); resize the inputs to one size")
    for name, conf in (("pred1/conf", conf_i), ("pred2/conf", conf_j)):
        if tuple(conf.shape) != shape[:3]:
            raise InputError(f"{source}: {name} must be {shape[:3]}, got {tuple(conf.shape)}")
    if (idx_i < 0).any() or (idx_j < 0).any():
        raise InputError(f"{source}: negative image index in view1/idx or view2/idx")
    n_images = int(max(idx_i.max(), idx_j.max())) + 1
    images = d.get("images")
    if images is not None:
        images = _tensor(images, "images", source)
        n_images = max(n_images, images.shape[0])  # an image in no pair: a disconnected graph
    if n_images < 2:
        raise InputError(f"{source}: global alignment needs at least two images, got one")
    tensors = {"pred1/pts3d": pts_i, "pred2/pts3d_in_other_view": pts_j,
               "pred1/conf": conf_i, "pred2/conf": conf_j}
    for name, t in tensors.items():
        if not torch.isfinite(t).all():
            raise InputError(f"{source}: {name} contains NaN or infinite values")
    if images is not None:
        if images.shape != (n_images, shape[1], shape[2], 3):
            raise InputError(f"{source}: images must be ({n_images}, {shape[1]}, {shape[2]}, 3),"
                             f" got {tuple(images.shape)}")
        images = images.to(torch.uint8)
    else:
        found = images_from_views(d["view1"], d["view2"],
                                  torch.stack((idx_i, idx_j), dim=1).numpy())
        images = torch.from_numpy(found) if isinstance(found, np.ndarray) else None
    f32 = {"dtype": torch.float32, "device": device}
    return PairData(edges=torch.stack((idx_i, idx_j), dim=1).to(device),
                    pts_i=pts_i.to(**f32), pts_j=pts_j.to(**f32), conf_i=conf_i.to(**f32),
                    conf_j=conf_j.to(**f32), n_images=n_images,
                    images=None if images is None else images.to(device))
