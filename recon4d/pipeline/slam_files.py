"""Frames in and files out shared by the `slam` methods: lazily loaded views of a folder or
video, and the per-frame trajectory (TUM), intrinsics, fused cloud (PLY, GLB) and per-frame CSV
table every method writes, so `recon4d eval` and `recon4d view` read any of them."""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from recon4d.io import collect_frames
from recon4d.io.atomic import atomic_write_text
from recon4d.io.images import load_images
from recon4d.io.layout import TRAJECTORY_FILE
from recon4d.io.tum import Trajectory, write_tum
from recon4d.io.writers.glb import write_glb
from recon4d.io.writers.intrinsics import write_intrinsics
from recon4d.io.writers.ply import write_ply
from recon4d.io.writers.points import Cloud
from recon4d.options.slam import SlamOptions
from recon4d.scene import Scene
from recon4d.viz.map_video import MapVideo
from recon4d.viz.overlay import has_pyav

logger = logging.getLogger(__name__)


@dataclass
class StreamInput:
    """Lazily loaded views of a folder or video, their names and timestamps (None without),
    the input as given, and the first frame (image path or array, for its original size)."""

    views: Iterator[dict]
    names: list[str]
    stamps: np.ndarray | None
    input: str
    first: Any


def frames_from_input(input: str, opts: SlamOptions, step: int = 1) -> StreamInput:
    """The frames of INPUT at `opts.model_size`, every `step`-th one, loaded one at a time."""
    source = collect_frames(input, fps=opts.fps, num_frames=opts.num_frames)
    frames, names = source.frames[::step], list(source.names[::step])
    stamps = None if source.timestamps is None else source.timestamps[::step]

    def views() -> Iterator[dict]:
        for k, (frame, name) in enumerate(zip(frames, names, strict=True)):
            view = load_images([frame], size=opts.model_size)[0]
            yield dict(view, idx=k, label=name)

    return StreamInput(views(), names, stamps, source.input, frames[0])


def frame_stamps(stamps: np.ndarray | None, count: int) -> np.ndarray:
    """The first `count` timestamps, or 0, 1, ... when the frames have none."""
    if stamps is None:
        return np.arange(count, dtype=np.float64)
    return np.asarray(stamps, dtype=np.float64)[:count]


def write_cameras_and_cloud(out: Path, poses: np.ndarray, stamps: np.ndarray,
                            intrinsics: np.ndarray, names: Sequence[str], shape: tuple[int, int],
                            cloud: Cloud) -> None:
    """Trajectory, intrinsics (N, 3, 3), PLY and GLB (cloud and camera frustums) of a SLAM
    run of frames of `shape` (H, W)."""
    write_tum(out / TRAJECTORY_FILE, Trajectory(stamps, poses))
    write_ply(cloud, out)
    cameras = cameras_only(poses, intrinsics, names, shape)
    write_intrinsics(cameras, out)
    write_glb(cameras, {"static": cloud}, out, frustum_depth=frustum_depth(poses, cloud.xyz))


def write_table(path: Path, header: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """A CSV table, written atomically."""
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    atomic_write_text(path, table.getvalue())


def centred_intrinsics(focals: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """(N, 3, 3) K of (N,) focals with the principal point at the centre of (H, W) frames."""
    k = np.zeros((len(focals), 3, 3))
    k[:, 0, 0] = k[:, 1, 1] = focals
    k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = shape[1] / 2, shape[0] / 2, 1.0
    return k


def cameras_only(poses: np.ndarray, intrinsics: np.ndarray, names: Sequence[str],
                 shape: tuple[int, int]) -> Scene:
    """A Scene holding only the cameras (per-frame maps are zero-size broadcasts), for the
    intrinsics and GLB writers."""
    n, (h, w) = len(poses), shape

    def blank(dtype: type, *tail: int) -> np.ndarray:
        return np.broadcast_to(np.zeros((1, h, w, *tail), dtype), (n, h, w, *tail))

    return Scene(images=blank(np.uint8, 3), depths=blank(np.float32), confs=blank(np.float32),
                 intrinsics=intrinsics, poses_c2w=poses, masks=blank(bool),
                 image_names=list(names[:n]))


def frustum_depth(poses: np.ndarray, points: np.ndarray) -> float:
    """A tenth of the median distance from the cloud to the mean camera centre."""
    if not len(points):
        return 1.0
    centre = poses[:, :3, 3].mean(axis=0)
    return 0.1 * float(np.median(np.linalg.norm(points - centre, axis=1)))


def map_video_writer(path: Path, shape: tuple[int, int], stamps: np.ndarray | None,
                     opts: SlamOptions) -> MapVideo | None:
    """The map video's writer for frames of `shape` (H, W) at the stream's frame rate (10 fps
    without time stamps), or None when switched off or PyAV is missing (logged)."""
    if not opts.map_video:
        return None
    if not has_pyav():
        logger.warning("map video skipped: MP4 videos need PyAV")
        return None
    fps = 10.0 if stamps is None or len(stamps) < 2 else 1 / float(np.median(np.diff(stamps)))
    return MapVideo(path, (shape[1], shape[0]), fps)
