"""The `slam` job: frames (images, a video or a synthetic scene's oracle) streamed through SLAM3R,
then the trajectory, fused cloud (PLY, GLB), per-frame cameras and confidences and scene.json
written into an atomic output folder. Frames are decoded and encoded one at a time.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from recon4d.errors import OptionError
from recon4d.io import collect_frames
from recon4d.io.atomic import atomic_output_dir, atomic_write_text
from recon4d.io.images import load_images
from recon4d.io.layout import SLAM_FRAMES_FILE, TRAJECTORY_FILE, frame_name
from recon4d.io.scene_json import check_output_folder, write_scene_json
from recon4d.io.tum import Trajectory, write_tum
from recon4d.io.writers.glb import write_glb
from recon4d.io.writers.intrinsics import write_intrinsics
from recon4d.io.writers.ply import write_ply
from recon4d.io.writers.points import Cloud
from recon4d.options.slam import SlamOptions
from recon4d.scene import Scene
from recon4d.slam.slam3r import Slam3rResult, run_slam3r
from recon4d.slam.slam3r_backend import load_backend
from recon4d.synthetic import load_scene
from recon4d.synthetic.slam3r_oracle import Slam3rOracle


@dataclasses.dataclass
class SlamRun:
    """What `slam` did: the output folder, the stream's result and the frame names."""

    out_dir: Path
    result: Slam3rResult
    names: list[str]

    def summary(self) -> str:
        r = self.result
        return (f"{len(self.names)} frames (keyframe stride {r.keyframe_stride}), "
                f"{len(r.points)} points, {len(r.failed)} low-confidence frames -> "
                f"{self.out_dir}")


def _frames_from_input(input: str, opts: SlamOptions) -> tuple[Iterator[dict], list[str],
                                                                np.ndarray | None, str]:
    """Lazily loaded views of a folder or video, their names, timestamps and description."""
    source = collect_frames(input, fps=opts.fps, num_frames=opts.num_frames)

    def views() -> Iterator[dict]:
        for k, (frame, name) in enumerate(zip(source.frames, source.names, strict=True)):
            view = load_images([frame], size=opts.size)[0]
            yield dict(view, idx=k, label=name)

    return views(), list(source.names), source.timestamps, source.input


def slam(out_dir: str | os.PathLike, input: str | None = None, *, oracle: str | None = None,
         options: SlamOptions | None = None, progress: bool = True) -> SlamRun:
    """Stream INPUT (or the oracle of a `recon4d synth` folder) through SLAM3R into `out_dir`.

    The output folder, the options and the checkpoints are checked before any frame is read.
    """
    opts = SlamOptions() if options is None else options
    if (input is None) == (oracle is None):
        raise OptionError("give exactly one of INPUT (images folder or video) or --oracle")
    check_output_folder(out_dir, "slam")
    if oracle is not None:
        scene = load_scene(oracle)
        backend = Slam3rOracle(scene)
        views = backend.views()[:opts.num_frames]
        frames, stamps = iter(views), scene.timestamps[:len(views)]
        names = [frame_name(k) for k in range(len(views))]
        shape = scene.shape
        described = {"oracle": str(oracle)}
    else:
        device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
        backend = load_backend(opts.i2p, opts.l2w, device)
        frames, names, stamps, what = _frames_from_input(input, opts)
        shape = (opts.size, opts.size)  # SLAM3R's loader crops a centred square
        described = {"input": what, "i2p": opts.i2p, "l2w": opts.l2w, "device": device}
    with tqdm(total=len(names), desc="slam3r", unit="frame", disable=not progress) as bar:
        result = run_slam3r(backend, frames, opts.slam3r, on_frame=lambda _: bar.update())
    out_dir = Path(out_dir)
    with atomic_output_dir(out_dir) as staging:
        _write(staging, result, names, stamps, shape)
        write_scene_json(staging, "slam", dataclasses.asdict(opts),
                         {"inputs": described, "slam": {
                             "method": opts.method, "keyframe_stride": result.keyframe_stride,
                             "buffer": result.buffer_ids, "failed_frames": result.failed}})
    return SlamRun(out_dir, result, names)


def _write(out: Path, result: Slam3rResult, names: list[str], stamps: np.ndarray | None,
           shape: tuple[int, int]) -> None:
    """Trajectory, intrinsics, PLY, GLB and the per-frame table (no per-frame maps are kept)."""
    n = len(result.poses_c2w)
    stamps = np.arange(n, dtype=np.float64) if stamps is None else np.asarray(stamps)[:n]
    write_tum(out / TRAJECTORY_FILE, Trajectory(stamps, result.poses_c2w))
    cloud = Cloud(result.points.astype(np.float32), result.colors,
                  result.point_conf.astype(np.float32))
    write_ply(cloud, out)
    cameras = _cameras_only(result, names, shape)
    write_intrinsics(cameras, out)
    write_glb(cameras, {"static": cloud}, out, frustum_depth=_frustum_depth(result))
    table = io.StringIO()
    writer = csv.writer(table, lineterminator="\n")
    writer.writerow(["frame", "name", "conf", "local_conf", "focal", "failed"])
    failed = set(result.failed)
    for i in range(n):
        writer.writerow([i, names[i], f"{result.conf[i]:.4f}", f"{result.local_conf[i]:.4f}",
                         f"{result.focals[i]:.3f}", int(i in failed)])
    atomic_write_text(out / SLAM_FRAMES_FILE, table.getvalue())


def _cameras_only(result: Slam3rResult, names: list[str], shape: tuple[int, int]) -> Scene:
    """A Scene holding only the cameras (per-frame maps are zero-size broadcasts), for the
    intrinsics and GLB writers."""
    n, (h, w) = len(result.poses_c2w), shape
    k = np.zeros((n, 3, 3))
    k[:, 0, 0] = k[:, 1, 1] = result.focals
    k[:, 0, 2], k[:, 1, 2], k[:, 2, 2] = w / 2, h / 2, 1.0

    def blank(dtype: type, *tail: int) -> np.ndarray:
        return np.broadcast_to(np.zeros((1, h, w, *tail), dtype), (n, h, w, *tail))

    return Scene(images=blank(np.uint8, 3), depths=blank(np.float32), confs=blank(np.float32),
                 intrinsics=k, poses_c2w=result.poses_c2w, masks=blank(bool),
                 image_names=list(names[:n]))


def _frustum_depth(result: Slam3rResult) -> float:
    """A tenth of the median distance from the cloud to the mean camera centre."""
    if not len(result.points):
        return 1.0
    centre = result.poses_c2w[:, :3, 3].mean(axis=0)
    return 0.1 * float(np.median(np.linalg.norm(result.points - centre, axis=1)))
