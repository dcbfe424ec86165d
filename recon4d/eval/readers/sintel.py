"""MPI Sintel: `training/depth/<seq>/frame_XXXX.dpt` and `training/camdata_left/<seq>/*.cam`.

Both binary formats start with the float32 tag 202021.25 (bytes 'PIEH'), little endian.
.dpt: int32 width, int32 height, then width*height float32 depths (row-major).
.cam: 9 float64 (3x3 intrinsics K), then 12 float64 (3x4 world-to-camera [R|t]).
Depth is capped at 70 by default as in the MonST3R protocol.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from recon4d.errors import InputError
from recon4d.eval.files import numbered_files, stack_frames
from recon4d.eval.readers.base import ALL_FRAMES, FrameSelection, GroundTruth
from recon4d.geometry.transforms import invert_rigid

TAG = 202021.25
MAX_DEPTH = 70.0
CAM_BYTES = 4 + 21 * 8


def training_dir(root: Path) -> Path:
    """The folder holding `depth/` and `camdata_left/` (the root's `training/` or the root)."""
    return root / "training" if (root / "training").is_dir() else root


def detect(root: Path) -> bool:
    """A Sintel root (or its training folder): camdata_left/ or depth/<seq>/*.dpt."""
    base = training_dir(root)
    return (base / "camdata_left").is_dir() or any((base / "depth").glob("*/*.dpt"))


def sequences(root: Path) -> dict[str, Path]:
    """{name: folder} for every sequence with depth or cameras (the depth or camera folder)."""
    base = training_dir(root)
    found = {}
    for sub in ("camdata_left", "depth"):
        if (base / sub).is_dir():
            found.update({p.name: p for p in (base / sub).iterdir() if p.is_dir()})
    return dict(sorted(found.items()))


def check_tag(path: Path, data: bytes, min_size: int) -> None:
    """Raise InputError unless `data` is long enough and starts with the Sintel tag."""
    if len(data) < min_size or struct.unpack("<f", data[:4])[0] != TAG:
        raise InputError(f"{path}: not a Sintel file (missing 'PIEH' tag or too short)")


def read_dpt(path: Path) -> np.ndarray:
    """(H, W) float32 depth of a Sintel .dpt file."""
    data = path.read_bytes() if path.is_file() else b""
    if not data:
        raise InputError(f"{path}: file not found or empty")
    check_tag(path, data, 12)
    width, height = struct.unpack("<ii", data[4:12])
    if width <= 0 or height <= 0 or len(data) != 12 + 4 * width * height:
        raise InputError(f"{path}: size {len(data)} bytes does not match {width}x{height} depth")
    return np.frombuffer(data, "<f4", offset=12).reshape(height, width).astype(np.float32)


def read_cam(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(K 3x3, camera-to-world 4x4) of a Sintel .cam file."""
    data = path.read_bytes() if path.is_file() else b""
    if not data:
        raise InputError(f"{path}: file not found or empty")
    check_tag(path, data, CAM_BYTES)
    if len(data) != CAM_BYTES:
        raise InputError(f"{path}: expected {CAM_BYTES} bytes, got {len(data)}")
    values = np.frombuffer(data, "<f8", offset=4)
    w2c = np.eye(4)
    w2c[:3] = values[9:].reshape(3, 4)
    return values[:9].reshape(3, 3).copy(), invert_rigid(w2c)


def load(path: Path, selection: FrameSelection = ALL_FRAMES) -> GroundTruth:
    """Read the selected frames of a sequence, given its depth or camera folder."""
    base, name = path.parent.parent, path.name
    depth_dir, cam_dir = base / "depth" / name, base / "camdata_left" / name
    listing = numbered_files(depth_dir, ".dpt") or numbered_files(cam_dir, ".cam")
    if not listing:
        raise InputError(f"{depth_dir}: no .dpt files (and no .cam files in {cam_dir})")
    stems = [p.stem for p in listing]
    keep = selection.indices(len(stems))
    if len(keep) == 0:
        raise InputError(f"{depth_dir}: the frame selection leaves no frame")
    stems = [stems[i] for i in keep]
    gt = GroundTruth(name=name, frames=stems, timestamps=keep.astype(np.float64),
                     max_depth=MAX_DEPTH, clip_depth=MAX_DEPTH)
    if depth_dir.is_dir():
        paths = [depth_dir / f"{s}.dpt" for s in stems]
        gt.depth = stack_frames([read_dpt(p) for p in paths], paths)
    if cam_dir.is_dir():
        cams = [read_cam(cam_dir / f"{s}.cam") for s in stems]
        gt.intrinsics = np.stack([k for k, _ in cams])
        gt.poses = np.stack([c2w for _, c2w in cams])
    return gt
