"""Write a SyntheticScene to a self-describing folder (atomically) and read it back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from recon4d.errors import InputError
from recon4d.io.arrays import load_npy
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.layout import (
    DEPTH_DIR,
    DYNAMIC_MASK_DIR,
    FLOW_DIR,
    FLOW_VALID_DIR,
    INSTANCE_DIR,
    INTRINSICS_ARRAY_FILE,
    OBJECT_POSES_FILE,
    POSES_FILE,
    RGB_DIR,
    SCENE_FLOW_DIR,
    SCENE_JSON,
    TIMESTAMPS_FILE,
    TRAJECTORY_FILE,
    frame_file,
)
from recon4d.io.scene_json import write_scene_json
from recon4d.io.tum import Trajectory, write_tum
from recon4d.synthetic.scene import SyntheticScene

# file layout (recon4d.io.layout), also recorded in scene.json; {i} is the frame index, 6 digits
LAYOUT = {
    f"{RGB_DIR}/{{i}}.png": "colour frame, 8-bit RGB",
    f"{DEPTH_DIR}/{{i}}.npy": "float32 (H, W) z-depth in scene units, 0 where no surface",
    f"{DYNAMIC_MASK_DIR}/{{i}}.png": "8-bit, 255 on movers, 0 elsewhere",
    f"{INSTANCE_DIR}/{{i}}.png": "16-bit, 0 static background, k on mover k",
    f"{FLOW_DIR}/{{i}}.npy": "float32 (H, W, 2) pixel displacement (du, dv) from frame i to i+1; "
                             "frames 0..N-2",
    f"{FLOW_VALID_DIR}/{{i}}.png": "8-bit, 255 where the flow is valid (visible in i+1, inside "
                                   "the image)",
    f"{SCENE_FLOW_DIR}/{{i}}.npy": "float32 (H, W, 3) world displacement of the surface point, "
                                   "i to i+1",
    POSES_FILE: "float64 (N, 4, 4) camera-to-world, OpenCV axes (x right, y down, z forward)",
    INTRINSICS_ARRAY_FILE: "float64 (N, 3, 3) pinhole K in pixels, pixel centres at integers",
    TIMESTAMPS_FILE: "float64 (N,) seconds",
    OBJECT_POSES_FILE: "float64 (N, K+1, 4, 4) body-to-world pose of each object, 0 = static",
    TRAJECTORY_FILE: "camera-to-world per frame: t tx ty tz qx qy qz qw",
}
CONTENT = "recon4d-synthetic-scene"  # scene.json "content" of a synthetic scene folder
# per-frame folders: (folder, suffix, SyntheticScene field, stored dtype, frames 0..N-1 or 0..N-2)
PER_FRAME = ((RGB_DIR, ".png", "rgb", "uint8", True),
             (DEPTH_DIR, ".npy", "depth", "float32", True),
             (DYNAMIC_MASK_DIR, ".png", "dynamic_mask", "bool", True),
             (INSTANCE_DIR, ".png", "instance", "uint16", True),
             (FLOW_DIR, ".npy", "flow_fwd", "float32", False),
             (FLOW_VALID_DIR, ".png", "flow_valid", "bool", False),
             (SCENE_FLOW_DIR, ".npy", "scene_flow_fwd", "float32", False))
ARRAYS = ((POSES_FILE, "poses_c2w"), (INTRINSICS_ARRAY_FILE, "intrinsics"),
          (TIMESTAMPS_FILE, "timestamps"), (OBJECT_POSES_FILE, "object_poses"))


def _save_frame(path: Path, array: np.ndarray, dtype: str) -> None:
    """One per-frame file: .npy as `dtype`; PNG as 8-bit (0/255 for bool) or 16-bit."""
    if path.suffix == ".npy":
        np.save(path, array.astype(dtype))
    else:
        Image.fromarray(array.astype(np.uint8) * 255 if dtype == "bool"
                        else array.astype(dtype)).save(path)


def write_scene(scene: SyntheticScene, folder: str | os.PathLike, progress: bool = False) -> Path:
    """Write `scene` to `folder` (see LAYOUT); the folder appears only once complete."""
    folder = Path(folder)
    with atomic_output_dir(folder) as out:
        for sub, *_ in PER_FRAME:
            (out / sub).mkdir()
        for i in tqdm(range(scene.num_frames), desc="writing", unit="frame", disable=not progress):
            for sub, suffix, field, dtype, every_frame in PER_FRAME:
                if every_frame or i < scene.num_frames - 1:
                    _save_frame(out / frame_file(sub, i, suffix), getattr(scene, field)[i], dtype)
        for name, field in ARRAYS:
            np.save(out / name, getattr(scene, field).astype(np.float64))
        write_tum(out / TRAJECTORY_FILE, Trajectory(scene.timestamps, scene.poses_c2w))
        height, width = scene.shape
        write_scene_json(out, "synth", scene.params, extra={
            "content": CONTENT, "seed": scene.seed, "frames": scene.num_frames,
            "width": width, "height": height, "movers": int(scene.object_poses.shape[1] - 1),
            "layout": LAYOUT})
    return folder


def _read_array(path: Path, shape: tuple, dtype: str) -> np.ndarray:
    """A .npy or .png file as an array of the expected shape and dtype kind, or InputError."""
    if not path.is_file():
        raise InputError(f"{path}: missing file of the synthetic scene")
    try:
        if path.suffix == ".npy":
            arr = load_npy(path)
        else:
            with Image.open(path) as img:
                arr = np.array(img)
    except Exception as exc:  # noqa: BLE001 - any read failure means a damaged scene folder
        raise InputError(f"{path}: cannot read ({exc})") from exc
    if arr.shape != shape:
        raise InputError(f"{path}: expected shape {shape}, found {arr.shape}")
    return arr.astype(dtype, copy=False)


def load_scene(folder: str | os.PathLike) -> SyntheticScene:
    """Read a folder written by `write_scene` back into a SyntheticScene."""
    folder = Path(folder)
    meta_path = folder / SCENE_JSON
    if not meta_path.is_file():
        raise InputError(f"{folder}: not a synthetic scene folder (no {SCENE_JSON})")
    try:
        meta = json.loads(meta_path.read_text())
        frames, height, width = int(meta["frames"]), int(meta["height"]), int(meta["width"])
        movers = int(meta["movers"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{meta_path}: not a synthetic scene description ({exc})") from exc
    if meta.get("content") != CONTENT:
        raise InputError(f"{meta_path}: not a synthetic scene (content {meta.get('content')!r})")
    n, hw = frames, (height, width)
    shapes = {"rgb": hw + (3,), "depth": hw, "dynamic_mask": hw, "instance": hw,
              "flow_fwd": hw + (2,), "flow_valid": hw, "scene_flow_fwd": hw + (3,),
              "poses_c2w": (n, 4, 4), "intrinsics": (n, 3, 3), "timestamps": (n,),
              "object_poses": (n, movers + 1, 4, 4)}
    fields = {}
    for sub, suffix, field, dtype, every_frame in PER_FRAME:
        count, shape = n if every_frame else n - 1, shapes[field]
        read_as = "uint8" if dtype == "bool" else dtype
        stack = (np.stack([_read_array(folder / frame_file(sub, i, suffix), shape, read_as)
                           for i in range(count)]) if count else np.zeros((0,) + shape, read_as))
        fields[field] = stack > 0 if dtype == "bool" else stack
    fields["instance"] = fields["instance"].astype(np.int32)
    for name, field in ARRAYS:
        fields[field] = _read_array(folder / name, shapes[field], "float64")
    return SyntheticScene(**fields, seed=int(meta.get("seed", 0)),
                          params=dict(meta.get("options", {})))
