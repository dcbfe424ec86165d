"""Pair predictions arriving batch by batch, in any order, gathered in edge order."""

from __future__ import annotations

import numpy as np
import torch

from recon4d.errors import Recon4dError
from recon4d.inference.engine import PairSink
from recon4d.inference.model_images import Images
from recon4d.inference.predictions import PairPredictions, ShapeGroup, group_by_shape, group_rows

Batch = dict[str, np.ndarray]  # prediction name -> (B, ...) values of one batch


class PairCollector:
    """The predictions of the edges `edges` (E, 2) with view shapes `true_shape1`/`true_shape2`
    (E, 2): kept per shape group as `infer_pairs` keeps them, or handed to `sink` (e.g.
    `PairStore.add`) so that memory does not grow with the number of pairs."""

    def __init__(self, edges: np.ndarray, true_shape1: np.ndarray, true_shape2: np.ndarray,
                 sink: PairSink | None = None) -> None:
        self.edges, self.true_shape1, self.true_shape2 = edges, true_shape1, true_shape2
        self.sink = sink
        self.groups = group_by_shape(true_shape1, true_shape2)
        self.group_of, self.row_of = group_rows(self.groups, len(edges))
        self.stores: list[tuple[dict, dict] | None] = [None] * len(self.groups)
        self.received = np.zeros(len(edges), bool)

    def add(self, positions: np.ndarray, pred1: Batch, pred2: Batch) -> None:
        """One batch: the predictions (B, ...) of the edges at `positions` (B,), one shape
        group."""
        positions = np.asarray(positions, dtype=np.int64)
        sides = tuple({name: torch.from_numpy(np.array(value)) for name, value in pred.items()}
                      for pred in (pred1, pred2))  # a copy: Ray's arrays are read-only views
        self.received[positions] = True
        if self.sink is not None:
            self.sink(positions, *sides)
            return
        g = int(self.group_of[positions[0]])
        if self.stores[g] is None:
            rows = len(self.groups[g])
            self.stores[g] = tuple({name: torch.empty((rows,) + tuple(value.shape[1:]),
                                                      dtype=torch.float32)
                                    for name, value in side.items()} for side in sides)
        rows = torch.from_numpy(self.row_of[positions])
        for store, side in zip(self.stores[g], sides, strict=True):
            for name, value in side.items():
                store[name][rows] = value.to(torch.float32)

    def predictions(self, images: Images | None = None) -> PairPredictions:
        """Everything received, in edge order (empty pred dicts when a sink took them)."""
        missing = np.flatnonzero(~self.received)
        if len(missing):
            i, j = self.edges[missing[0]]
            raise Recon4dError(f"sharded inference: {len(missing)} pair(s) never came back "
                               f"(first {i}-{j})")
        groups = [ShapeGroup(index, *(store or ({}, {})))
                  for index, store in zip(self.groups, self.stores, strict=True)]
        return PairPredictions(self.edges, self.true_shape1, self.true_shape2, groups,
                               images=images)
