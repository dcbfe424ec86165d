"""Pair predictions streamed to disk, reduced to what the global alignment reads.

Long videos have thousands of pairs (200 frames, swinstride-5: ~2000), and every pair's full
pointmaps in memory grow without bound (4.7 MB per 512x288 pair in float32). `PairStore` keeps
per edge only the solver's inputs: the points of both views (float16, divided by a per-edge
scale, the largest absolute coordinate, so nothing overflows; relative error <= 2^-11) and the
log of both confidences (float16), one file per field of fixed-size edge records, written as
batches come out of the network (`infer_pairs(..., sink=store.add)`). `read(frames)` returns
the edges inside a set of frames as a `PairPredictions` that `recon4d.align.global_align`
accepts. Records are read and written with plain positioned file I/O, not memory maps: mapped
pages count in the process's resident memory, which is what this store keeps bounded.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from types import TracebackType

import numpy as np
import torch

from recon4d.errors import InputError, OutputError, Recon4dError
from recon4d.inference.predictions import PairPredictions, ShapeGroup
from recon4d.io.os_errors import os_error_text

# field name -> (prediction side, prediction key, values per pixel)
_FIELDS = {"pts_i": ("pred1", "pts3d", 3), "pts_j": ("pred2", "pts3d_in_other_view", 3),
           "conf_i": ("pred1", "conf", 1), "conf_j": ("pred2", "conf", 1)}
_IMAGES = "images.u8"
_READ_RECORDS = 16  # records per read: 14 MB of 512x288 points


class PairStore:
    """Solver inputs of the edges `edges` (E, 2) over `n_images` images of `height` x `width`,
    in files of a new folder `.pairs-*` inside `parent` (e.g. the output staging folder, so an
    interrupted run leaves nothing behind), removed by `close` or on leaving a `with` block."""

    def __init__(self, parent: str | os.PathLike, edges: np.ndarray, n_images: int, height: int,
                 width: int) -> None:
        self.edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        if len(self.edges) == 0 or self.edges.min() < 0 or self.edges.max() >= n_images:
            raise Recon4dError(f"pair store: edges must be a non-empty (E, 2) list of image "
                               f"indices in 0..{n_images - 1}")
        self.n_images, self.height, self.width = int(n_images), int(height), int(width)
        self.scales = np.zeros(len(self.edges), np.float32)
        self.written = np.zeros(len(self.edges), bool)
        self.has_images = False
        try:
            self.folder = Path(tempfile.mkdtemp(prefix=".pairs-", dir=parent))
        except OSError as exc:
            raise OutputError(f"{parent}: cannot create the pair store "
                              f"({os_error_text(exc)})") from exc
        try:
            for name, (_, _, channels) in _FIELDS.items():
                with open(self._path(name), "wb") as f:
                    f.truncate(len(self.edges) * self._record_bytes(channels))
        except OSError as exc:
            self.close()
            raise OutputError(f"{self.folder}: cannot create the pair store "
                              f"({os_error_text(exc)})") from exc

    def __enter__(self) -> PairStore:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        """Remove the store's folder and files."""
        shutil.rmtree(self.folder, ignore_errors=True)

    def __len__(self) -> int:
        return len(self.edges)

    def _path(self, name: str) -> Path:
        return self.folder / f"{name}.f16"

    def _record_bytes(self, channels: int) -> int:
        return self.height * self.width * channels * 2

    def add(self, positions: np.ndarray, pred1: dict[str, torch.Tensor],
            pred2: dict[str, torch.Tensor]) -> None:
        """Store the predictions of the edges at `positions` (B,) (an `infer_pairs` sink):
        pred1 `pts3d`, `conf` and pred2 `pts3d_in_other_view`, `conf`, each (B, H, W[, 3])."""
        positions = np.asarray(positions, dtype=np.int64).reshape(-1)
        preds = {"pred1": pred1, "pred2": pred2}
        values = {}
        for name, (side, key, channels) in _FIELDS.items():
            if key not in preds[side]:
                raise Recon4dError(f"pair store: the model's {side} has no '{key}'")
            value = torch.as_tensor(preds[side][key]).to("cpu", torch.float32)
            expected = (len(positions), self.height, self.width) + ((3,) if channels == 3 else ())
            if tuple(value.shape) != expected:
                raise Recon4dError(f"pair store: {side}/{key} is {tuple(value.shape)}, expected "
                                   f"{expected} (all images must be {self.width}x{self.height})")
            values[name] = value.numpy()
        points = np.concatenate([values["pts_i"], values["pts_j"]], axis=-1)
        scales = np.abs(points.reshape(len(positions), -1)).max(axis=1)
        scales = np.where(scales > 0, scales, 1).astype(np.float32)
        with np.errstate(divide="ignore", invalid="ignore"):
            encoded = {"pts_i": values["pts_i"] / scales[:, None, None, None],
                       "pts_j": values["pts_j"] / scales[:, None, None, None],
                       "conf_i": np.log(values["conf_i"]), "conf_j": np.log(values["conf_j"])}
        for row, e in enumerate(positions):
            if not all(np.isfinite(v[row]).all() for v in encoded.values()):
                i, j = self.edges[e]
                raise InputError(f"pair {i}-{j}: the model predicted non-finite points or "
                                 "non-positive confidences")
        for name, array in encoded.items():
            with open(self._path(name), "r+b") as f:
                for row, e in enumerate(positions):
                    f.seek(int(e) * self._record_bytes(_FIELDS[name][2]))
                    f.write(array[row].astype(np.float16).tobytes())
        self.scales[positions] = scales
        self.written[positions] = True

    def add_images(self, images: np.ndarray) -> None:
        """Store the (N, H, W, 3) uint8 model inputs that colour the points."""
        images = np.asarray(images)
        expected = (self.n_images, self.height, self.width, 3)
        if images.shape != expected or images.dtype != np.uint8:
            raise Recon4dError(f"pair store: images must be uint8 {expected}, got "
                               f"{images.dtype} {images.shape}")
        images.tofile(self.folder / _IMAGES)
        self.has_images = True

    def edges_within(self, frames: np.ndarray) -> np.ndarray:
        """Positions of the edges whose two images are both in `frames`."""
        inside = np.zeros(self.n_images, bool)
        inside[np.asarray(frames, dtype=np.int64)] = True
        return np.flatnonzero(inside[self.edges].all(axis=1))

    def read(self, frames: np.ndarray) -> PairPredictions:
        """The edges inside `frames` (K,) ascending image indices as float32 `PairPredictions`
        over K images, image frames[k] renumbered k (the images too, when stored)."""
        frames = np.asarray(frames, dtype=np.int64)
        positions = self.edges_within(frames)
        missing = positions[~self.written[positions]]
        if len(missing):
            i, j = self.edges[missing[0]]
            raise Recon4dError(f"pair store: pair {i}-{j} was never stored")
        local = np.full(self.n_images, -1, np.int64)
        local[frames] = np.arange(len(frames))
        pred = {name: self._read_field(name, positions) for name in _FIELDS}
        shape = np.tile([self.height, self.width], (len(positions), 1))
        group = ShapeGroup(np.arange(len(positions)),
                           {"pts3d": pred["pts_i"], "conf": pred["conf_i"]},
                           {"pts3d_in_other_view": pred["pts_j"], "conf": pred["conf_j"]})
        return PairPredictions(local[self.edges[positions]], shape, shape, [group],
                               images=self._read_images(frames))

    def _read_field(self, name: str, positions: np.ndarray) -> torch.Tensor:
        """One field of the edges at `positions`, decoded to float32; records adjacent in the
        file come in one read of at most `_READ_RECORDS` (a few MB), not one read each."""
        channels = _FIELDS[name][2]
        shape = (self.height, self.width) + ((3,) if channels == 3 else ())
        out = torch.empty((len(positions),) + shape, dtype=torch.float32)
        records = np.empty((min(_READ_RECORDS, len(positions)),) + shape, np.float16)
        with open(self._path(name), "rb") as f:
            for row, count in _runs(positions, _READ_RECORDS):
                f.seek(int(positions[row]) * self._record_bytes(channels))
                f.readinto(memoryview(records[:count]).cast("B"))
                out[row:row + count] = torch.from_numpy(records[:count])
        if channels == 3:
            out *= torch.from_numpy(self.scales[positions])[:, None, None, None]
        else:
            out.exp_()
        return out

    def _read_images(self, frames: np.ndarray) -> np.ndarray | None:
        """The stored images of `frames`, or None."""
        if not self.has_images:
            return None
        out = np.empty((len(frames), self.height, self.width, 3), np.uint8)
        with open(self.folder / _IMAGES, "rb") as f:
            for row, i in enumerate(frames):
                f.seek(int(i) * out[0].nbytes)
                f.readinto(memoryview(out[row]).cast("B"))
        return out


def _runs(positions: np.ndarray, longest: int) -> list[tuple[int, int]]:
    """(first row, count) of the runs of consecutive values in `positions`, each at most
    `longest` long."""
    breaks = np.flatnonzero(np.diff(positions) != 1) + 1
    runs = []
    for start, stop in zip(np.r_[0, breaks], np.r_[breaks, len(positions)], strict=True):
        runs += [(int(row), int(min(longest, stop - row))) for row in range(start, stop, longest)]
    return runs
