"""Bounded memory for the MASt3R-SLAM stream (issue 12, "bounded cost"): the dense data of
keyframes (image, fused pointmap, confidences, mover mask) and of back-end edges (per-pixel
target points or matches, and weights) stays in RAM only for the most recently used items; the
others live in .npy files of one temporary directory and are read back when touched again.

A `Paged` object (`Keyframe`, `Edge`) declares its dense attributes as
`DenseField`s; reading one asks its `SpillStore` to page the object in (and evict the least
recently used object beyond the store's capacity), writing one marks it changed, so an evicted
object is written again only when it changed since its last write. Values come back bit for bit,
on the device they had, so the stream computes exactly what it computes in memory. Objects never
added to a store are plain in-memory objects. `SpillSpace` owns the temporary directory (created
at the first spill, removed by `close`, at garbage collection or at exit).

`FrameLinks` keeps the per-frame (keyframe id, Sim(3) keyframe <- frame) of the stream in one
growing array (132 bytes a frame) instead of a Python object per frame.
"""

from __future__ import annotations

import tempfile
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

Dense = Tensor | np.ndarray


class DenseField:
    """An attribute of a `Paged` object whose value its store may keep on disk."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Paged | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        return obj.resident()[self.name]

    def __set__(self, obj: Paged, value: Dense) -> None:
        obj.resident()[self.name] = value
        obj._changed = True


class Paged:
    """Base of objects with `DenseField` attributes (module doc); dense values are replaced,
    never changed in place, so that a write marks the object changed."""

    def __init__(self) -> None:
        self._dense: dict[str, Dense] | None = {}
        self._store: SpillStore | None = None
        self._changed = True
        self._key = -1

    def resident(self) -> dict[str, Dense]:
        """The dense attributes by name, paged in by the store when they were spilled."""
        if self._store is not None:
            self._store.touch(self)
        return self._dense

    def is_resident(self) -> bool:
        """Whether the dense attributes are in RAM now (no paging)."""
        return self._dense is not None

    def resident_bytes(self) -> int:
        """Bytes of the dense attributes in RAM now (0 when spilled; no paging)."""
        return sum(v.nbytes for v in (self._dense or {}).values())


class SpillSpace:
    """The temporary directory of a stream's spilled data (under `parent`, default the system's
    temporary directory), made at the first `path` call; unusable once closed."""

    def __init__(self, parent: str | Path | None = None) -> None:
        self.parent = parent
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._closed = False

    @property
    def directory(self) -> Path | None:
        """The directory, None before the first spill and after `close`."""
        return None if self._tmp is None else Path(self._tmp.name)

    def path(self, name: str) -> Path:
        """Where the spilled file `name` goes."""
        if self._closed:
            raise RuntimeError("the SLAM stream was closed and its spilled keyframes and edges "
                               "removed: read its results before closing it")
        if self._tmp is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="recon4d-slam-", dir=self.parent)
        return Path(self._tmp.name) / name

    def close(self) -> None:
        """Remove the directory and everything spilled into it."""
        self._closed = True
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class SpillStore:
    """Keeps the dense data of at most `capacity` `Paged` objects in RAM, least recently used
    out first, the rest in `space` as `<prefix><key>_<field>.npy`. The objects of one store
    have the same fields, each on one device (one record per store, not per object)."""

    def __init__(self, space: SpillSpace, prefix: str, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"a spill store holds at least 1 object in RAM, not {capacity}")
        self.space, self.prefix, self.capacity = space, prefix, capacity
        self._resident: OrderedDict[int, Paged] = OrderedDict()
        self._devices: dict[str, torch.device | None] = {}  # per field; None: numpy
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, item: Paged) -> None:
        """Take charge of `item` (resident, most recently used)."""
        item._store, item._key = self, self._count
        self._count += 1
        self.touch(item)

    def resident_keys(self) -> list[int]:
        """Keys (in order of `add`) of the objects in RAM, least recently used first."""
        return list(self._resident)

    def touch(self, item: Paged) -> None:
        """Page `item` in when spilled, mark it most recently used, spill beyond capacity."""
        if item._dense is None:
            item._dense = self._load(item._key)
            item._changed = False
        self._resident[item._key] = item
        self._resident.move_to_end(item._key)
        while len(self._resident) > self.capacity:
            _, old = self._resident.popitem(last=False)
            if old._changed:
                self._save(old)
            old._dense = None

    def _file(self, key: int, name: str) -> Path:
        return self.space.path(f"{self.prefix}{key:07d}_{name}.npy")

    def _save(self, item: Paged) -> None:
        for name, value in item._dense.items():
            is_tensor = isinstance(value, Tensor)
            self._devices[name] = value.device if is_tensor else None
            np.save(self._file(item._key, name),
                    value.detach().cpu().numpy() if is_tensor else value)
        item._changed = False

    def _load(self, key: int) -> dict[str, Dense]:
        dense = {}
        for name, device in self._devices.items():
            value = np.load(self._file(key, name))
            dense[name] = value if device is None else torch.from_numpy(value).to(device)
        return dense


class FrameLinks:
    """Per frame, its keyframe id and Sim(3) keyframe <- frame (4, 4) float64, in growing
    arrays; reads and writes as a list of (id, tensor) pairs."""

    def __init__(self) -> None:
        self._ids = np.zeros(0, np.int32)
        self._poses = np.zeros((0, 4, 4), np.float64)
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, link: tuple[int, Tensor]) -> None:
        if self._count == len(self._ids):
            grown = max(64, 2 * self._count)
            self._ids = np.resize(self._ids, grown)
            self._poses = np.resize(self._poses, (grown, 4, 4))
        self._count += 1
        self[self._count - 1] = link

    def __getitem__(self, index: int) -> tuple[int, Tensor]:
        index = range(self._count)[index]
        return int(self._ids[index]), torch.from_numpy(self._poses[index].copy())

    def __setitem__(self, index: int, link: tuple[int, Tensor]) -> None:
        index = range(self._count)[index]
        self._ids[index] = link[0]
        self._poses[index] = link[1].detach().cpu().double().numpy()

    def __iter__(self) -> Iterator[tuple[int, Tensor]]:
        return (self[i] for i in range(self._count))

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays, room to grow included."""
        return self._ids.nbytes + self._poses.nbytes

    def keyframe_ids(self) -> np.ndarray:
        """(N,) keyframe id of every frame."""
        return self._ids[:self._count].copy()
