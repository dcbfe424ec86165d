"""The `slam` job: frames (images, a video or a synthetic scene's oracle) streamed through SLAM3R
(`--method slam3r`, here) or MASt3R-SLAM (`--method mast3r`, `recon4d.pipeline.slam_mast3r`),
then the trajectory, fused cloud (PLY, GLB), per-frame cameras and scene.json written into an
atomic output folder. Frames are decoded and encoded one at a time.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from recon4d.errors import OptionError
from recon4d.inference.model_images import img_to_uint8
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.layout import MAP_VIDEO_FILE, SLAM_FRAMES_FILE, frame_name
from recon4d.io.scene_json import check_output_folder, write_scene_json
from recon4d.io.writers.points import Cloud
from recon4d.options.slam import SlamOptions
from recon4d.pipeline.slam_files import (
    centred_intrinsics,
    frame_stamps,
    frames_from_input,
    map_video_writer,
    write_cameras_and_cloud,
    write_table,
)
from recon4d.pipeline.slam_live import Slam3rMapFeed, start_live_view
from recon4d.pipeline.slam_mast3r import Mast3rSlamRun, slam_mast3r
from recon4d.slam.slam3r import Slam3rFrame, Slam3rResult, run_slam3r
from recon4d.slam.slam3r_backend import load_backend
from recon4d.synthetic import load_scene
from recon4d.synthetic.slam3r_oracle import Slam3rOracle
from recon4d.viz.live_viewer import LiveMapViewer


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


def slam(out_dir: str | os.PathLike, input: str | None = None, *, oracle: str | None = None,
         options: SlamOptions | None = None, progress: bool = True,
         viewer: LiveMapViewer | None = None) -> SlamRun | Mast3rSlamRun:
    """Stream INPUT (or the oracle of a `recon4d synth` folder) through the method of `options`
    into `out_dir`.

    The session is shown live in `viewer` when given (the caller stops it), else in a viewer
    started here and stopped at the end when `options.live.view` asks for one. The output folder,
    the options and the checkpoints are checked before any frame is read.
    """
    opts = SlamOptions() if options is None else options
    if (input is None) == (oracle is None):
        raise OptionError("give exactly one of INPUT (images folder or video) or --oracle")
    check_output_folder(out_dir, "slam")
    started = None if viewer is not None else start_live_view(opts.live)
    try:
        if opts.method == "mast3r":
            return slam_mast3r(out_dir, input, oracle, opts, progress, viewer or started)
        return _slam3r(out_dir, input, oracle, opts, progress, viewer or started)
    finally:
        if started is not None:
            started.stop()


def _slam3r(out_dir: str | os.PathLike, input: str | None, oracle: str | None, opts: SlamOptions,
            progress: bool, viewer: LiveMapViewer | None) -> SlamRun:
    """The SLAM3R stream and its files (each registered frame fed to `viewer` when given)."""
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
        given = frames_from_input(input, opts)
        frames, names, stamps = given.views, given.names, given.stamps
        shape = (opts.model_size, opts.model_size)  # SLAM3R's loader crops a centred square
        described = {"input": given.input, "i2p": opts.i2p, "l2w": opts.l2w, "device": device}
    feed = None if viewer is None else Slam3rMapFeed(viewer, opts.live.view_rate)
    out_dir = Path(out_dir)
    with atomic_output_dir(out_dir) as staging:
        video = map_video_writer(staging / MAP_VIDEO_FILE, shape, stamps, opts)
        images: dict[int, np.ndarray] = {}  # frames pushed but not yet registered

        def pushed() -> Iterator[dict]:
            for index, frame in enumerate(frames):
                if video is not None:
                    images[index] = img_to_uint8(frame["img"][0])
                yield frame

        with tqdm(total=len(names), desc="slam3r", unit="frame", disable=not progress) as bar:
            def on_frame(frame: Slam3rFrame) -> None:
                bar.update()
                if video is not None:
                    video.add(images.pop(frame.index), frame.points, frame.colors,
                              frame.camera.pose_c2w)
                if feed is not None:
                    feed.frame(frame)

            try:
                result = run_slam3r(backend, pushed(), opts.slam3r, on_frame=on_frame)
            finally:
                if video is not None:
                    video.close()
        if feed is not None:
            feed.flush()
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
    cloud = Cloud(result.points.astype(np.float32), result.colors,
                  result.point_conf.astype(np.float32))
    write_cameras_and_cloud(out, result.poses_c2w, frame_stamps(stamps, n),
                            centred_intrinsics(result.focals, shape), names, shape, cloud)
    failed = set(result.failed)
    rows = [[i, names[i], f"{result.conf[i]:.4f}", f"{result.local_conf[i]:.4f}",
             f"{result.focals[i]:.3f}", int(i in failed)] for i in range(n)]
    write_table(out / SLAM_FRAMES_FILE, ["frame", "name", "conf", "local_conf", "focal", "failed"],
                rows)
