"""SLAM3R's bookkeeping rules (algorithms-spec §5 with §8.3): I2P windows, the automatic
keyframe stride's trial windows, window sizes, and the scene-frame buffer.

Pure index arithmetic and a seeded generator, no networks, so each rule is testable by hand.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

STRIDE_PROBE_RADIUS = 3  # the automatic stride always tries windows of radius 3 (7 views)
STRIDE_PROBE_WINDOWS = 10


def window_ids(frame: int, stride: int, radius: int, count: int) -> list[int]:
    """I2P window of `frame`: [frame, frame - s, frame + s, frame - 2s, ...] up to `radius`
    strides each side, dropping indices outside 0..count-1; the frame itself is view 0."""
    ids = [frame]
    for k in range(1, radius + 1):
        ids += [i for i in (frame - k * stride, frame + k * stride) if 0 <= i < count]
    return ids


def probe_strides(count: int, max_stride: int) -> range:
    """Strides the automatic choice tries on `count` frames: 1..min((count - 1) // 6, max)."""
    return range(1, min((count - 1) // (2 * STRIDE_PROBE_RADIUS), max_stride) + 1)


def probe_windows(count: int, stride: int, rng: np.random.Generator) -> list[list[int]]:
    """Trial windows of one stride: min(count - 6s, 10) centres drawn without replacement from
    [3s, count - 3s), each with its full radius-3 window."""
    r = STRIDE_PROBE_RADIUS
    centres = rng.choice(np.arange(r * stride, count - r * stride),
                         min(count - 2 * r * stride, STRIDE_PROBE_WINDOWS), replace=False)
    return [window_ids(int(c), stride, r, count) for c in centres]


def initial_window_size(count: int, stride: int, winsize: int) -> int:
    """Keyframes of the initial window on a stream of `count` frames: min(winsize, count // s)."""
    return min(winsize, count // stride)


def register_batch(stride: int, max_num_register: int) -> int:
    """Frames registered per L2W call: max(1, min((s + 1) // 2, max_num_register))."""
    return max(1, min((stride + 1) // 2, max_num_register))


def normalise_points(points: list[torch.Tensor], valid: list[torch.Tensor]) -> list[torch.Tensor]:
    """Pointmaps divided jointly by the mean distance to the origin of their `valid` points, and
    zeroed where not valid (the L2W input convention)."""
    dist = torch.cat([p[v].norm(dim=-1) for p, v in zip(points, valid, strict=True)])
    scale = dist.mean().clamp_min(1e-12) if dist.numel() else points[0].new_tensor(1.0)
    return [torch.where(v[..., None], p / scale, torch.zeros_like(p))
            for p, v in zip(points, valid, strict=True)]


def unit_conf(conf: float) -> float:
    """A confidence >= 1 mapped to [0, 1): (c - 1) / c."""
    return (conf - 1.0) / conf


class SceneBuffer:
    """The buffered scene frames that retrieval chooses from, updated once per stride segment.

    After registration reaches `next_id`, and when at least `interval` x stride frames past the
    milestone are registered, each complete stride segment [milestone, milestone + s) may add
    its best frame (highest product of unit registration and local confidences, at least
    3s // 4 after the last buffered frame). When full, `fifo` drops the oldest; `reservoir`
    inserts with probability size / counter (counter = initial size, +1 per segment) and
    then evicts a random one of the `size` older entries, never the newcomer.
    """

    def __init__(self, initial_ids: list[int], stride: int, size: int, strategy: str,
                 interval: int, rng: np.random.Generator) -> None:
        self.ids = list(initial_ids)
        self.stride, self.size, self.strategy = stride, size, strategy
        self.interval = interval * stride
        self.rng = rng
        self.counter = len(self.ids)
        self.milestone = self.ids[-1] + 1  # every frame before it had its chance to enter

    def update(self, next_id: int, score: Callable[[int], float]) -> list[int]:
        """Consider the complete segments before `next_id` (the first unregistered frame);
        `score(i)` is frame i's selection score. Returns the evicted frame ids."""
        evicted: list[int] = []
        if next_id - self.milestone < self.interval:
            return evicted
        s = self.stride
        while next_id - self.milestone >= s:
            self.counter += 1
            full = self.size > 0 and len(self.ids) >= self.size
            insert = (not full or self.strategy == "fifo"
                      or self.rng.random() < self.size / self.counter)
            if insert:
                first = self.milestone + max(0, self.ids[-1] + (3 * s) // 4 - self.milestone)
                candidates = range(first, self.milestone + s)
                self.ids.append(max(candidates, key=score))
                if full:
                    index = 0 if self.strategy == "fifo" else int(self.rng.integers(self.size))
                    evicted.append(self.ids.pop(index))
            self.milestone += s
        return evicted
