"""Write a SyntheticScene to a self-describing folder (atomically) and read it back."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from recon4d.errors import InputError
from recon4d.eval.trajectory import Trajectory, write_tum
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.scene_json import write_scene_json
from recon4d.io.writers.files import frame_stem
from recon4d.synthetic.scene import SyntheticScene

# file layout, also recorded in scene.json; {i} is the frame index as 6 digits
LAYOUT = {
    "rgb/{i}.png": "colour frame, 8-bit RGB",
    "depth/{i}.npy": "float32 (H, W) z-depth in scene units, 0 where no surface",
    "dynamic_mask/{i}.png": "8-bit, 255 on movers, 0 elsewhere",
    "instance/{i}.png": "16-bit, 0 static background, k on mover k",
    "flow_fwd/{i}.npy": "float32 (H, W, 2) pixel displacement (du, dv) from frame i to i+1; "
                        "frames 0..N-2",
    "flow_valid/{i}.png": "8-bit, 255 where flow_fwd is valid (visible in i+1, inside the image)",
    "scene_flow_fwd/{i}.npy": "float32 (H, W, 3) world displacement of the surface point, i to i+1",
    "poses_c2w.npy": "float64 (N, 4, 4) camera-to-world, OpenCV axes (x right, y down, z forward)",
    "intrinsics.npy": "float64 (N, 3, 3) pinhole K in pixels, pixel centres at integers",
    "timestamps.npy": "float64 (N,) seconds",
    "object_poses.npy": "float64 (N, K+1, 4, 4) body-to-world pose of each object, 0 = static",
    "trajectory_tum.txt": "camera-to-world per frame: t tx ty tz qx qy qz qw",
}
CONTENT = "recon4d-synthetic-scene"  # scene.json "content" of a synthetic scene folder


def write_scene(scene: SyntheticScene, folder: str | os.PathLike, progress: bool = False) -> Path:
    """Write `scene` to `folder` (see LAYOUT); the folder appears only once complete."""
    folder = Path(folder)
    with atomic_output_dir(folder) as out:
        for sub in ("rgb", "depth", "dynamic_mask", "instance", "flow_fwd", "flow_valid",
                    "scene_flow_fwd"):
            (out / sub).mkdir()
        for i in tqdm(range(scene.num_frames), desc="writing", unit="frame", disable=not progress):
            n = frame_stem(i)
            Image.fromarray(scene.rgb[i]).save(out / "rgb" / f"{n}.png")
            np.save(out / "depth" / f"{n}.npy", scene.depth[i].astype(np.float32))
            Image.fromarray(scene.dynamic_mask[i].astype(np.uint8) * 255).save(
                out / "dynamic_mask" / f"{n}.png")
            Image.fromarray(scene.instance[i].astype(np.uint16)).save(out / "instance" / f"{n}.png")
            if i < scene.num_frames - 1:
                np.save(out / "flow_fwd" / f"{n}.npy", scene.flow_fwd[i].astype(np.float32))
                Image.fromarray(scene.flow_valid[i].astype(np.uint8) * 255).save(
                    out / "flow_valid" / f"{n}.png")
                np.save(out / "scene_flow_fwd" / f"{n}.npy",
                        scene.scene_flow_fwd[i].astype(np.float32))
        np.save(out / "poses_c2w.npy", scene.poses_c2w.astype(np.float64))
        np.save(out / "intrinsics.npy", scene.intrinsics.astype(np.float64))
        np.save(out / "timestamps.npy", scene.timestamps.astype(np.float64))
        np.save(out / "object_poses.npy", scene.object_poses.astype(np.float64))
        write_tum(out / "trajectory_tum.txt", Trajectory(scene.timestamps, scene.poses_c2w))
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
            arr = np.load(path, allow_pickle=False)
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
    meta_path = folder / "scene.json"
    if not meta_path.is_file():
        raise InputError(f"{folder}: not a synthetic scene folder (no scene.json)")
    try:
        meta = json.loads(meta_path.read_text())
        frames, height, width = int(meta["frames"]), int(meta["height"]), int(meta["width"])
        movers = int(meta["movers"])
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(f"{meta_path}: not a synthetic scene description ({exc})") from exc
    if meta.get("content") != CONTENT:
        raise InputError(f"{meta_path}: not a synthetic scene (content {meta.get('content')!r})")
    n, hw = frames, (height, width)

    def per_frame(sub: str, ext: str, count: int, shape: tuple, dtype: str) -> np.ndarray:
        return np.stack([_read_array(folder / sub / f"{frame_stem(i)}.{ext}", shape, dtype)
                         for i in range(count)]) if count else np.zeros((0,) + shape, dtype)

    return SyntheticScene(
        rgb=per_frame("rgb", "png", n, hw + (3,), "uint8"),
        depth=per_frame("depth", "npy", n, hw, "float32"),
        dynamic_mask=per_frame("dynamic_mask", "png", n, hw, "uint8") > 0,
        instance=per_frame("instance", "png", n, hw, "int32"),
        poses_c2w=_read_array(folder / "poses_c2w.npy", (n, 4, 4), "float64"),
        intrinsics=_read_array(folder / "intrinsics.npy", (n, 3, 3), "float64"),
        flow_fwd=per_frame("flow_fwd", "npy", n - 1, hw + (2,), "float32"),
        flow_valid=per_frame("flow_valid", "png", n - 1, hw, "uint8") > 0,
        scene_flow_fwd=per_frame("scene_flow_fwd", "npy", n - 1, hw + (3,), "float32"),
        timestamps=_read_array(folder / "timestamps.npy", (n,), "float64"),
        object_poses=_read_array(folder / "object_poses.npy", (n, movers + 1, 4, 4), "float64"),
        seed=int(meta.get("seed", 0)), params=dict(meta.get("options", {})))
