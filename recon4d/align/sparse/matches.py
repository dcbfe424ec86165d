"""Correspondences of every image pair, computed once (and optionally cached on disk by content).

The search itself is `recon4d.matching` (a layer the alignment may not import): the caller passes
a `Matcher`, e.g. `functools.partial(recon4d.matching.match_descriptors, options=...)`. Each
unordered pair is searched in both decoder orders present, the results concatenated and
deduplicated (MASt3R's sparse GA). Optional masks (True = may match) restrict the search, so
movers outside them do not pull the cameras. A matcher may return sub-pixel (float) positions:
each end is kept as its pixel (for anchors and depth ratios) plus the offset from it.
"""

from __future__ import annotations

import hashlib
import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from recon4d.align.inputs import unflatten_npz_keys
from recon4d.errors import InputError
from recon4d.inference.predictions import PairPredictions
from recon4d.io.atomic import atomic_write_bytes

# (pred1, pred2, mask1, mask2) -> (xy1 (M, 2) (x, y), xy2, conf (M,), ...); integer pixels, or
# float ones for sub-pixel matches
Matcher = Callable[[dict, dict, Tensor | None, Tensor | None], Sequence[Tensor]]
DESCRIPTOR_KEYS = ("desc", "desc_conf")


@dataclass
class Correspondences:
    """Matches of unordered image pair (i, j), i < j: pixels (x, y) in each, confidence and,
    for sub-pixel matches, each end's offset from its pixel."""

    i: int
    j: int
    xy_i: Tensor  # (M, 2) int64
    xy_j: Tensor  # (M, 2) int64
    conf: Tensor  # (M,) float32
    shift_i: Tensor | None = None  # (M, 2) float64 in [-0.5, 0.5]; None: on the pixel
    shift_j: Tensor | None = None

    def __len__(self) -> int:
        return int(self.xy_i.shape[0])

    def exact_i(self) -> Tensor:
        """(M, 2) float64 positions of the matches in image i (pixel + sub-pixel offset)."""
        return self.xy_i.double() if self.shift_i is None else self.xy_i.double() + self.shift_i

    def exact_j(self) -> Tensor:
        """(M, 2) float64 positions of the matches in image j."""
        return self.xy_j.double() if self.shift_j is None else self.xy_j.double() + self.shift_j


class EdgePredictions:
    """Per-edge pred1/pred2 dicts (unbatched) of `PairPredictions` or the originals' dict."""

    def __init__(self, predictions: Any) -> None:
        if isinstance(predictions, PairPredictions):
            self.edges = np.asarray(predictions.edges)
            self._get = lambda e: (predictions[e]["pred1"], predictions[e]["pred2"])
        else:
            d = _nested(predictions)
            try:
                idx = [np.asarray(d[view]["idx"]).reshape(-1) for view in ("view1", "view2")]
                pred1, pred2 = d["pred1"], d["pred2"]
            except (KeyError, TypeError) as exc:
                raise InputError(f"predictions: not pair predictions ({exc})") from None
            self.edges = np.stack(idx, axis=1).astype(np.int64)
            self._get = lambda e: ({k: torch.as_tensor(np.asarray(v[e])) for k, v in pred1.items()},
                                   {k: torch.as_tensor(np.asarray(v[e])) for k, v in pred2.items()})
        first1, first2 = self._get(0)
        missing = [k for k in DESCRIPTOR_KEYS if k not in first1 or k not in first2]
        if missing:
            raise InputError("predictions: no descriptors (desc, desc_conf): sparse alignment "
                             "needs a MASt3R checkpoint's predictions; use the dense alignment "
                             "for DUSt3R/MonST3R")

    def __len__(self) -> int:
        return len(self.edges)

    def __getitem__(self, e: int) -> tuple[dict, dict]:
        return self._get(e)


def _nested(d: Any) -> dict:
    """{"view1/idx": a, ...} (npz layout) -> {"view1": {"idx": a}, ...}; nested dicts as is."""
    if not hasattr(d, "items"):
        raise InputError(f"predictions: expected pair predictions, got {type(d).__name__}")
    return unflatten_npz_keys(d)


class MatchCache:
    """Matches on disk under `folder`, keyed by the bytes of both descriptor maps and
    confidences, the masks and `matcher_id` (never by a path: edits invalidate it)."""

    def __init__(self, folder: str | Path, matcher_id: str) -> None:
        self.folder, self.matcher_id = Path(folder), matcher_id

    def key(self, pred1: dict, pred2: dict, mask1: Tensor | None, mask2: Tensor | None) -> str:
        digest = hashlib.sha256(self.matcher_id.encode())
        for t in (pred1["desc"], pred1["desc_conf"], pred2["desc"], pred2["desc_conf"],
                  mask1, mask2):
            digest.update(b"-" if t is None else
                          torch.as_tensor(t).detach().cpu().contiguous().numpy().tobytes())
        return digest.hexdigest()

    def load(self, key: str) -> tuple[Tensor, Tensor, Tensor] | None:
        path = self.folder / f"{key}.npz"
        if not path.is_file():
            return None
        with np.load(path) as z:
            return (torch.from_numpy(z["xy1"]), torch.from_numpy(z["xy2"]),
                    torch.from_numpy(z["conf"]))

    def save(self, key: str, xy1: Tensor, xy2: Tensor, conf: Tensor) -> None:
        buffer = io.BytesIO()
        np.savez(buffer, xy1=xy1.numpy(), xy2=xy2.numpy(), conf=conf.numpy())
        atomic_write_bytes(self.folder / f"{key}.npz", buffer.getvalue())


def _run(matcher: Matcher, pred1: dict, pred2: dict, mask1: Tensor | None,
         mask2: Tensor | None, cache: MatchCache | None) -> tuple[Tensor, Tensor, Tensor]:
    key = None if cache is None else cache.key(pred1, pred2, mask1, mask2)
    found = None if key is None else cache.load(key)
    if found is not None:
        return found
    xy1, xy2, conf = (torch.as_tensor(t).detach().cpu() for t in matcher(pred1, pred2, mask1,
                                                                           mask2)[:3])
    xy1, xy2, conf = xy1.double(), xy2.double(), conf.float()
    if key is not None:
        cache.save(key, xy1, xy2, conf)
    return xy1, xy2, conf


def _deduplicate(i: int, j: int, xy_i: Tensor, xy_j: Tensor, conf: Tensor, width: int,
                 n_pix: int) -> Correspondences:
    """One match per (pixel i, pixel j), the most confident, sorted by pixel i then j; `xy_i`,
    `xy_j` float (x, y) positions, each rounded to its pixel and the rest kept as a shift."""
    pix_i, pix_j = xy_i.round().long(), xy_j.round().long()
    keys = (pix_i[:, 1] * width + pix_i[:, 0]) * n_pix + pix_j[:, 1] * width + pix_j[:, 0]
    order = torch.argsort(conf, descending=True, stable=True)
    unique, inverse = torch.unique(keys[order], return_inverse=True)
    first = torch.full((len(unique),), len(keys), dtype=torch.long)
    first.scatter_reduce_(0, inverse, torch.arange(len(keys)), "amin")
    pick = order[first]
    shift_i, shift_j = xy_i[pick] - pix_i[pick], xy_j[pick] - pix_j[pick]
    return Correspondences(i, j, pix_i[pick], pix_j[pick], conf[pick],
                           shift_i if shift_i.any() else None,
                           shift_j if shift_j.any() else None)


def collect_correspondences(edges: EdgePredictions, matcher: Matcher,
                            masks: Tensor | None = None,
                            cache: MatchCache | None = None) -> list[Correspondences]:
    """Matches of every unordered pair of the graph (both decoder orders when present);
    `masks` (N, H, W) bool restricts them. One search per edge, done once."""
    found: dict[tuple[int, int], list[tuple[Tensor, Tensor, Tensor]]] = {}
    shape = None
    for e, (a, b) in enumerate(edges.edges.tolist()):
        if a == b:
            continue
        pred1, pred2 = edges[e]
        shape = tuple(pred1["desc"].shape[:2])
        m1, m2 = (None, None) if masks is None else (masks[a], masks[b])
        xy1, xy2, conf = _run(matcher, pred1, pred2, m1, m2, cache)
        pair = (min(a, b), max(a, b))
        found.setdefault(pair, []).append((xy1, xy2, conf) if a < b else (xy2, xy1, conf))
    if shape is None:
        raise InputError("predictions: no pair of two different images")
    height, width = shape
    out = []
    for (i, j), parts in sorted(found.items()):
        xy_i, xy_j, conf = (torch.cat(t) for t in zip(*parts, strict=True))
        out.append(_deduplicate(i, j, xy_i, xy_j, conf, width, height * width))
    return out
