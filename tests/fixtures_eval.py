"""Builders of tiny benchmark and prediction folders in the real on-disk layouts (test data).

Quaternions here come from scipy's Rotation, independently of recon4d's own conversion code.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.spatial.transform import Rotation

SINTEL_TAG = struct.pack("<f", 202021.25)


def random_poses(n: int, seed: int, step: float = 0.3) -> np.ndarray:
    """(n, 4, 4) camera-to-world poses of a smooth random walk (rotation and translation)."""
    rng = np.random.default_rng(seed)
    rot = Rotation.from_rotvec(np.cumsum(rng.normal(0, 0.1, (n, 3)), axis=0))
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = rot.as_matrix()
    poses[:, :3, 3] = np.cumsum(rng.normal(0, step, (n, 3)), axis=0)
    return poses


def tum_lines(stamps: np.ndarray, poses: np.ndarray) -> list[str]:
    """TUM `t tx ty tz qx qy qz qw` lines (scipy quaternions, scalar last)."""
    quats = Rotation.from_matrix(poses[:, :3, :3]).as_quat()
    return [" ".join(repr(float(v)) for v in (t, *p[:3, 3], *q))
            for t, p, q in zip(stamps, poses, quats, strict=True)]


def write_tum_file(path: Path, stamps: np.ndarray, poses: np.ndarray) -> Path:
    """A TUM trajectory file with a comment header."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("# ground truth trajectory\n# timestamp tx ty tz qx qy qz qw\n"
                    + "\n".join(tum_lines(stamps, poses)) + "\n")
    return path


def write_png(path: Path, array: np.ndarray) -> None:
    """Save an array as PNG (16-bit for uint16 input)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)


def write_tum_sequence(folder: Path, depth: np.ndarray, rgb_stamps: np.ndarray,
                       depth_stamps: np.ndarray, gt_stamps: np.ndarray,
                       gt_poses: np.ndarray) -> Path:
    """A TUM RGB-D sequence: rgb.txt, depth.txt, groundtruth.txt (with comments), PNGs.

    `depth` (N, H, W) metres is stored as 16-bit PNG x 5000 under the depth timestamps.
    """
    folder.mkdir(parents=True, exist_ok=True)
    header = "# color images\n# file: 'rgbd_dataset.bag'\n# timestamp filename\n"
    rgb_lines, depth_lines = [], []
    for t, d in zip(rgb_stamps, depth, strict=True):
        rgb = np.full(d.shape + (3,), 128, np.uint8)
        write_png(folder / "rgb" / f"{t:.6f}.png", rgb)
        rgb_lines.append(f"{t:.6f} rgb/{t:.6f}.png")
    for t, d in zip(depth_stamps, depth, strict=True):
        write_png(folder / "depth" / f"{t:.6f}.png", np.round(d * 5000).astype(np.uint16))
        depth_lines.append(f"{t:.6f} depth/{t:.6f}.png")
    (folder / "rgb.txt").write_text(header + "\n".join(rgb_lines) + "\n")
    (folder / "depth.txt").write_text(header.replace("color", "depth") + "\n".join(depth_lines))
    write_tum_file(folder / "groundtruth.txt", gt_stamps, gt_poses)
    return folder


def write_dpt(path: Path, depth: np.ndarray) -> None:
    """Sintel .dpt: tag, int32 width, int32 height, float32 depths."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w = depth.shape
    path.write_bytes(SINTEL_TAG + struct.pack("<ii", w, h) + depth.astype("<f4").tobytes())


def write_cam(path: Path, k: np.ndarray, world_to_cam: np.ndarray) -> None:
    """Sintel .cam: tag, 3x3 K (float64), 3x4 world-to-camera (float64)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(SINTEL_TAG + k.astype("<f8").tobytes()
                     + world_to_cam[:3].astype("<f8").tobytes())


def write_sintel_sequence(root: Path, name: str, depth: np.ndarray, k: np.ndarray,
                          cam_to_world: np.ndarray) -> Path:
    """`root/training/{depth,camdata_left,final}/<name>/frame_XXXX.*`."""
    base = root / "training"
    for i, d in enumerate(depth, start=1):
        write_dpt(base / "depth" / name / f"frame_{i:04d}.dpt", d)
        write_cam(base / "camdata_left" / name / f"frame_{i:04d}.cam", k[i - 1],
                  np.linalg.inv(cam_to_world[i - 1]))
        write_png(base / "final" / name / f"frame_{i:04d}.png",
                  np.zeros(d.shape + (3,), np.uint8))
    return root


DAVIS_PALETTE = [0, 0, 0, 128, 0, 0, 0, 128, 0, 128, 128, 0] + [0] * (256 * 3 - 12)


def write_davis_sequence(root: Path, name: str, labels: np.ndarray) -> Path:
    """`JPEGImages/480p/<name>/00000.jpg` and palette `Annotations/480p/<name>/00000.png`."""
    for i, lab in enumerate(labels):
        jpg = root / "JPEGImages" / "480p" / name / f"{i:05d}.jpg"
        jpg.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full(lab.shape + (3,), 90, np.uint8)).save(jpg)
        png = root / "Annotations" / "480p" / name / f"{i:05d}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        img = Image.frombytes("P", lab.shape[::-1], lab.astype(np.uint8).tobytes())
        img.putpalette(DAVIS_PALETTE)
        img.save(png)
    return root


def write_synthetic_scene(folder: Path, depth: np.ndarray, masks: np.ndarray,
                          poses: np.ndarray, k: np.ndarray, stamps: np.ndarray) -> Path:
    """A synthetic scene folder in the documented layout."""
    for i, (d, m) in enumerate(zip(depth, masks, strict=True)):
        write_png(folder / "rgb" / f"{i:06d}.png", np.zeros(d.shape + (3,), np.uint8))
        (folder / "depth").mkdir(parents=True, exist_ok=True)
        np.save(folder / "depth" / f"{i:06d}.npy", d.astype(np.float32))
        write_png(folder / "dynamic_mask" / f"{i:06d}.png", m.astype(np.uint8) * 255)
    np.save(folder / "poses_c2w.npy", poses)
    np.save(folder / "intrinsics.npy", k)
    write_tum_file(folder / "trajectory_tum.txt", stamps, poses)
    (folder / "scene.json").write_text('{"format": 1, "command": "synth"}\n')
    return folder


def write_ply(path: Path, points: np.ndarray, binary: bool = True) -> None:
    """PLY with float x, y, z and uchar colours (binary little endian or ASCII)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    header = ("ply\nformat {} 1.0\ncomment test cloud\nelement vertex {}\n"
              "property float x\nproperty float y\nproperty float z\n"
              "property uchar red\nproperty uchar green\nproperty uchar blue\nend_header\n")
    if binary:
        dtype = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("red", "u1"),
                          ("green", "u1"), ("blue", "u1")])
        verts = np.zeros(len(points), dtype)
        for i, c in enumerate("xyz"):
            verts[c] = points[:, i]
        path.write_bytes(header.format("binary_little_endian", len(points)).encode()
                         + verts.tobytes())
    else:
        body = "".join(f"{x!r} {y!r} {z!r} 10 20 30\n" for x, y, z in points.tolist())
        path.write_text(header.format("ascii", len(points)) + body)


def write_prediction(folder: Path, stamps: np.ndarray | None = None,
                     poses: np.ndarray | None = None, depth: np.ndarray | None = None,
                     masks: np.ndarray | None = None, cloud: np.ndarray | None = None) -> Path:
    """A recon4d output folder with the given parts."""
    folder.mkdir(parents=True, exist_ok=True)
    if poses is not None:
        write_tum_file(folder / "trajectory_tum.txt",
                       np.arange(len(poses), dtype=float) if stamps is None else stamps, poses)
    if depth is not None:
        (folder / "depth").mkdir(exist_ok=True)
        for i, d in enumerate(depth):
            np.save(folder / "depth" / f"{i:06d}.npy", d.astype(np.float32))
    if masks is not None:
        for i, m in enumerate(masks):
            write_png(folder / "dynamic_mask" / f"{i:06d}.png", m.astype(np.uint8) * 255)
    if cloud is not None:
        write_ply(folder / "pointcloud.ply", cloud)
    (folder / "scene.json").write_text('{"format": 1, "command": "infer"}\n')
    return folder
