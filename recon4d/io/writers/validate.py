"""Checks run on a Scene before any file is written, so bad input never leaves partial output."""

from __future__ import annotations

import numpy as np

from recon4d.errors import InputError
from recon4d.scene import Scene


def frame_label(scene: Scene, index: int) -> str:
    """`frame 3 (img_0003.png)` for messages; the name only when the scene has one."""
    names = scene.image_names
    return f"frame {index} ({names[index]})" if len(names) == len(scene) else f"frame {index}"


def _expect_shape(name: str, array: np.ndarray | None, shape: tuple[int, ...]) -> None:
    got = None if array is None else np.shape(array)
    if got != shape:
        raise InputError(f"Scene.{name}: expected shape {shape}, got {got}")


def _check_finite(scene: Scene, name: str, array: np.ndarray) -> None:
    """Raise naming the first frame of `array` (N, ...) that holds a NaN or infinity."""
    bad = ~np.isfinite(array.reshape(len(array), -1)).all(axis=1)
    if bad.any():
        first = int(np.argmax(bad))
        raise InputError(f"Scene.{name} has non-finite values in {frame_label(scene, first)} "
                         f"({int(bad.sum())} frame(s) affected); refusing to write NaN outputs")


def check_scene(scene: Scene) -> None:
    """Raise InputError if the Scene's arrays disagree in shape or hold values no format can store.

    Rules: every array finite; depths >= 0; intrinsics are pinhole (no skew, positive focals);
    poses are rigid (orthonormal rotation, last row 0 0 0 1).
    """
    if scene.depths.ndim != 3 or len(scene) == 0:
        raise InputError(f"Scene.depths: expected (N, H, W) with N >= 1, got {scene.depths.shape}")
    n, h, w = scene.depths.shape
    _expect_shape("images", scene.images, (n, h, w, 3))
    if scene.images.dtype != np.uint8:
        raise InputError(f"Scene.images: expected uint8, got {scene.images.dtype}")
    _expect_shape("confs", scene.confs, (n, h, w))
    _expect_shape("masks", scene.masks, (n, h, w))
    if scene.dynamic_masks is not None:
        _expect_shape("dynamic_masks", scene.dynamic_masks, (n, h, w))
    _expect_shape("intrinsics", scene.intrinsics, (n, 3, 3))
    _expect_shape("poses_c2w", scene.poses_c2w, (n, 4, 4))
    if scene.image_names and len(scene.image_names) != n:
        raise InputError(f"Scene.image_names: {len(scene.image_names)} names for {n} frames")
    if scene.timestamps is not None:
        _expect_shape("timestamps", scene.timestamps, (n,))
        _check_finite(scene, "timestamps", np.asarray(scene.timestamps, np.float64)[:, None])
    if (scene.original_sizes is None) != (scene.crops is None):
        raise InputError("Scene.original_sizes and Scene.crops must be given together")
    if scene.original_sizes is not None:
        _expect_shape("original_sizes", scene.original_sizes, (n, 2))
        _expect_shape("crops", scene.crops, (n, 4))
        if (scene.original_sizes <= 0).any() or (scene.crops[:, 2:] <= 0).any():
            raise InputError("Scene.original_sizes / crops: sizes must be positive")
    for name in ("depths", "confs", "intrinsics", "poses_c2w"):
        _check_finite(scene, name, getattr(scene, name))
    _check_values(scene)


def _check_values(scene: Scene) -> None:
    """Per-frame value rules: non-negative depth, pinhole K, rigid pose."""
    k, pose = scene.intrinsics, scene.poses_c2w
    rot = pose[:, :3, :3]
    rules = [
        ("depths", (scene.depths < 0).reshape(len(scene), -1).any(axis=1), "negative depth"),
        ("intrinsics", (k[:, 0, 0] <= 0) | (k[:, 1, 1] <= 0), "non-positive focal length"),
        ("intrinsics", np.abs(k[:, [0, 1, 2, 2, 2], [1, 0, 0, 1, 2]]
                              - [0, 0, 0, 0, 1]).max(axis=1) > 1e-9,
         "not a pinhole matrix [[fx,0,cx],[0,fy,cy],[0,0,1]]"),
        ("poses_c2w", np.abs(pose[:, 3] - [0, 0, 0, 1]).max(axis=1) > 1e-9,
         "last row is not 0 0 0 1"),
        ("poses_c2w", (np.abs(rot.transpose(0, 2, 1) @ rot - np.eye(3)).max(axis=(1, 2)) > 1e-4)
         | (np.linalg.det(rot) <= 0), "rotation is not orthonormal with det +1"),
    ]
    for name, bad, problem in rules:
        if bad.any():
            where = frame_label(scene, int(np.argmax(bad)))
            raise InputError(f"Scene.{name}: {problem} in {where}")
