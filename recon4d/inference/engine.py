"""Batched pair inference: run any pair model over the edges of a graph, results in edge order.

The model is any callable `model(view1, view2) -> (pred1, pred2)` on collated view dicts: the
network, or a stand-in such as the synthetic oracle (which may have no parameters at all).
Attention probes and motion masks (Easi3R) need the network (`recon4d.models.probes`).

A model with `encode(img, true_shape) -> (feat, pos)` and `decode(view1, view2, feat1, pos1,
feat2, pos2, *, heads)` (the network) has each image encoded ONCE, not once per pair it belongs
to: the tokens of all N images are kept on the run device (`EncoderCache`) while the pairs are
decoded. That is the O(N) price of the saving: N x T x enc_dim floats, e.g. 768 tokens x 1024 x
4 B = 3 MB per 512x384 frame in float32 (3 GB for 1000 frames).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from recon4d.errors import InputError, Recon4dError
from recon4d.inference.batching import plan_batches
from recon4d.inference.memory import auto_batch_size
from recon4d.inference.model_images import img_to_uint8, stack_if_uniform
from recon4d.inference.predictions import PairPredictions, ShapeGroup, group_by_shape, group_rows
from recon4d.models.config import ModelConfig
from recon4d.models.precision import autocast_context
from recon4d.models.probes import PROBE_KEYS, probing, supports_probes

PairModel = Callable[[dict, dict], tuple[dict, dict]]
# sink(edge positions (B,), pred1, pred2): one batch's CPU float32 predictions, see infer_pairs
PairSink = Callable[[np.ndarray, dict[str, torch.Tensor], dict[str, torch.Tensor]], None]
_HOST_KEYS = ("true_shape",)  # stay on the CPU, as in the reference


def infer_pairs(model: PairModel, views: Sequence[dict], edges: np.ndarray,
                batch_size: int | None = None, device: str | torch.device | None = None,
                dtype: str = "fp32", progress: bool = True, keep_images: bool = True,
                probes: bool = False, motion_masks: np.ndarray | None = None, *,
                heads: bool = True, encoder_cache: EncoderCache | None = None,
                sink: PairSink | None = None) -> PairPredictions:
    """Predict every edge (view1 index, view2 index) of `edges` over `views`, without gradients.

    Batches never mix image shapes and keep (a, b) next to (b, a); `batch_size=None` sizes them
    from free memory (see `recon4d.inference.memory`). `dtype` bf16/fp16 autocasts the network
    trunk where `recon4d.models.precision` allows it (CUDA; bf16 on CPUs with native bf16).
    `probes` fills `attn_maps1`, `attn_maps2` and `token_features`; `motion_masks` (bool
    (N, H, W), True = moving, at the views' size) runs Easi3R's re-weighted pass. Both need the
    network and images of one shape. `heads=False` (network and `probes` only) skips the heads:
    the shape groups then hold empty pred dicts, only the probes are filled. `encoder_cache`
    (network only) keeps the encoder tokens of these views for a later pass over the same views
    (filled when empty, reused when full). `sink` receives each batch's predictions instead of
    keeping them (e.g. `recon4d.inference.pair_store.PairStore.add`), so memory does not grow
    with the number of pairs; the shape groups then hold empty pred dicts. Returns CPU float32
    predictions (and the uint8 inputs if `keep_images`).
    """
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if len(edges) == 0:
        raise Recon4dError("no pairs to run: the pair graph produced no edges")
    if edges.min() < 0 or edges.max() >= len(views):
        raise Recon4dError(f"pair indices must lie in 0..{len(views) - 1}, "
                           f"got {int(edges.min())}..{int(edges.max())}")
    if batch_size is not None and batch_size < 1:
        raise Recon4dError(f"batch size must be >= 1, got {batch_size}")
    device = resolve_device(model, device)
    autocast = autocast_context(dtype, device)
    shapes = np.stack([np.asarray(v["true_shape"]).reshape(2) for v in views]).astype(np.int32)
    if probes or motion_masks is not None:
        _check_probe_request(model, shapes, probes, motion_masks)
    cached = has_encoder(model)
    if (not heads or encoder_cache is not None) and not cached:
        raise InputError(f"skipping the heads or caching encoder tokens needs the DUSt3R/MASt3R "
                         f"network, not {type(model).__name__}")
    if not heads and not probes:
        raise InputError("heads=False leaves nothing to predict without probes=True")
    if motion_masks is not None:
        views = [dict(v, atten_mask=torch.from_numpy(m[None])) for v, m in zip(
            views, np.asarray(motion_masks), strict=True)]
    probe_store = ProbeStore(len(edges), len(views)) if probes else None
    ts1, ts2 = shapes[edges[:, 0]], shapes[edges[:, 1]]
    groups = group_by_shape(ts1, ts2)
    config = getattr(model, "config", None)
    config = config if isinstance(config, ModelConfig) else None
    trunk_bytes = 4 if dtype == "fp32" else 2

    def pair_batch_size(height: int, width: int) -> int:
        if batch_size is not None:
            return batch_size
        return auto_batch_size(height, width, config, device, trunk_bytes)

    def group_batch_size(g: int) -> int:
        first = groups[g][0]
        return pair_batch_size(*(int(v) for v in np.maximum(ts1[first], ts2[first])))

    batches = plan_batches(edges, groups, group_batch_size)
    group_of, row_of = group_rows(groups, len(edges))
    stores: list[dict[str, dict[str, torch.Tensor]] | None] = [None] * len(groups)
    with torch.no_grad(), probing(model) if probes else contextlib.nullcontext(), tqdm(
            total=len(edges), unit="pair", desc="pairs", disable=not progress) as bar:
        if cached:
            cache = encoder_cache if encoder_cache is not None else EncoderCache()
            cache.fill(model, views, edges, device, autocast, pair_batch_size)
        for batch in batches:
            if cached:
                view1 = collate([_without_image(views[i]) for i in edges[batch, 0]], device)
                view2 = collate([_without_image(views[i]) for i in edges[batch, 1]], device)
                (f1, p1), (f2, p2) = cache.tokens(edges[batch, 0]), cache.tokens(edges[batch, 1])
                with autocast:
                    pred1, pred2 = model.decode(view1, view2, f1, p1, f2, p2, heads=heads)
            else:
                view1 = collate([views[i] for i in edges[batch, 0]], device)
                view2 = collate([views[i] for i in edges[batch, 1]], device)
                with autocast:
                    pred1, pred2 = model(view1, view2)
            if probe_store is not None:
                probe_store.add(batch, edges[batch], pred1, pred2)
            if sink is not None:
                sink(batch, *({name: pred[name].detach().to("cpu", torch.float32)
                               for name in _batched(pred, len(batch))} for pred in (pred1, pred2)))
                bar.update(len(batch))
                continue
            g = int(group_of[batch[0]])
            if stores[g] is None:
                stores[g] = {"pred1": _allocate(pred1, len(batch), len(groups[g])),
                             "pred2": _allocate(pred2, len(batch), len(groups[g]))}
            rows = torch.from_numpy(row_of[batch])
            for side, pred in (("pred1", pred1), ("pred2", pred2)):
                for name, target in stores[g][side].items():
                    target[rows] = pred[name].detach().to("cpu", torch.float32)
            bar.update(len(batch))
    result_groups = [ShapeGroup(index, *((store["pred1"], store["pred2"]) if store else ({}, {})))
                     for index, store in zip(groups, stores, strict=True)]
    images = _view_images(views) if keep_images else None
    fields = probe_store.fields() if probe_store is not None else {}
    return PairPredictions(edges, ts1, ts2, result_groups, images=images, **fields)


def has_encoder(model: Any) -> bool:
    """Whether `model` offers the split `encode` / `decode` steps (the network does)."""
    return callable(getattr(model, "encode", None)) and callable(getattr(model, "decode", None))


@dataclass
class EncoderCache:
    """Encoder outputs of N images, each computed once and shared by every pair and pass.

    Conventions: per image i, `feats[i]` (1, T, enc_dim) tokens after enc_norm and `pos[i]`
    (1, T, 2) token positions, on the run device (see the module doc for the memory price);
    None until an edge needs the image. A cache belongs to one list of views and one dtype:
    `fill` refuses views of other sizes or another device.
    """

    feats: list[torch.Tensor | None] = field(default_factory=list)
    pos: list[torch.Tensor | None] = field(default_factory=list)
    key: tuple | None = None  # (true shapes, device) of the views the tokens belong to

    def fill(self, model: Any, views: Sequence[dict], needed: np.ndarray, device: torch.device,
             autocast: contextlib.AbstractContextManager,
             chunk_pairs: Callable[[int, int], int]) -> None:
        """Encode the `needed` images not encoded yet, same-shape images batched in image order.

        `chunk_pairs(H, W)` is the pair batch size at that size; an encoder batch takes twice
        as many images (a pair encodes two).
        """
        shapes = tuple(tuple(int(x) for x in np.asarray(v["true_shape"]).reshape(2))
                       for v in views)
        key = (shapes, str(device))
        if self.key is None:
            self.key, self.feats, self.pos = key, [None] * len(views), [None] * len(views)
        elif self.key != key:
            raise InputError(f"this encoder cache holds tokens of {len(self.key[0])} images "
                             f"on {self.key[1]}, not of these {len(views)} images on "
                             f"{device}; use a new cache for other views")
        todo = [int(i) for i in np.unique(needed) if self.feats[i] is None]
        image_keys = {i: (tuple(views[i]["img"].shape), shapes[i]) for i in todo}
        for image_key in dict.fromkeys(image_keys.values()):
            index = [i for i in todo if image_keys[i] == image_key]
            step = 2 * chunk_pairs(*image_key[1])
            for start in range(0, len(index), step):
                part = index[start:start + step]
                batch = collate([{"img": views[i]["img"], "true_shape": views[i]["true_shape"]}
                                 for i in part], device)
                with autocast:
                    feat, pos = model.encode(batch["img"], batch["true_shape"])
                for row, i in enumerate(part):
                    self.feats[i], self.pos[i] = feat[row:row + 1], pos[row:row + 1]

    def tokens(self, images: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """(feat (B, T, enc_dim), pos (B, T, 2)) of the images `images` (B,), in that order."""
        return (torch.cat([self.feats[i] for i in images]),
                torch.cat([self.pos[i] for i in images]))


class ProbeStore:
    """Probe outputs gathered batch by batch: per-edge key maps, per-image encoder features.

    An image's features come from its last edge as view 1 (as Easi3R picks them), else from its
    last edge as view 2; an image in no edge keeps NaN features. All CPU float32.
    """

    def __init__(self, num_edges: int, num_images: int) -> None:
        self.num_edges = num_edges
        self.num_images = num_images
        self.maps: list[torch.Tensor] = []  # attn_maps1, attn_maps2: (E, NH, NW, C)
        self.features: torch.Tensor | None = None  # (N, NH, NW, D)
        self.source_rank = np.full(num_images, -1, dtype=np.int64)

    def add(self, batch: np.ndarray, pairs: np.ndarray, pred1: dict, pred2: dict) -> None:
        """Take (and remove) the probe keys of one batch's outputs; `pairs` (B, 2) image indices.

        Both sides need `cross_atten_maps_k`, pred1 `match_feature` (pred2's is optional).
        """
        probes = [{key: torch.as_tensor(pred.pop(key)).detach().to("cpu", torch.float32)
                   for key in PROBE_KEYS if key in pred} for pred in (pred1, pred2)]
        if not self.maps:
            self.maps = [torch.empty((self.num_edges,) + tuple(p["cross_atten_maps_k"].shape[1:]))
                         for p in probes]
            shape = (self.num_images,) + tuple(probes[0]["match_feature"].shape[1:])
            self.features = torch.full(shape, float("nan"))
        rows = torch.from_numpy(batch)
        for target, side in zip(self.maps, probes, strict=True):
            target[rows] = side["cross_atten_maps_k"]
        for side, offset in ((0, self.num_edges), (1, 0)):  # any view-1 edge beats view-2 edges
            if "match_feature" not in probes[side]:  # the reference's pred2 has none
                continue
            for row, (edge, image) in enumerate(zip(batch, pairs[:, side], strict=True)):
                rank = int(edge) + offset
                if rank > self.source_rank[image]:
                    self.source_rank[image] = rank
                    self.features[image] = probes[side]["match_feature"][row]

    def fields(self) -> dict[str, torch.Tensor]:
        """The `PairPredictions` probe fields."""
        return {"attn_maps1": self.maps[0], "attn_maps2": self.maps[1],
                "token_features": self.features}


def _check_probe_request(model: Any, shapes: np.ndarray, probes: bool,
                         motion_masks: np.ndarray | None) -> None:
    """Refuse probes or motion masks that this model or these images cannot give."""
    asked = "attention probes" if probes else "motion masks"
    if not supports_probes(model):
        raise InputError(f"{asked} need the DUSt3R/MASt3R network, not {type(model).__name__}")
    if (shapes != shapes[0]).any():
        sizes = sorted({(int(h), int(w)) for h, w in shapes})
        raise InputError(f"{asked} need all images at one size, got (H, W) sizes {sizes}")
    if motion_masks is None:
        return
    expected = (len(shapes), int(shapes[0, 0]), int(shapes[0, 1]))
    masks = np.asarray(motion_masks)
    if masks.dtype != np.bool_ or masks.shape != expected:
        raise InputError(f"motion masks must be bool (N, H, W) = {expected} (one per image at "
                         f"the model's resolution), got {masks.dtype} {masks.shape}")


def requested_device(device: str | torch.device | None) -> torch.device:
    """A user's `--device` choice, checked; None -> CUDA when available, else the CPU."""
    return resolve_device(None, device or ("cuda" if torch.cuda.is_available() else "cpu"))


def resolve_device(model: Any, device: str | torch.device | None) -> torch.device:
    """The device to run on: the requested one (checked), else the model's, else the CPU."""
    param = _first_parameter(model)
    if device is None:
        return param.device if param is not None else torch.device("cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise Recon4dError("device 'cuda' was requested but PyTorch sees no CUDA GPU "
                           "(torch.cuda.is_available() is False); use --device cpu")
    if param is not None and (param.device.type != device.type or (
            device.index is not None and param.device.index != device.index)):
        raise Recon4dError(f"the model's weights are on {param.device} but inference was asked "
                           f"to run on {device}; load the model on that device")
    return device


def collate(views: Sequence[dict], device: torch.device) -> dict[str, Any]:
    """Stack single-image views into one batch dict as the reference does.

    Tensors and arrays are concatenated on dim 0 (`true_shape` as an int32 tensor kept on the
    CPU, the rest moved to `device`); other fields (`idx`, `instance`, ...) become lists.
    """
    batch: dict[str, Any] = {}
    for key in views[0]:
        values = [v[key] for v in views]
        if isinstance(values[0], (torch.Tensor, np.ndarray)):
            tensor = torch.cat([torch.as_tensor(x) for x in values])
            if key in _HOST_KEYS:
                batch[key] = tensor.to(torch.int32)
            else:
                batch[key] = tensor.to(device, non_blocking=True)
        else:
            batch[key] = values
    return batch


def _without_image(view: dict) -> dict:
    """A view without its `img` (decoding from cached tokens needs only the rest)."""
    return {key: value for key, value in view.items() if key != "img"}


def _first_parameter(model: Any) -> torch.Tensor | None:
    """The first parameter of a torch module, None for parameter-free callables."""
    parameters = getattr(model, "parameters", None)
    if not callable(parameters):
        return None
    return next(iter(parameters()), None)


def _batched(pred: dict[str, Any], batch: int) -> list[str]:
    """Names of the per-pair tensors (first dim `batch`) of a batch's prediction dict."""
    return [name for name, value in pred.items()
            if isinstance(value, torch.Tensor) and value.ndim >= 1 and value.shape[0] == batch]


def _allocate(pred: dict[str, Any], batch: int, rows: int) -> dict[str, torch.Tensor]:
    """Float32 CPU storage (rows, ...) for every batched tensor of a prediction dict."""
    return {name: torch.empty((rows,) + tuple(pred[name].shape[1:]), dtype=torch.float32)
            for name in _batched(pred, batch)}


def _view_images(views: Sequence[dict]) -> np.ndarray | list[np.ndarray] | None:
    """The model inputs as uint8 H×W×3: one stacked array when all shapes agree, else a list.

    None when some view carries no `img` (a stand-in model may identify frames by `idx` only).
    """
    if not all(isinstance(v.get("img"), torch.Tensor) for v in views):
        return None
    return stack_if_uniform([img_to_uint8(v["img"][0]) for v in views])
