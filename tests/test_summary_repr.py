"""Printing a Scene shows array shapes, not array contents."""

from __future__ import annotations

import numpy as np
import torch

from recon4d.scene import Scene
from recon4d.summary_repr import summarize


def test_summarize_values():
    assert summarize(np.zeros((2, 3), np.float32)) == "ndarray(2, 3) float32"
    assert summarize(torch.zeros(4, dtype=torch.int64)) == "tensor(4,) int64"
    assert summarize(["a", "b"]) == "['a', 'b']"
    assert summarize([str(i) for i in range(100)]) == "[100 items]"
    assert summarize(None) == "None"


def test_scene_repr_is_short():
    n, h, w = 3, 40, 50
    scene = Scene(images=np.zeros((n, h, w, 3), np.uint8), depths=np.ones((n, h, w), np.float32),
                  confs=np.ones((n, h, w), np.float32), intrinsics=np.tile(np.eye(3), (n, 1, 1)),
                  poses_c2w=np.tile(np.eye(4), (n, 1, 1)), masks=np.ones((n, h, w), bool))
    text = repr(scene)
    assert text.startswith("Scene(images=ndarray(3, 40, 50, 3) uint8, ")
    assert "depths=ndarray(3, 40, 50) float32" in text and "\n" not in text
