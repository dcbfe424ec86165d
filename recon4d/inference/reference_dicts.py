"""Pair predictions <-> the reference `inference()` output (view1/view2/pred1/pred2 dicts),
for code and tests written against the original implementation."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from recon4d.errors import Recon4dError
from recon4d.inference.engine import ProbeStore
from recon4d.inference.model_images import images_from_views, uint8_to_img
from recon4d.inference.predictions import PairPredictions, ShapeGroup, group_by_shape
from recon4d.models.probes import PROBE_KEYS


def to_reference_dict(preds: PairPredictions) -> dict[str, Any]:
    """The reference `inference()` output: view1/view2/pred1/pred2 stacked over edges.

    With mixed shapes every tensor field is a list of per-edge tensors without batch dim,
    as the reference returns it. `img` is included when images are kept, and the probes as
    Easi3R's `cross_atten_maps_k` / `match_feature` (both sides) when present.
    """
    idx1, idx2 = preds.edges[:, 0].tolist(), preds.edges[:, 1].tolist()
    views = {"view1": {"idx": idx1, "instance": [str(i) for i in idx1]},
             "view2": {"idx": idx2, "instance": [str(i) for i in idx2]}}
    shapes = {"view1": preds.true_shape1, "view2": preds.true_shape2}
    out: dict[str, Any] = {"loss": None}
    if preds.uniform:
        for side in ("view1", "view2"):
            views[side]["true_shape"] = torch.from_numpy(shapes[side].copy())
            if preds.images is not None and len(preds):
                views[side]["img"] = torch.cat(
                    [uint8_to_img(preds.images[i]) for i in views[side]["idx"]])
        out.update(views, pred1=dict(preds.pred1), pred2=dict(preds.pred2))
        if preds.has_probes:
            for side, maps, column in (("pred1", preds.attn_maps1, 0),
                                       ("pred2", preds.attn_maps2, 1)):
                out[side].update(cross_atten_maps_k=maps, match_feature=preds.token_features[
                    torch.from_numpy(preds.edges[:, column])])
        return out
    for side in ("view1", "view2"):
        views[side]["true_shape"] = [torch.from_numpy(s.copy()) for s in shapes[side]]
        if preds.images is not None:
            views[side]["img"] = [uint8_to_img(preds.images[i])[0] for i in views[side]["idx"]]
    items = [preds[e] for e in range(len(preds))]
    out.update(views)
    for side in ("pred1", "pred2"):
        names = getattr(preds.groups[0], side)
        out[side] = {k: [item[side][k] for item in items] for k in names}
    return out


def from_reference_dict(d: dict[str, Any]) -> PairPredictions:
    """Build from a reference `inference()` output (stacked tensors or per-edge lists).

    Images are recovered from `img` when every image index 0..N-1 occurs in some edge.
    """
    idx1 = _int_list(d["view1"]["idx"])
    idx2 = _int_list(d["view2"]["idx"])
    if len(idx1) != len(idx2):
        raise Recon4dError(f"view1 has {len(idx1)} pairs but view2 has {len(idx2)}")
    edges = np.stack([idx1, idx2], axis=1).astype(np.int64).reshape(-1, 2)
    ts1 = _shapes(d["view1"]["true_shape"])
    ts2 = _shapes(d["view2"]["true_shape"])
    pred1, pred2 = dict(d["pred1"]), dict(d["pred2"])
    probes = _probe_fields(edges, pred1, pred2)
    groups = [ShapeGroup(index, _take(pred1, index), _take(pred2, index))
              for index in group_by_shape(ts1, ts2)]
    images = images_from_views(d["view1"], d["view2"], edges)
    return PairPredictions(edges, ts1, ts2, groups, images=images, **probes)


def _probe_fields(edges: np.ndarray, pred1: dict[str, Any],
                  pred2: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Move Easi3R's probe outputs (if any) out of the pred dicts into the probe fields."""
    if "cross_atten_maps_k" not in pred1:
        return {}
    probes = [{key: _stack(pred.pop(key)) for key in PROBE_KEYS if key in pred}
              for pred in (pred1, pred2)]
    store = ProbeStore(len(edges), int(edges.max()) + 1)
    store.add(np.arange(len(edges)), edges, *probes)
    return store.fields()


def _stack(value: Any) -> torch.Tensor:
    """A stacked tensor, or a list of per-edge tensors stacked on a new dim 0."""
    if isinstance(value, (list, tuple)):
        return torch.stack([torch.as_tensor(v) for v in value])
    return torch.as_tensor(value)


def _int_list(values: Any) -> list[int]:
    return [int(v) for v in (values.tolist() if hasattr(values, "tolist") else values)]


def _shapes(values: Any) -> np.ndarray:
    """true_shape as a stacked tensor (E, 2) or a list of per-edge (2,)/(1, 2) -> (E, 2) int32."""
    if isinstance(values, (list, tuple)):
        return np.asarray([np.asarray(v).reshape(2) for v in values], dtype=np.int32).reshape(-1, 2)
    return np.asarray(values).astype(np.int32).reshape(-1, 2)


def _take(pred: dict[str, Any], index: np.ndarray) -> dict[str, torch.Tensor]:
    """Rows `index` of every field of a reference pred dict (stacked tensor or per-edge list)."""
    out = {}
    for name, value in pred.items():
        if isinstance(value, (list, tuple)):
            out[name] = torch.stack([torch.as_tensor(value[i]) for i in index]).float()
        elif isinstance(value, (torch.Tensor, np.ndarray)):
            tensor = torch.as_tensor(value)
            whole = len(index) == len(tensor) and np.array_equal(index, np.arange(len(tensor)))
            out[name] = (tensor if whole else tensor[torch.from_numpy(index)]).float()
    return out
