"""Long videos in `reconstruct`: pair predictions on disk and alignment window by window.

When the pair graph of N frames does not fit in one window (`recon4d.pipeline.windows`,
default 50 frames widened to twice the graph's reach), the predictions go to a `PairStore` on
disk (from the network as each batch comes out; predictions already in memory, from a file or
the oracle, are moved there), and each window reads back only its own pairs. Flow masks are
computed window by window from the stored pairs (each frame's from the first window holding
it); attention masks come from the probes, which stay in memory (a few hundred bytes per token).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

import numpy as np

from recon4d.align.known import KnownCameras
from recon4d.dynamics.masks import MotionMasks
from recon4d.errors import OptionError
from recon4d.inference import PairPredictions
from recon4d.inference.pair_store import PairStore
from recon4d.options import MotionOptions
from recon4d.pipeline.motion import masks_of
from recon4d.pipeline.windows import aligned_in_windows, plan_windows
from recon4d.scene import Scene


def graph_reach(edges: np.ndarray) -> int:
    """The largest frame distance of a pair."""
    return int(np.abs(edges[:, 0] - edges[:, 1]).max())


def windows_for(n_frames: int, edges: np.ndarray, window: int | None) -> list[range]:
    """The windows of a video; an explicit window longer than the video is refused (one piece
    is what omitting --window gives)."""
    if window is not None and window > n_frames:
        raise OptionError(f"--window {window} is larger than the video ({n_frames} frames); "
                          "omit --window to align it in one piece")
    return plan_windows(n_frames, graph_reach(edges), window)


def store_predictions(store: PairStore, predictions: PairPredictions) -> None:
    """Move in-memory predictions (and their images) into `store`."""
    for group in predictions.groups:
        store.add(group.edge_index, group.pred1, group.pred2)
    if isinstance(predictions.images, np.ndarray):
        store.add_images(predictions.images)


def window_flow_masks(store: PairStore, windows: list[range],
                      motion: MotionOptions) -> MotionMasks:
    """Flow masks and maps of all frames, window by window from the stored pairs (each
    frame's from the first window holding it)."""
    shape = (store.n_images, store.height, store.width)
    masks, maps = np.zeros(shape, bool), np.zeros(shape, np.float32)
    done = np.zeros(store.n_images, bool)
    for frames in windows:
        frames = np.arange(frames.start, frames.stop)
        estimate = masks_of(store.read(frames), motion, "flow")
        new = ~done[frames]
        masks[frames[new]] = estimate.masks[new]
        maps[frames[new]] = estimate.maps[new]
        done[frames] = True
    return dataclasses.replace(estimate, masks=masks, maps=maps)


def align_windows(store: PairStore, windows: list[range], known: KnownCameras | None,
                  terms: Callable[[np.ndarray, np.ndarray], Any] | None,
                  align_kwargs: dict[str, Any], progress: bool) -> Scene:
    """One Scene from the windows; `terms(frames, edge_positions)` gives a window's video terms
    (None on the static path)."""
    window = len(windows[0])
    overlap = window - (windows[1].start - windows[0].start) if len(windows) > 1 else None

    def per_window(frames: np.ndarray) -> dict[str, Any]:
        if terms is None:
            return dict(align_kwargs)
        return {**align_kwargs, "video": terms(frames, store.edges_within(frames))}

    return aligned_in_windows(store, window=window, overlap=overlap, known=known,
                              align_kwargs=per_window, progress=progress)


def store_parent(out_dir: os.PathLike) -> str:
    """Where the pair store goes: beside the output folder (same disk as the output)."""
    return os.fspath(os.path.dirname(os.path.abspath(os.fspath(out_dir))))
