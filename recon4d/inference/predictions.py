"""Pair predictions in memory (`PairPredictions`) and on disk (`predictions.npz`).

The npz layout is the interchange format between `recon4d infer` and every later stage (global
alignment, matching, writers); README "Pair inference" specifies it. Edges whose images differ in
shape are kept as one stacked tensor per shape group, never as per-edge dicts.
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from recon4d.errors import InputError, Recon4dError
from recon4d.io.atomic import atomic_path

NPZ_FORMAT_VERSION = 1
REQUIRED_PRED = {"pred1": ("pts3d", "conf"), "pred2": ("pts3d_in_other_view", "conf")}
OPTIONAL_PRED = ("desc", "desc_conf")  # MASt3R, on both sides or neither
MAP_NDIM = {"pts3d": 4, "pts3d_in_other_view": 4, "conf": 3, "desc": 4, "desc_conf": 3}

Images = np.ndarray | list[np.ndarray]  # (N, H, W, 3) uint8, or one (H_n, W_n, 3) per frame


@dataclass(eq=False)
class ShapeGroup:
    """Edges sharing (view1 shape, view2 shape): their predictions stacked on dim 0."""

    edge_index: np.ndarray  # (G,) int64, ascending positions in PairPredictions.edges
    pred1: dict[str, torch.Tensor]  # name -> (G, H1, W1, ...) float32, CPU
    pred2: dict[str, torch.Tensor]  # name -> (G, H2, W2, ...) float32, CPU


@dataclass(eq=False)
class PairPredictions:
    """Network outputs for every edge (view1 image i, view2 image j) of a pair graph."""

    edges: np.ndarray  # (E, 2) int64
    true_shape1: np.ndarray  # (E, 2) int32, (H, W) of view1
    true_shape2: np.ndarray  # (E, 2) int32, (H, W) of view2
    groups: list[ShapeGroup]
    images: Images | None = None  # model inputs as uint8, indexed by image index
    image_names: list[str] | None = None
    timestamps: np.ndarray | None = None  # (N,) float64 seconds, for videos

    def __post_init__(self) -> None:
        self.edges = np.asarray(self.edges, dtype=np.int64).reshape(-1, 2)
        self.true_shape1 = np.asarray(self.true_shape1, dtype=np.int32).reshape(-1, 2)
        self.true_shape2 = np.asarray(self.true_shape2, dtype=np.int32).reshape(-1, 2)
        num = len(self.edges)
        if len(self.true_shape1) != num or len(self.true_shape2) != num:
            raise ValueError("edges, true_shape1 and true_shape2 must have the same length")
        covered = np.concatenate([g.edge_index for g in self.groups] + [np.zeros(0, np.int64)])
        if not np.array_equal(np.sort(covered), np.arange(num)):
            raise ValueError("shape groups must cover every edge exactly once")
        self._group_of, self._row_of = group_rows([g.edge_index for g in self.groups], num)
        for group in self.groups:
            for side in (group.pred1, group.pred2):
                for name, tensor in side.items():
                    if tensor.shape[0] != len(group.edge_index):
                        raise ValueError(f"{name}: {tensor.shape[0]} rows for "
                                         f"{len(group.edge_index)} edges")

    def __len__(self) -> int:
        return len(self.edges)

    def __repr__(self) -> str:
        """One line: sizes and keys, never the arrays (they can be gigabytes)."""
        shapes = sorted({tuple(int(v) for v in s) for s in (*self.true_shape1, *self.true_shape2)})
        keys = sorted(self.groups[0].pred1) if self.groups else []
        return (f"PairPredictions({len(self)} edges, {self.num_images} images, "
                f"shapes (H, W) {shapes}, {len(self.groups)} shape groups, pred1 keys {keys}, "
                f"images {'kept' if self.images is not None else 'not kept'})")

    def __getitem__(self, e: int) -> dict[str, Any]:
        """Edge `e` as reference-style dicts (view1, view2, pred1, pred2), without batch dim."""
        e = range(len(self))[e]
        group, row = self.groups[self._group_of[e]], self._row_of[e]
        return {
            "view1": {"idx": int(self.edges[e, 0]), "true_shape": self.true_shape1[e]},
            "view2": {"idx": int(self.edges[e, 1]), "true_shape": self.true_shape2[e]},
            "pred1": {k: v[row] for k, v in group.pred1.items()},
            "pred2": {k: v[row] for k, v in group.pred2.items()},
        }

    @property
    def uniform(self) -> bool:
        """True when all edges share one (view1 shape, view2 shape): `pred1`/`pred2` exist."""
        return len(self.groups) <= 1

    @property
    def pred1(self) -> dict[str, torch.Tensor]:
        """View-1 predictions stacked over all edges (E, H, W, ...); uniform shapes only."""
        return self._stacked("pred1")

    @property
    def pred2(self) -> dict[str, torch.Tensor]:
        """View-2 predictions stacked over all edges (E, H, W, ...); uniform shapes only."""
        return self._stacked("pred2")

    @property
    def has_descriptors(self) -> bool:
        """Whether MASt3R descriptors (`desc`, `desc_conf`) are present."""
        return bool(self.groups) and "desc" in self.groups[0].pred1

    @property
    def num_images(self) -> int:
        """Number of images: from `images` when kept, else one past the largest edge index."""
        if self.images is not None:
            return len(self.images)
        return int(self.edges.max()) + 1 if len(self.edges) else 0

    def _stacked(self, side: str) -> dict[str, torch.Tensor]:
        if not self.groups:
            return {}
        if not self.uniform:
            raise Recon4dError(f"these predictions mix {len(self.groups)} image-shape groups, so "
                               f"`{side}` cannot be one stacked tensor; use `.groups` or index "
                               "by edge")
        return getattr(self.groups[0], side)

    def to_reference_dict(self) -> dict[str, Any]:
        """The reference `inference()` output: view1/view2/pred1/pred2 stacked over edges.

        With mixed shapes every tensor field is a list of per-edge tensors without batch dim,
        as the reference returns it. `img` is included when images are kept.
        """
        idx1, idx2 = self.edges[:, 0].tolist(), self.edges[:, 1].tolist()
        views = {"view1": {"idx": idx1, "instance": [str(i) for i in idx1]},
                 "view2": {"idx": idx2, "instance": [str(i) for i in idx2]}}
        shapes = {"view1": self.true_shape1, "view2": self.true_shape2}
        out: dict[str, Any] = {"loss": None}
        if self.uniform:
            for side in ("view1", "view2"):
                views[side]["true_shape"] = torch.from_numpy(shapes[side].copy())
                if self.images is not None and len(self):
                    views[side]["img"] = torch.cat(
                        [uint8_to_img(self.images[i]) for i in views[side]["idx"]])
            out.update(views, pred1=dict(self.pred1), pred2=dict(self.pred2))
            return out
        for side in ("view1", "view2"):
            views[side]["true_shape"] = [torch.from_numpy(s.copy()) for s in shapes[side]]
            if self.images is not None:
                views[side]["img"] = [uint8_to_img(self.images[i])[0] for i in views[side]["idx"]]
        items = [self[e] for e in range(len(self))]
        out.update(views)
        for side in ("pred1", "pred2"):
            names = getattr(self.groups[0], side)
            out[side] = {k: [item[side][k] for item in items] for k in names}
        return out

    @classmethod
    def from_reference_dict(cls, d: dict[str, Any]) -> PairPredictions:
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
        groups = [ShapeGroup(index, _take(d["pred1"], index), _take(d["pred2"], index))
                  for index in group_by_shape(ts1, ts2)]
        images = images_from_views(d["view1"], d["view2"], edges)
        return cls(edges, ts1, ts2, groups, images=images)

    def save_npz(self, path: str | os.PathLike) -> None:
        """Write the interchange npz atomically (layout in README "Pair inference")."""
        arrays = {
            "format_version": np.asarray(NPZ_FORMAT_VERSION, dtype=np.int64),
            "view1/idx": self.edges[:, 0].copy(), "view2/idx": self.edges[:, 1].copy(),
            "view1/true_shape": self.true_shape1, "view2/true_shape": self.true_shape2,
        }
        shapes = {"pred1": self.true_shape1, "pred2": self.true_shape2}
        for side in ("pred1", "pred2"):
            names = getattr(self.groups[0], side) if self.groups else {}
            for name in names:
                arrays[f"{side}/{name}"] = self._canvas(side, name, shapes[side])
        if self.images is not None:
            image_list = list(self.images)
            arrays["images"] = _pad_stack(image_list, 0, np.uint8, (0, 0, 3))
            arrays["image_shapes"] = np.asarray([im.shape[:2] for im in image_list],
                                                dtype=np.int32).reshape(-1, 2)
        if self.image_names is not None:
            arrays["image_names"] = np.asarray(list(self.image_names), dtype=np.str_)
        if self.timestamps is not None:
            arrays["timestamps"] = np.asarray(self.timestamps, dtype=np.float64)
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, **arrays)

    def _canvas(self, side: str, name: str, shapes: np.ndarray) -> np.ndarray:
        """One array (E, ...) for `side/name`; mixed shapes are NaN-padded at bottom/right."""
        if self.uniform:
            return getattr(self.groups[0], side)[name].numpy()
        parts = [getattr(g, side)[name] for g in self.groups]
        for g, part in zip(self.groups, parts, strict=True):
            if tuple(part.shape[1:3]) != tuple(shapes[g.edge_index[0]]):
                raise Recon4dError(f"cannot save {side}/{name} with mixed image shapes: its "
                                   f"maps are {tuple(part.shape[1:3])}, not the image size")
        trailing = tuple(np.max([p.shape[1:] for p in parts], axis=0))
        out = np.full((len(self),) + trailing, np.nan, dtype=np.float32)
        for g, part in zip(self.groups, parts, strict=True):
            out[(g.edge_index,) + tuple(slice(0, s) for s in part.shape[1:])] = part.numpy()
        return out

    @classmethod
    def load_npz(cls, path: str | os.PathLike) -> PairPredictions:
        """Read and validate a predictions npz; errors name the file and the problem."""
        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path}: predictions file not found")
        try:
            with np.load(path, allow_pickle=False) as npz:
                arrays = {name: npz[name] for name in npz.files}
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
            raise InputError(f"{path}: not a readable .npz file ({exc})") from exc
        return _from_arrays(arrays, path)


def group_by_shape(true_shape1: np.ndarray, true_shape2: np.ndarray) -> list[np.ndarray]:
    """Edge positions grouped by (view1 shape, view2 shape), groups in order of first use."""
    keys = np.concatenate([np.asarray(true_shape1).reshape(-1, 2),
                           np.asarray(true_shape2).reshape(-1, 2)], axis=1)
    if len(keys) == 0:
        return []
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    return [np.flatnonzero(inverse == g) for g in np.argsort(first, kind="stable")]


def uint8_to_img(image: np.ndarray) -> torch.Tensor:
    """(H, W, 3) uint8 -> the model input (1, 3, H, W) float32 in [-1, 1], as the loader does."""
    x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float() / 255
    return (x - 0.5) / 0.5


def img_to_uint8(img: torch.Tensor) -> np.ndarray:
    """(3, H, W) model input -> (H, W, 3) uint8 (exact inverse of the loader's normalisation)."""
    u8 = ((img.detach().float().cpu() * 0.5 + 0.5) * 255).round().clamp(0, 255)
    return u8.to(torch.uint8).permute(1, 2, 0).numpy()


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


def group_rows(groups: list[np.ndarray], num: int) -> tuple[np.ndarray, np.ndarray]:
    """(group of each edge, its row inside the group) for edge-index lists covering 0..num-1."""
    group_of = np.zeros(num, dtype=np.int64)
    row_of = np.zeros(num, dtype=np.int64)
    for g, index in enumerate(groups):
        group_of[index] = g
        row_of[index] = np.arange(len(index))
    return group_of, row_of


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
    return PairPredictions(edges, shapes["pred1"], shapes["pred2"], groups, images=images,
                           image_names=names, timestamps=timestamps)


def _check_pred_arrays(arrays: dict[str, np.ndarray], shapes: dict[str, np.ndarray], num: int,
                       fail) -> dict[str, list[str]]:
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
                  shapes: tuple[np.ndarray, np.ndarray], fail) -> Images | None:
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
