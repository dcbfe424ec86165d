"""Optical flow between the frames of each pair edge: OpenCV's DIS (no weights) or RAFT.

Conventions: `images` (N, H, W, 3) uint8 RGB at model resolution; `edges` (E, 2) int, edge
(i, j) asks for the flow from frame i to frame j; the result (E, H, W, 2) float32 holds
(du, dv) in pixels (u = column) on frame i's grid: pixel (u, v) of i is seen at
(u + du, v + dv) in j.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import numpy as np

from recon4d.errors import InputError, OptionError, Recon4dError
from recon4d.options import FLOW_METHODS

# DIS presets by name: OpenCV's preset enum and the settings changed on top of it. "fine" is
# "medium" with patches at full resolution (finest scale 0) and 4-pixel patches every 2 pixels:
# against the synthetic scenes' true flow its static error is p90 0.7 / p98 3 px instead of
# 2.7 / 16 px, and 0.9 px instead of 5.6 px (median) within 4 px of a mover, for about 4x the
# time (docs/algorithms.md, flow masks)
DIS_PRESETS: dict[str, tuple[int, dict[str, int]]] = {
    "ultrafast": (0, {}), "fast": (1, {}), "medium": (2, {}),
    "fine": (2, {"FinestScale": 0, "PatchSize": 4, "PatchStride": 2}),
}
RAFT_BATCH = 4  # image pairs per RAFT forward (CPU memory at 512x384)
RAFT_MULTIPLE = 8  # RAFT needs sides divisible by 8: inputs are edge-padded to it


def _import(module: str, purpose: str, extra: str) -> ModuleType:
    """Import an optional dependency or raise a Recon4dError naming the package to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise Recon4dError(f"{purpose} needs the package '{extra}' ({exc}): "
                           f"pip install '{extra}'") from None


def check_inputs(images: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Validated (N, H, W, 3) uint8 images and (E, 2) int64 edges indexing them."""
    images = np.asarray(images)
    edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise InputError(f"optical flow: images must be uint8 (N, H, W, 3), got "
                         f"{images.dtype} {images.shape}")
    if len(edges) and (edges.min() < 0 or edges.max() >= len(images)):
        raise InputError(f"optical flow: edges index frames outside 0..{len(images) - 1}")
    return images, edges


def optical_flow(images: np.ndarray, edges: np.ndarray, method: str = "dis", *,
                 raft_weights: str | os.PathLike | None = None,
                 dis_preset: str = "medium", initial: np.ndarray | None = None) -> np.ndarray:
    """(E, H, W, 2) float32 flow from frame i to frame j of every edge (module conventions).

    `dis` needs `opencv-python-headless` (extra `flow`) and starts from `initial` (E, H, W, 2)
    when given (NaN = no guess), which lets it follow motions beyond its coarsest scale; `raft`
    needs torchvision and a local state-dict file `raft_weights` (raft_large or raft_small,
    recognised from its keys) and takes no initial flow.
    """
    images, edges = check_inputs(images, edges)
    if method == "dis":
        if dis_preset not in DIS_PRESETS:
            raise OptionError(f"DIS preset must be one of {sorted(DIS_PRESETS)}, "
                              f"not {dis_preset!r}")
        if initial is not None and np.shape(initial) != (len(edges), *images.shape[1:3], 2):
            raise InputError(f"optical flow: initial flow must be ({len(edges)}, "
                             f"{images.shape[1]}, {images.shape[2]}, 2), got "
                             f"{np.shape(initial)}")
        return dis_flow(images, edges, dis_preset, initial)
    if method == "raft":
        if raft_weights is None:
            raise OptionError("optical flow 'raft' needs a local weights file (raft_weights); "
                              "nothing is downloaded")
        if initial is not None:
            raise OptionError("optical flow 'raft' takes no initial flow (only 'dis' does)")
        return raft_flow(images, edges, raft_weights)
    raise OptionError(f"optical flow method must be one of {FLOW_METHODS}, not {method!r}")


def dis_flow(images: np.ndarray, edges: np.ndarray, preset: str = "medium",
             initial: np.ndarray | None = None) -> np.ndarray:
    """DIS flow of every edge on grey images (one OpenCV call per edge: DIS has no batching)
    with the settings of DIS_PRESETS[preset]; OpenCV refines a given (H, W, 2) float32 flow
    instead of starting from zero."""
    cv2 = _import("cv2", "optical flow 'dis'", "opencv-python-headless")
    grey = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images])
    base, settings = DIS_PRESETS[preset]
    dis = cv2.DISOpticalFlow_create(base)
    for name, value in settings.items():
        getattr(dis, f"set{name}")(value)
    out = np.empty((len(edges), *images.shape[1:3], 2), np.float32)
    for e, (i, j) in enumerate(edges):
        start = None if initial is None else np.nan_to_num(initial[e]).astype(np.float32)
        out[e] = dis.calc(grey[i], grey[j], start)
    return out


def load_raft(weights: str | os.PathLike) -> object:
    """RAFT (torchvision architecture) with a local state dict; raft_large or raft_small."""
    import torch

    models = _import("torchvision.models.optical_flow", "optical flow 'raft'", "torchvision")
    if not os.path.isfile(weights):
        raise InputError(f"RAFT weights {os.fspath(weights)!r}: no such file")
    try:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for a bad file
        raise InputError(f"RAFT weights {os.fspath(weights)!r}: not a torch state dict "
                         f"({exc})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    for build in (models.raft_large, models.raft_small):
        model = build(weights=None, progress=False)
        if set(model.state_dict()) == set(state):
            model.load_state_dict(state)
            return model.eval()
    raise InputError(f"RAFT weights {os.fspath(weights)!r}: the keys match neither "
                     "torchvision's raft_large nor raft_small")


def raft_flow(images: np.ndarray, edges: np.ndarray, weights: str | os.PathLike) -> np.ndarray:
    """RAFT flow of every edge, RAFT_BATCH pairs per forward, inputs scaled to [-1, 1]."""
    import torch
    import torch.nn.functional as F

    model = load_raft(weights)
    height, width = images.shape[1:3]
    pad_h, pad_w = (-height) % RAFT_MULTIPLE, (-width) % RAFT_MULTIPLE
    frames = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    frames = F.pad(frames, (0, pad_w, 0, pad_h), mode="replicate")
    out = np.empty((len(edges), height, width, 2), np.float32)
    with torch.inference_mode():
        for start in range(0, len(edges), RAFT_BATCH):
            chunk = torch.from_numpy(edges[start:start + RAFT_BATCH])
            flow = model(frames[chunk[:, 0]], frames[chunk[:, 1]])[-1]
            out[start:start + len(chunk)] = flow[:, :, :height, :width].permute(0, 2, 3, 1)
    return out
