"""The `predictions.npz` interchange format: write, read and validate pair predictions.

It is the file between `recon4d infer` and every later stage (global alignment, matching,
writers); docs/formats.md ("Pair predictions") specifies the layout. Mixed image shapes are
NaN-padded to one canvas per array and cropped back on reading. The optional attention probes
are stored as `attn_maps1`, `attn_maps2` (E, NH, NW, C) and `token_features` (N, NH, NW, D),
float32, all three or none (see `recon4d.inference.predictions`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from recon4d.errors import InputError, Recon4dError
from recon4d.inference.model_images import Images
from recon4d.inference.predictions import PairPredictions, ShapeGroup, group_by_shape
from recon4d.io.arrays import load_npz
from recon4d.io.atomic import atomic_path

NPZ_FORMAT_VERSION = 1
REQUIRED_PRED = {"pred1": ("pts3d", "conf"), "pred2": ("pts3d_in_other_view", "conf")}
OPTIONAL_PRED = ("desc", "desc_conf")  # MASt3R, on both sides or neither
MAP_NDIM = {"pts3d": 4, "pts3d_in_other_view": 4, "conf": 3, "desc": 4, "desc_conf": 3}
PROBE_ARRAYS = ("attn_maps1", "attn_maps2", "token_features")
Fail = Callable[[str], InputError]  # message -> the error naming the file

def save_predictions(preds: PairPredictions, path: str | os.PathLike) -> None:
    """Write the interchange npz atomically (layout in docs/formats.md, "Pair predictions")."""
    missing = [f"{side}/{name}" for side, names in REQUIRED_PRED.items() for name in names
               if preds.groups and name not in getattr(preds.groups[0], side)]
    if missing:  # e.g. a mask pass run without heads: a file others could not read back
        raise InputError(f"{path}: these predictions hold no {', '.join(missing)} (made "
                         "without the network's heads?) and cannot be saved as a predictions "
                         "file")
    arrays = {
        "format_version": np.asarray(NPZ_FORMAT_VERSION, dtype=np.int64),
        "view1/idx": preds.edges[:, 0].copy(), "view2/idx": preds.edges[:, 1].copy(),
        "view1/true_shape": preds.true_shape1, "view2/true_shape": preds.true_shape2,
    }
    shapes = {"pred1": preds.true_shape1, "pred2": preds.true_shape2}
    for side in ("pred1", "pred2"):
        names = getattr(preds.groups[0], side) if preds.groups else {}
        for name in names:
            arrays[f"{side}/{name}"] = _canvas(preds, side, name, shapes[side])
    if preds.images is not None:
        image_list = list(preds.images)
        arrays["images"] = _pad_stack(image_list, 0, np.uint8, (0, 0, 3))
        arrays["image_shapes"] = np.asarray([im.shape[:2] for im in image_list],
                                            dtype=np.int32).reshape(-1, 2)
    if preds.image_names is not None:
        arrays["image_names"] = np.asarray(list(preds.image_names), dtype=np.str_)
    if preds.timestamps is not None:
        arrays["timestamps"] = np.asarray(preds.timestamps, dtype=np.float64)
    if preds.has_probes:
        arrays.update({name: getattr(preds, name).numpy().astype(np.float32, copy=False)
                       for name in PROBE_ARRAYS})
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _canvas(preds: PairPredictions, side: str, name: str, shapes: np.ndarray) -> np.ndarray:
    """One array (E, ...) for `side/name`; mixed shapes are NaN-padded at bottom/right."""
    if preds.uniform:
        return getattr(preds.groups[0], side)[name].numpy()
    parts = [getattr(g, side)[name] for g in preds.groups]
    for g, part in zip(preds.groups, parts, strict=True):
        if tuple(part.shape[1:3]) != tuple(shapes[g.edge_index[0]]):
            raise Recon4dError(f"cannot save {side}/{name} with mixed image shapes: its "
                               f"maps are {tuple(part.shape[1:3])}, not the image size")
    trailing = tuple(np.max([p.shape[1:] for p in parts], axis=0))
    out = np.full((len(preds),) + trailing, np.nan, dtype=np.float32)
    for g, part in zip(preds.groups, parts, strict=True):
        out[(g.edge_index,) + tuple(slice(0, s) for s in part.shape[1:])] = part.numpy()
    return out


def load_predictions(path: str | os.PathLike) -> PairPredictions:
    """Read and validate a predictions npz; errors name the file and the problem."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: predictions file not found")
    arrays = load_npz(path)
    return _from_arrays(arrays, path)


def _pad_stack(items: list[np.ndarray], fill: float, dtype: type,
               empty_shape: tuple[int, ...]) -> np.ndarray:
    """Stack arrays of possibly different sizes, padding each at the end of every axis."""
    if not items:
        return np.zeros((0,) + empty_shape, dtype=dtype)
    canvas = tuple(np.max([it.shape for it in items], axis=0))
    out = np.full((len(items),) + canvas, fill, dtype=dtype)
    for n, item in enumerate(items):
        out[(n,) + tuple(slice(0, s) for s in item.shape)] = item
    return out


def _from_arrays(arrays: dict[str, np.ndarray], path: Path) -> PairPredictions:
    """Validate the npz arrays and build the predictions (groups cropped from the canvas)."""

    def fail(message: str) -> InputError:
        return InputError(f"{path}: {message}")

    version = int(arrays.get("format_version", NPZ_FORMAT_VERSION))
    if version > NPZ_FORMAT_VERSION:
        raise fail(f"predictions format {version} is newer than this recon4d understands "
                   f"({NPZ_FORMAT_VERSION}); upgrade recon4d")
    required = ["view1/idx", "view2/idx", "view1/true_shape", "view2/true_shape"]
    required += [f"{side}/{name}" for side, names in REQUIRED_PRED.items() for name in names]
    missing = [name for name in required if name not in arrays]
    if missing:
        raise fail(f"not a recon4d predictions file: missing arrays {', '.join(missing)}")
    idx1, idx2 = arrays["view1/idx"], arrays["view2/idx"]
    if any(a.ndim != 1 or a.dtype.kind not in "iu" for a in (idx1, idx2)):
        raise fail("view1/idx and view2/idx must be 1-D integer arrays")
    num = len(idx1)
    if len(idx2) != num:
        raise fail(f"view1/idx has {num} pairs but view2/idx has {len(idx2)}")
    edges = np.stack([idx1, idx2], axis=1).astype(np.int64)
    if num and edges.min() < 0:
        raise fail("negative image index in view1/idx or view2/idx")
    shapes = {}
    for side, view in (("pred1", "view1"), ("pred2", "view2")):
        ts = arrays[f"{view}/true_shape"]
        if ts.shape != (num, 2) or ts.dtype.kind not in "iu" or (num and ts.min() <= 0):
            raise fail(f"{view}/true_shape must be positive integers of shape ({num}, 2), "
                       f"got {ts.dtype} {ts.shape}")
        shapes[side] = ts.astype(np.int32)
    pred_names = _check_pred_arrays(arrays, shapes, num, fail)
    groups = []
    for index in group_by_shape(shapes["pred1"], shapes["pred2"]):
        preds = {}
        for side in ("pred1", "pred2"):
            height, width = shapes[side][index[0]]
            preds[side] = {name: torch.from_numpy(np.ascontiguousarray(
                arrays[f"{side}/{name}"][index, :height, :width], dtype=np.float32))
                for name in pred_names[side]}
        groups.append(ShapeGroup(index, preds["pred1"], preds["pred2"]))
    images = _check_images(arrays, edges, (shapes["pred1"], shapes["pred2"]), fail)
    count = len(images) if images is not None else (int(edges.max()) + 1 if num else 0)
    names = timestamps = None
    if "image_names" in arrays:
        names = [str(s) for s in arrays["image_names"].reshape(-1)]
        if len(names) < count:
            raise fail(f"image_names lists {len(names)} names for {count} images")
    if "timestamps" in arrays:
        timestamps = arrays["timestamps"].astype(np.float64).reshape(-1)
        if len(timestamps) < count:
            raise fail(f"timestamps has {len(timestamps)} values for {count} images")
    probes = _check_probes(arrays, shapes, count, fail)
    return PairPredictions(edges, shapes["pred1"], shapes["pred2"], groups, images=images,
                           image_names=names, timestamps=timestamps, **probes)


def _check_probes(arrays: dict[str, np.ndarray], shapes: dict[str, np.ndarray], count: int,
                  fail: Fail) -> dict[str, torch.Tensor]:
    """Validate the optional probe arrays (all or none) against the pairs and image sizes.

    attn_maps1 lies on view 2's token grid and attn_maps2 on view 1's: each image size must be
    the grid times one patch size, the same for every pair and both axes.
    """
    present = [name for name in PROBE_ARRAYS if name in arrays]
    if not present:
        return {}
    if len(present) < len(PROBE_ARRAYS):
        missing = [name for name in PROBE_ARRAYS if name not in arrays]
        raise fail(f"attention probes are incomplete: {', '.join(missing)} missing")
    maps1, maps2, features = (arrays[name] for name in PROBE_ARRAYS)
    num = len(shapes["pred1"])
    for name in PROBE_ARRAYS:
        if arrays[name].dtype.kind != "f" or arrays[name].ndim != 4:
            raise fail(f"{name} must be floating point (rows, NH, NW, channels), got "
                       f"{arrays[name].dtype} {arrays[name].shape}")
    if maps1.shape != maps2.shape or maps1.shape[0] != num:
        raise fail(f"attn_maps1 {maps1.shape} and attn_maps2 {maps2.shape} must both be "
                   f"({num}, NH, NW, C)")
    grid = np.asarray(maps1.shape[1:3])
    if features.shape[0] < count or tuple(features.shape[1:3]) != tuple(grid):
        raise fail(f"token_features {features.shape} must hold {count} images on the maps' "
                   f"{tuple(grid)} token grid")
    if num:
        sizes = np.concatenate([shapes["pred1"], shapes["pred2"]])
        patch = sizes // grid
        if (sizes % grid).any() or (patch != patch[0, 0]).any():
            raise fail(f"probe maps on a {tuple(grid)} token grid do not fit the image sizes "
                       f"{sorted({tuple(s) for s in sizes.tolist()})} with one patch size")
    return {name: torch.from_numpy(np.ascontiguousarray(arrays[name], dtype=np.float32))
            for name in PROBE_ARRAYS}


def _check_pred_arrays(arrays: dict[str, np.ndarray], shapes: dict[str, np.ndarray], num: int,
                       fail: Fail) -> dict[str, list[str]]:
    """Validate every pred array against E and the true shapes; return names per side."""
    names = {side: sorted(k.split("/", 1)[1] for k in arrays if k.startswith(side + "/"))
             for side in ("pred1", "pred2")}
    for name in OPTIONAL_PRED:
        present = [side for side in names if name in names[side]]
        if len(present) == 1:
            raise fail(f"{present[0]}/{name} is present but its counterpart on the other side "
                       "is missing")
    for side, side_names in names.items():
        canvas = tuple(shapes[side].max(axis=0)) if num else None
        for name in side_names:
            array = arrays[f"{side}/{name}"]
            label = f"{side}/{name}"
            if array.dtype.kind != "f":
                raise fail(f"{label} must be floating point, got {array.dtype}")
            if array.ndim < 3 or array.shape[0] != num:
                raise fail(f"{label} has shape {array.shape}; expected {num} pairs first "
                           "(E, H, W, ...)")
            if name in MAP_NDIM and array.ndim != MAP_NDIM[name]:
                raise fail(f"{label} has {array.ndim} dimensions, expected {MAP_NDIM[name]}")
            if name in ("pts3d", "pts3d_in_other_view") and array.shape[-1] != 3:
                raise fail(f"{label} must end with 3 coordinates, got shape {array.shape}")
            if canvas is not None and tuple(array.shape[1:3]) != canvas:
                raise fail(f"{label} maps are {array.shape[1]}x{array.shape[2]} but the "
                           f"true shapes need {canvas[0]}x{canvas[1]}")
    return names


def _check_images(arrays: dict[str, np.ndarray], edges: np.ndarray,
                  shapes: tuple[np.ndarray, np.ndarray], fail: Fail) -> Images | None:
    """Validate `images` (+ `image_shapes`) and return them cropped, or None if absent."""
    if "images" not in arrays:
        return None
    images = arrays["images"]
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
        raise fail(f"images must be uint8 (N, H, W, 3), got {images.dtype} {images.shape}")
    if len(edges) and edges.max() >= len(images):
        raise fail(f"pairs refer to image {int(edges.max())} but images holds {len(images)}")
    canvas = np.asarray(images.shape[1:3])
    sizes = arrays.get("image_shapes", np.tile(canvas, (len(images), 1)))
    if sizes.shape != (len(images), 2) or (len(sizes) and (
            sizes.min() <= 0 or (sizes > canvas).any())):
        raise fail(f"image_shapes must be ({len(images)}, 2) sizes within the images array")
    for side, view in ((0, "view1"), (1, "view2")):
        wrong = np.flatnonzero((sizes[edges[:, side]] != shapes[side]).any(axis=1))
        if len(wrong):
            e = int(wrong[0])
            raise fail(f"{view}/true_shape of pair {e} is {shapes[side][e].tolist()} but image "
                       f"{int(edges[e, side])} is {sizes[edges[e, side]].tolist()}")
    if (sizes == canvas).all():
        return images
    return [images[n, :h, :w] for n, (h, w) in enumerate(sizes)]
