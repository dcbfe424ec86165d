"""Match images with a MASt3R model: one pair (`match_pair`) or every pair of a graph
(`match_graph`), optionally restricted to foreground masks; results in original-image pixels.

Stages: images -> views (+ masks at model resolution) -> pair inference (both orders) ->
reciprocal search on descriptors -> filters -> relative pose and 3D points of the matches.
`match_predictions` runs the stages after the network on existing `PairPredictions`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from tqdm.auto import tqdm

from recon4d.errors import InputError, Recon4dError
from recon4d.inference import PairPredictions, infer_pairs, make_pairs
from recon4d.inference.engine import resolve_device
from recon4d.io.images import is_image_name, load_images, upright_size
from recon4d.matching.coords import LoaderGeometry, loader_geometry
from recon4d.matching.filters import (
    descriptor_similarity,
    inside_border,
    match_confidence,
    relative_3d_error,
    sample,
)
from recon4d.matching.masks import (
    MaskLike,
    erode_mask,
    mask_to_model,
    paint_background,
    read_mask,
)
from recon4d.matching.reciprocal import reciprocal_nn
from recon4d.matching.subpixel import refine_matches
from recon4d.matching.two_view import TwoView, two_view_geometry
from recon4d.options import MatchOptions

ImageLike = str | os.PathLike | np.ndarray | Image.Image


@dataclass
class PreparedImage:
    """One input as the network sees it, with its mask and the way back to original pixels."""

    view: dict
    geometry: LoaderGeometry
    mask: torch.Tensor | None  # (H, W) bool at model resolution
    source: ImageLike


@dataclass
class PairMatches:
    """Matches between images i and j (model-input and original pixels) and their geometry."""

    i: int
    j: int
    xy1: torch.Tensor  # (M, 2) int64 (x, y) in model input i
    xy2: torch.Tensor  # (M, 2) int64 (x, y) in model input j
    xy1_orig: np.ndarray  # (M, 2) float64 (x, y) in original image i
    xy2_orig: np.ndarray  # (M, 2) float64 (x, y) in original image j
    conf: torch.Tensor  # (M,) match confidence
    similarity: torch.Tensor  # (M,) descriptor dot product
    two_view: TwoView | None  # None with fewer than 3 matches or without the reverse pair

    def __len__(self) -> int:
        return len(self.xy1)


def prepare_images(images: Sequence[ImageLike], masks: Sequence[MaskLike | None] | None = None,
                   size: int = 512, premask: str | None = None) -> list[PreparedImage]:
    """Load `images` as model views and map their masks (original or model size) onto them."""
    masks = list(masks) if masks is not None else [None] * len(images)
    if len(masks) != len(images):
        raise InputError(f"{len(masks)} masks given for {len(images)} images (one per image, "
                         "or none)")
    names = [_label(src, f"image {k}") for k, src in enumerate(images)]
    for src, name in zip(images, names, strict=True):
        if isinstance(src, (str, os.PathLike)) and not is_image_name(src):
            raise InputError(f"{name}: not an image file (expected .jpg, .jpeg or .png)")
    views = load_images(list(images), size=size)
    prepared = []
    for view, src, mask, name in zip(views, images, masks, names, strict=True):
        width, height = upright_size(src)
        geometry = loader_geometry(width, height, size)
        if tuple(np.asarray(view["true_shape"]).reshape(2)) != geometry.model_shape:
            raise Recon4dError(f"{name}: loader produced {view['true_shape']} but the geometry "
                               f"predicts {geometry.model_shape}")
        model_mask = None
        if mask is not None:
            model_mask = mask_to_model(read_mask(mask), geometry, _label(mask, name + " mask"))
            if premask is not None:
                view = {**view, "img": paint_background(view["img"], model_mask, premask)}
        prepared.append(PreparedImage(view, geometry, model_mask, src))
    return prepared


def _label(item: object, fallback: object) -> str:
    return os.fspath(item) if isinstance(item, (str, os.PathLike)) else str(fallback)


def match_descriptors(pred1: dict, pred2: dict, mask1: torch.Tensor | None,
                      mask2: torch.Tensor | None, options: MatchOptions,
                      device: str | torch.device | None = None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reciprocal matches of one pair's predictions (unbatched pred1/pred2 dicts), filtered:
    (xy1, xy2, conf, sim) on the CPU; the search runs on `device` (default: the maps').
    xy2 is float64 (sub-pixel) with `options.subpixel`, else integer like xy1."""
    if "desc" not in pred1 or "desc" not in pred2:
        raise Recon4dError("the model gives no descriptors: matching needs a MASt3R checkpoint")
    desc1, desc2 = pred1["desc"], pred2["desc"]
    if mask1 is not None:
        mask1 = erode_mask(mask1, options.mask_erode)
    if mask2 is not None:
        mask2 = erode_mask(mask2, options.mask_erode)
    in_search = options.mask_mode == "search"
    res = reciprocal_nn(desc1, desc2, subsample=options.subsample,
                        mask1=mask1 if in_search else None, mask2=mask2 if in_search else None,
                        min_seeds=options.min_seeds if in_search else 0, dist=options.dist,
                        block_size=options.block_size, max_iter=options.max_iter,
                        device=device)
    xy1, xy2 = res.xy1(desc1.shape[1]), res.xy2(desc2.shape[1])
    keep = (inside_border(xy1, desc1.shape[:2], options.border)
            & inside_border(xy2, desc2.shape[:2], options.border))
    for mask, xy in ((mask1, xy1), (mask2, xy2)):
        if mask is not None:
            keep &= sample(mask, xy).cpu()
    conf = match_confidence(pred1["desc_conf"], pred2["desc_conf"], xy1, xy2,
                            options.conf_mode).cpu()
    sim = descriptor_similarity(desc1, desc2, xy1, xy2).cpu()
    keep &= conf >= options.conf_thr
    if options.min_similarity is not None:
        keep &= sim >= options.min_similarity
    if options.max_3d_error is not None:
        error = relative_3d_error(pred1["pts3d"], pred2["pts3d_in_other_view"], xy1, xy2)
        keep &= error.cpu() <= options.max_3d_error
    xy1, xy2 = xy1[keep], xy2[keep]
    if options.subpixel:
        xy2 = refine_matches(desc1, desc2, xy1, xy2)
    return xy1, xy2, conf[keep], sim[keep]


def symmetric_descriptors(pred: dict, other: dict) -> dict:
    """`pred` with the descriptors of its image averaged with those the reverse pair gave the same
    image (`other`), renormalised; `desc_conf` averaged too. Both decoder orders describe the
    image in the one space matching compares them in, so the mean keeps what they agree on."""
    desc = torch.nn.functional.normalize(pred["desc"] + other["desc"], dim=-1)
    return {**pred, "desc": desc, "desc_conf": (pred["desc_conf"] + other["desc_conf"]) / 2}


def match_predictions(preds: PairPredictions, i: int, j: int,
                      images: Sequence[PreparedImage], options: MatchOptions,
                      device: str | torch.device | None = None) -> PairMatches:
    """Matches of images i -> j from predictions holding edge (i, j) and, for the symmetric
    descriptors and the pose, (j, i)."""
    edges = {tuple(e): k for k, e in enumerate(preds.edges.tolist())}
    if (i, j) not in edges:
        raise Recon4dError(f"the predictions have no pair ({i}, {j})")
    fwd = preds[edges[(i, j)]]
    bwd = preds[edges[(j, i)]] if (j, i) in edges else None
    pred1, pred2 = fwd["pred1"], fwd["pred2"]
    if options.symmetric and bwd is not None and "desc" in bwd["pred1"]:
        pred1 = symmetric_descriptors(pred1, bwd["pred2"])
        pred2 = symmetric_descriptors(pred2, bwd["pred1"])
    xy1, xy2, conf, sim = match_descriptors(pred1, pred2, images[i].mask, images[j].mask,
                                            options, device)
    geometry = None
    if bwd is not None and len(xy1) >= 3:
        geometry = two_view_geometry(fwd["pred1"]["pts3d"], bwd["pred1"]["pts3d"], xy1, xy2,
                                     weights=conf)
    return PairMatches(i, j, xy1, xy2, images[i].geometry.to_original(xy1.numpy()),
                       images[j].geometry.to_original(xy2.numpy()), conf, sim, geometry)


def graph_pairs(n: int, graph: str = "complete") -> list[tuple[int, int]]:
    """Unordered image pairs (i < j) of a pair graph (see `recon4d.inference.make_pairs`)."""
    edges = make_pairs(n, graph, symmetrize=False)
    return sorted({(min(a, b), max(a, b)) for a, b in edges.tolist() if a != b})


def match_graph(model: Callable, images: Sequence[ImageLike],
                masks: Sequence[MaskLike | None] | None = None, graph: str = "complete",
                options: MatchOptions | None = None, size: int = 512,
                device: str | torch.device | None = None,
                progress: bool = True) -> tuple[list[PreparedImage], list[PairMatches]]:
    """Match every pair of `graph` over `images`; each pair is inferred in both orders and
    matched before the next one runs, so memory does not grow with the number of pairs."""
    options = options or MatchOptions()
    prepared = prepare_images(images, masks, size, options.premask)
    pairs = graph_pairs(len(prepared), graph)
    if not pairs:
        raise InputError(f"pair graph {graph!r} gives no pair for {len(prepared)} images")
    views = [p.view for p in prepared]
    device = resolve_device(model, device)
    results = []
    for i, j in tqdm(pairs, unit="pair", desc="matching", disable=not progress):
        preds = infer_pairs(model, views, np.array([[i, j], [j, i]]), device=device,
                            progress=False, keep_images=False)
        results.append(match_predictions(preds, i, j, prepared, options, device))
    return prepared, results


def match_pair(model: Callable, image1: ImageLike, image2: ImageLike,
               mask1: MaskLike | None = None, mask2: MaskLike | None = None,
               options: MatchOptions | None = None, size: int = 512,
               device: str | torch.device | None = None) -> PairMatches:
    """Matches from `image1` to `image2`, inside the masks when given."""
    _, results = match_graph(model, [image1, image2], [mask1, mask2], "complete", options, size,
                             device, progress=False)
    return results[0]

