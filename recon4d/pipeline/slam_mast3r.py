"""The `slam --method mast3r` job: frames (a folder, a video or a synthetic scene's oracle)
streamed through `recon4d.slam.mast3r`, with a pose per frame, then the same files as the SLAM3R
method plus the keyframe trajectory, keyframe images, per-frame mover masks and an MP4 of the
map growing beside the input, in an atomic output folder.

A stream that fails part-way (a frame of another size) or never tracks still gets its folder
with what was reconstructed before the failure; scene.json records the error, then it is raised.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from recon4d.errors import InputError, OptionError, Recon4dError
from recon4d.inference.model_images import img_to_uint8
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.images import upright_size
from recon4d.io.layout import (
    DYNAMIC_MASK_DIR,
    KEYFRAME_IMAGES_DIR,
    KEYFRAME_TRAJECTORY_FILE,
    MAP_VIDEO_FILE,
    SLAM_FRAMES_FILE,
    frame_file,
    frame_name,
)
from recon4d.io.scene_json import write_scene_json
from recon4d.io.tum import Trajectory, write_tum
from recon4d.io.writers.files import save_png
from recon4d.io.writers.points import Cloud
from recon4d.models import load_model
from recon4d.models.retrieval import load_retrieval
from recon4d.options.slam import SlamOptions
from recon4d.pipeline.cameras import frame_geometry, intrinsics_at_model, read_calibration
from recon4d.pipeline.slam_files import (
    centred_intrinsics,
    frame_stamps,
    frames_from_input,
    map_video_writer,
    write_cameras_and_cloud,
    write_table,
)
from recon4d.pipeline.slam_live import Mast3rMapFeed
from recon4d.slam.mast3r import FramePose, Mast3rSlam, MoverMasks
from recon4d.slam.mast3r_asmk import asmk_modules, check_token_width
from recon4d.slam.mast3r_movers import FlowMovers
from recon4d.slam.mast3r_network import NetworkPairSource, SlamPairSource
from recon4d.synthetic import load_scene
from recon4d.synthetic.mast3r_slam_oracle import Mast3rSlamOracle
from recon4d.viz.live_viewer import LiveMapViewer
from recon4d.viz.map_video import MapVideo

FPS_SMOOTHING = 0.8  # weight of the previous frame rate in the progress bar's running FPS


@dataclasses.dataclass
class Mast3rSlamRun:
    """What `slam --method mast3r` did: the folder, frame names, keyframe frame indices, lost
    frames and the number of cloud points."""

    out_dir: Path
    names: list[str]
    keyframes: list[int]
    lost: list[int]
    points: int

    def summary(self) -> str:
        return (f"{len(self.names)} frames ({len(self.keyframes)} keyframes, {len(self.lost)} "
                f"lost), {self.points} points -> {self.out_dir}")


@dataclasses.dataclass
class _Stream:
    """What the job streams: the pair source, views, names, timestamps, intrinsics in model
    pixels (None: uncalibrated), mover masks and a description for scene.json."""

    source: SlamPairSource
    views: Iterator[dict]
    names: list[str]
    stamps: np.ndarray | None
    intrinsics: np.ndarray | None
    movers: MoverMasks | None
    described: dict


def slam_mast3r(out_dir: str | os.PathLike, input: str | None, oracle: str | None,
                opts: SlamOptions, progress: bool = True,
                viewer: LiveMapViewer | None = None) -> Mast3rSlamRun:
    """Stream INPUT (or the oracle of a `recon4d synth` folder) through MASt3R-SLAM into
    `out_dir` (module doc), feeding `viewer` as it goes. Options, calibration and checkpoint are
    checked before any frame."""
    m = opts.mast3r
    if m.movers == "oracle" and oracle is None:
        raise OptionError("--movers oracle takes the synthetic scene's true masks: it needs "
                          "--oracle")
    retriever = None
    if m.retrieval_weights is not None:
        retriever = load_retrieval(m.retrieval_weights)
        asmk_modules()  # the extra is there
    calib = None if m.calib is None else read_calibration(m.calib)
    stream = _oracle_stream(oracle, opts, calib) if oracle else _input_stream(input, opts, calib)
    if retriever is not None:
        check_token_width(retriever, _token_width(stream.source), "the stream's network")
        retriever.head.to(stream.source.device)
    slam = Mast3rSlam(stream.source, m, movers=stream.movers,
                      intrinsics=None if stream.intrinsics is None
                      else torch.from_numpy(stream.intrinsics), retriever=retriever)
    out_dir = Path(out_dir)
    with slam, atomic_output_dir(out_dir) as staging:  # closing slam drops its spill files
        feed = None if viewer is None else Mast3rMapFeed(viewer, opts.live.view_rate)
        error = _run(slam, stream, staging, opts, progress, feed)
        if len(slam.relative) == 0:
            raise error  # nothing reconstructed: no folder
        slam.finish()  # the frames since the last keyframe refined as well (refine_frames)
        points = _write(staging, slam, stream)
        write_scene_json(staging, "slam", dataclasses.asdict(opts), {
            "inputs": stream.described,
            "slam": {"method": "mast3r", "frames_done": len(slam.relative),
                     "keyframes": [k.index for k in slam.keyframes],
                     "lost_frames": slam.lost_frames,
                     "calibrated": stream.intrinsics is not None,
                     "error": None if error is None else str(error)}})
    if error is not None:
        raise error
    return Mast3rSlamRun(out_dir, stream.names[:len(slam.relative)],
                         [k.index for k in slam.keyframes], slam.lost_frames, points)


def _run(slam: Mast3rSlam, stream: _Stream, out: Path, opts: SlamOptions, progress: bool,
         feed: Mast3rMapFeed | None) -> Recon4dError | None:
    """Push every frame, writing masks, keyframe images and the map video and feeding the live
    view as they come; the error that stopped the stream (or that it never tracked), else
    None."""
    video, rate = None, None
    try:
        with tqdm(total=len(stream.names), desc="mast3r-slam", unit="frame",
                  disable=not progress) as bar:
            for view in stream.views:
                frame = slam.push(view)
                image = img_to_uint8(view["img"][0])
                if video is None and frame.index == 0:
                    video = map_video_writer(out / MAP_VIDEO_FILE, image.shape[:2],
                                             stream.stamps, opts)
                _write_frame(out, slam, frame, image, video)
                if feed is not None:
                    feed.frame(slam)
                current = 1 / max(sum(frame.seconds.values()), 1e-9)
                rate = current if rate is None else (FPS_SMOOTHING * rate
                                                     + (1 - FPS_SMOOTHING) * current)
                bar.set_postfix(fps=f"{rate:.1f}", keyframes=len(slam.keyframes))
                bar.update()
    except Recon4dError as exc:
        return exc
    finally:
        if video is not None:
            video.close()
        if feed is not None:
            feed.frame(slam, last=True)
    if not slam.tracked_any():
        what = stream.described.get("input") or stream.described.get("oracle")
        return InputError(f"{what}: no frame after the first could be tracked or relocalised "
                          "(too few valid matches): the frames do not overlap or the network's "
                          "predictions are unusable")
    return None


def _write_frame(out: Path, slam: Mast3rSlam, frame: FramePose, image: np.ndarray,
                 video: MapVideo | None) -> None:
    """The frame's mover mask, its keyframe image when it became one, its map-video frame
    (the points of a new keyframe join the map)."""
    if frame.movers is not None:
        mask = np.where(frame.movers, 255, 0).astype(np.uint8)
        save_png(out / frame_file(DYNAMIC_MASK_DIR, frame.index, ".png"), Image.fromarray(mask))
    if frame.is_keyframe:
        save_png(out / frame_file(KEYFRAME_IMAGES_DIR, frame.index, ".png"),
                 Image.fromarray(image))
    if video is not None:
        points, colors = np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
        if frame.is_keyframe:
            keyframe = slam.keyframes[frame.keyframe]
            points, colors, _ = slam.keyframe_cloud(keyframe, slam.options.cloud_conf)
        video.add(image, points, colors, frame.pose_c2w)


def _write(out: Path, slam: Mast3rSlam, stream: _Stream) -> int:
    """Per-frame and keyframe trajectories, cameras, cloud and the per-frame table; returns the
    number of cloud points."""
    n = len(slam.relative)
    names, stamps = stream.names[:n], frame_stamps(stream.stamps, n)
    poses = slam.frame_poses()
    shape = slam.shape
    intrinsics = (np.repeat(stream.intrinsics[None], n, axis=0)
                  if stream.intrinsics is not None
                  else centred_intrinsics(slam.frame_focals(), shape))
    points, colors, conf = slam.cloud()
    write_cameras_and_cloud(out, poses, stamps, intrinsics, names, shape,
                            Cloud(points, colors, conf))
    keyframes = [k.index for k in slam.keyframes]
    write_tum(out / KEYFRAME_TRAJECTORY_FILE, Trajectory(stamps[keyframes],
                                                         slam.keyframe_poses()))
    lost = set(slam.lost_frames)
    rows = [[i, names[i], kf, int(slam.keyframes[kf].index == i), int(i in lost),
             f"{intrinsics[i, 0, 0]:.3f}"] for i, (kf, _) in enumerate(slam.relative)]
    write_table(out / SLAM_FRAMES_FILE, ["frame", "name", "keyframe", "is_keyframe", "lost",
                                         "focal"], rows)
    return len(points)


def _oracle_stream(oracle: str, opts: SlamOptions, calib: np.ndarray | None) -> _Stream:
    """The oracle of a synthetic scene: its frames (at the scene resolution) and true masks."""
    scene = load_scene(oracle)
    source = Mast3rSlamOracle(scene, device=opts.device or "cpu")
    views = source.views()[:opts.num_frames][::opts.mast3r.subsample]
    index = [int(v["idx"]) for v in views]
    height, width = scene.shape
    intrinsics = None
    if calib is not None:
        _check_calibration(calib, (width, height), opts.mast3r.calib)
        intrinsics = calib
    movers = None
    if opts.mast3r.movers == "oracle":
        masks = scene.dynamic_mask

        def movers(view: dict, *_: object) -> torch.Tensor:
            return torch.from_numpy(masks[int(view["idx"])])
    elif opts.mast3r.movers == "flow":
        movers = FlowMovers()
    return _Stream(source, iter(views), [frame_name(i) for i in index],
                   scene.timestamps[index], intrinsics, movers, {"oracle": str(oracle)})


def _input_stream(input: str, opts: SlamOptions, calib: np.ndarray | None) -> _Stream:
    """The frames of a folder or video through the MASt3R network."""
    device = opts.device or ("cuda" if torch.cuda.is_available() else "cpu")
    source = NetworkPairSource(load_model(opts.mast3r.weights, device), device)
    given = frames_from_input(input, opts, opts.mast3r.subsample)
    intrinsics = None
    if calib is not None:
        _check_calibration(calib, upright_size(given.first), opts.mast3r.calib)
        sizes, crops = frame_geometry([given.first], opts.model_size)
        intrinsics = intrinsics_at_model(calib, sizes, crops, 1)[0]
    movers = FlowMovers() if opts.mast3r.movers == "flow" else None
    return _Stream(source, given.views, given.names, given.stamps, intrinsics, movers,
                   {"input": given.input, "weights": opts.mast3r.weights, "device": device})


def _token_width(source: SlamPairSource) -> int:
    """Width of what the retrieval head reads of a frame: the network's encoder tokens, the
    oracle's descriptors."""
    if isinstance(source, Mast3rSlamOracle):
        return source.desc_dim
    return source.model.config.enc_embed_dim


def _check_calibration(k: np.ndarray, size: tuple[int, int], path: str) -> None:
    """Refuse a calibration whose principal point lies outside the middle half of the frames
    (made for another resolution)."""
    width, height = size
    cx, cy = float(k[0, 2]), float(k[1, 2])
    if abs(cx - width / 2) > width / 4 or abs(cy - height / 2) > height / 4:
        raise InputError(f"{path}: principal point ({cx:g}, {cy:g}) does not fit the "
                         f"{width}x{height} frames (expected near ({width / 2:g}, "
                         f"{height / 2:g})); is the calibration for another resolution?")

