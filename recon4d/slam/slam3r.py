"""SLAM3R's dense reconstruction as a true stream: frames are pushed one at a time and each
frame comes out registered in the world frame, with a camera, as soon as its I2P window is
complete (algorithms-spec §5 with §8.3; docs/slam.md).

Order of work: the automatic keyframe stride (on the first `stride_probe` frames), the initial
window (world = its best reference keyframe's camera), each frame's local pointmap by an I2P
window of keyframe-stride neighbours, pre-registration of the frames inside the initial window,
then rounds of `register_batch` frames: scene frames retrieved from the buffer by the
correlation head, one L2W call, the buffer update. I2P windows of one round run as one batch.

Memory per frame is bounded: a frame's code (encoder tokens), image and pointmaps are kept only
while a window, the registration or the buffer still needs them; what stays per emitted frame
is its `Slam3rFrame` (camera, mean confidences, at most `points_per_frame` sampled points).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from recon4d.errors import InputError
from recon4d.inference.model_images import img_to_uint8
from recon4d.models.slam3r.retrieval import select_scene_frames
from recon4d.options.slam import Slam3rOptions
from recon4d.slam.slam3r_backend import Slam3rBackend
from recon4d.slam.slam3r_camera import FrameCamera, fit_camera
from recon4d.slam.slam3r_fusion import PointFusion, to_world
from recon4d.slam.slam3r_rules import (
    SceneBuffer,
    initial_window_size,
    normalise_points,
    probe_strides,
    probe_windows,
    register_batch,
    unit_conf,
    window_ids,
)

FAILED_CONF = 10.0  # frames whose mean registration confidence is below this are reported


@dataclass
class Slam3rFrame:
    """One registered frame: its camera, mean L2W and I2P confidences, sampled world points
    (K x 3 float32, L2W confidence above the threshold) with their colours (K x 3 uint8) and
    L2W confidences (K,)."""

    index: int
    camera: FrameCamera
    conf: float
    local_conf: float
    points: np.ndarray
    colors: np.ndarray
    point_conf: np.ndarray


@dataclass
class _State:
    """What the stream holds of a frame in flight (fields dropped as soon as unused)."""

    code: Any
    rgb: torch.Tensor | None  # H x W x 3 uint8, until emitted
    local_raw: torch.Tensor | None = None  # I2P points in the frame's camera, as predicted
    local: torch.Tensor | None = None  # normalised, low-confidence points zeroed (L2W input)
    local_conf: torch.Tensor | None = None
    world: torch.Tensor | None = None
    world_conf: torch.Tensor | None = None
    score: dict[str, float] = field(default_factory=dict)  # mean "local" / "world" confidence
    fusion: PointFusion = field(default_factory=PointFusion)
    # this frame's window predictions of later frames: (frame, points here, confidence)
    support: list[tuple[int, torch.Tensor, torch.Tensor]] = field(default_factory=list)


class Slam3rStream:
    """`push(frame)` frames (view dicts with `img` 1 x 3 x H x W in [-1, 1]) one at a time, then
    `finish()`; both return the frames registered by that call, in stream order."""

    def __init__(self, backend: Slam3rBackend, options: Slam3rOptions | None = None) -> None:
        self.backend = backend
        self.opts = Slam3rOptions() if options is None else options
        self.stride: int | None = self.opts.keyframe_stride or None
        self.frames: dict[int, _State] = {}
        self.count = 0
        self.shape: tuple[int, int] | None = None
        self.buffer: SceneBuffer | None = None
        self.keyframes: list[int] = []  # the initial window's keyframes
        self.next_local = 0  # frames before this have their local pointmap
        self.next_register = 0  # frames before this are registered and emitted
        self.final = False
        self.point_rng = np.random.default_rng([self.opts.seed, 1])

    # ------------------------------------------------------------------ public

    def push(self, frame: dict) -> list[Slam3rFrame]:
        """Add the next frame; returns the frames it completes."""
        if self.final:
            raise InputError("SLAM3R stream: push() after finish()")
        img = frame["img"]
        label = frame.get("label", frame.get("instance", self.count))
        shape = tuple(img.shape[-2:])
        if img.dim() != 4 or img.shape[:2] != (1, 3):
            raise InputError(f"SLAM3R frame {label}: img must be 1 x 3 x H x W, "
                             f"got {tuple(img.shape)}")
        if self.shape is None:
            self.shape = shape
        elif shape != self.shape:
            raise InputError(f"SLAM3R frame {label}: {shape[1]}x{shape[0]} pixels, but the "
                             f"stream's frames are {self.shape[1]}x{self.shape[0]}; every frame "
                             f"must have the same size")
        rgb = torch.from_numpy(img_to_uint8(img[0]))
        self.frames[self.count] = _State(self.backend.encode(frame), rgb)
        self.count += 1
        return self._advance()

    def finish(self) -> list[Slam3rFrame]:
        """End of the stream: registers every remaining frame (windows truncated at the end)."""
        if self.final:
            return []
        stride = self.stride or 1  # an automatic stride keeps count // stride >= 6
        if self.buffer is None and self.count // stride < 2:
            raise InputError(f"SLAM3R stream of {self.count} frames is shorter than the initial "
                             f"window: it needs at least 2 keyframes, {2 * stride} frames at "
                             f"keyframe stride {stride}")
        self.final = True
        return self._advance()

    # ------------------------------------------------------------------ driver

    def _advance(self) -> list[Slam3rFrame]:
        """Do every step the frames so far allow."""
        if self.stride is None:
            if self.count < self.opts.stride_probe and not self.final:
                return []
            self.stride = self._choose_stride()
        out: list[Slam3rFrame] = []
        if self.buffer is None:
            winsize = self.opts.initial_winsize
            if self.count <= (winsize - 1) * self.stride and not self.final:
                return out
            if self.final:
                winsize = initial_window_size(self.count, self.stride, winsize)
            self._initialise(winsize)
        if self.next_register == 0:
            if not self._ready(self.keyframes[-1]):
                return out
            out += self._pre_register(self.keyframes)
        size = register_batch(self.stride, self.opts.max_num_register)
        while self.next_register < self.count:
            batch = list(range(self.next_register, min(self.next_register + size, self.count)))
            if not self._ready(batch[-1]) or (len(batch) < size and not self.final):
                break
            out += self._register(batch)
        self._prune()
        return out

    def _ready(self, frame: int) -> bool:
        """Whether frame's I2P window is complete (all its later neighbours have arrived)."""
        return self.final or frame + self.opts.win_r * self.stride < self.count

    def _choose_stride(self) -> int:
        """The keyframe stride with the highest mean I2P confidence over trial windows."""
        rng = np.random.default_rng(self.opts.seed)
        best, best_conf = 1, -np.inf
        for stride in probe_strides(self.count, self.opts.max_stride):
            windows = probe_windows(self.count, stride, rng)
            _, conf = self.backend.i2p([[self.frames[i].code for i in w] for w in windows])
            if float(conf.mean()) > best_conf:
                best, best_conf = stride, float(conf.mean())
        return best

    def _initialise(self, winsize: int) -> None:
        """World frame and buffer from the first `winsize` keyframes (shrinking down to 3 while
        the best reference's mean confidence is below `init_conf`)."""
        while True:
            keyframes = [k * self.stride for k in range(winsize)]
            codes = [self.frames[i].code for i in keyframes]
            best = None
            for ref in range(winsize):
                points, conf = self.backend.i2p([codes], ref)
                if best is None or float(conf.mean()) > best[0]:
                    best = (float(conf.mean()), points[:, 0], conf[:, 0])
            if winsize > 3 and best[0] < self.opts.init_conf:
                winsize -= 1
                continue
            break
        _, points, conf = best
        valid = conf > self.opts.conf_thres_i2p
        for i, pts, c in zip(keyframes, normalise_points(list(points), list(valid)), conf,
                             strict=True):
            self.frames[i].world, self.frames[i].world_conf = pts, c
        self.keyframes = keyframes
        self.buffer = SceneBuffer(keyframes, self.stride, self.opts.buffer_size,
                                  self.opts.buffer_strategy, self.opts.update_buffer_intv,
                                  np.random.default_rng([self.opts.seed, 2]))

    def _pre_register(self, keyframes: list[int]) -> list[Slam3rFrame]:
        """Register the frames between the initial keyframes against all of them, rescale the
        keyframes' (I2P) confidences to the L2W scale, and emit the head of the stream."""
        head = list(range(keyframes[-1] + 1))
        self._ensure_local(head)
        between = [i for i in head if i not in keyframes]
        step = self.opts.max_num_register
        for start in range(0, len(between), step):
            self._l2w(keyframes, between[start:start + step])
        if between:
            best_between = max(self.frames[i].world_conf.mean() for i in between)
            best_key = max(self.frames[i].world_conf.mean() for i in keyframes)
            for i in keyframes:
                self.frames[i].world_conf = self.frames[i].world_conf * (best_between / best_key)
        self.next_register = len(head)
        return [self._emit(i) for i in head]

    def _register(self, batch: list[int]) -> list[Slam3rFrame]:
        """One registration round: retrieval, L2W, emission, buffer update."""
        self._ensure_local(batch)
        candidates = list(self.buffer.ids)
        scene = candidates
        if len(candidates) > self.opts.num_scene_frame:
            scores = self.backend.corr([self.frames[i].code for i in batch[::2]],
                                       [self.frames[i].code for i in candidates])
            _, best = select_scene_frames(scores, self.opts.num_scene_frame)
            scene = [candidates[int(k)] for k in best]
        self._l2w(scene, batch)
        self.next_register = batch[-1] + 1
        out = [self._emit(i) for i in batch]

        def score(i: int) -> float:
            s = self.frames[i].score
            return unit_conf(s["world"]) * unit_conf(s["local"])

        self.buffer.update(self.next_register, score)
        return out

    # ------------------------------------------------------------------ network steps

    def _ensure_local(self, frames: list[int]) -> None:
        """Local pointmaps of `frames` that lack one; windows of equal length share a call."""
        todo = [i for i in frames if self.frames[i].local is None]
        groups: dict[int, list[tuple[int, list[int]]]] = {}
        for i in todo:
            ids = window_ids(i, self.stride, self.opts.win_r, self.count)
            groups.setdefault(len(ids), []).append((i, ids))
        for group in groups.values():
            points, conf = self.backend.i2p(
                [[self.frames[j].code for j in ids] for _, ids in group], 0)
            for b, (i, ids) in enumerate(group):
                state = self.frames[i]
                if self.opts.fuse:
                    state.support = [(j, points[k, b], conf[k, b])
                                     for k, j in enumerate(ids) if j > i]
                state.local_raw, state.local_conf = points[0, b], conf[0, b]
                valid = state.local_conf > self.opts.conf_thres_i2p
                state.local = normalise_points([state.local_raw], [valid])[0]
                state.score["local"] = float(state.local_conf.mean())
        if todo:
            self.next_local = max(self.next_local, max(todo) + 1)

    def _l2w(self, scene: list[int], sources: list[int]) -> None:
        """Register `sources` (with local pointmaps) against the `scene` frames' world points."""
        world, conf = self.backend.l2w(
            [self.frames[i].code for i in scene],
            torch.stack([self.frames[i].world for i in scene]),
            [self.frames[i].code for i in sources],
            torch.stack([self.frames[i].local for i in sources]))
        for i, pts, c in zip(sources, world, conf, strict=True):
            self.frames[i].world, self.frames[i].world_conf = pts, c

    def _emit(self, i: int) -> Slam3rFrame:
        """The finished frame i: camera, confidences and sampled confident points."""
        state = self.frames[i]
        state.score["world"] = float(state.world_conf.mean())
        has_world = state.world.norm(dim=-1) > 0
        weights = ((state.world_conf - 1) * has_world
                   * (state.local_conf > self.opts.conf_thres_i2p))
        camera = fit_camera(state.local_raw, state.world, weights)
        if self.opts.fuse:
            self._fuse(state, camera, has_world)
        keep = torch.nonzero(((state.world_conf > self.opts.conf_thres_l2w) & has_world)
                             .reshape(-1).cpu())[:, 0].numpy()
        if len(keep) > self.opts.points_per_frame:
            keep = np.sort(self.point_rng.choice(keep, self.opts.points_per_frame,
                                                 replace=False))
        points = state.world.reshape(-1, 3).float().cpu().numpy()[keep]
        colors = state.rgb.reshape(-1, 3).numpy()[keep]
        point_conf = state.world_conf.reshape(-1).float().cpu().numpy()[keep]
        state.rgb = state.local_raw = state.local = state.local_conf = None
        return Slam3rFrame(i, camera, state.score["world"], state.score["local"], points, colors,
                           point_conf)

    def _fuse(self, state: _State, camera: FrameCamera, has_world: torch.Tensor) -> None:
        """Replace the frame's world points by the mean of its estimates (slam3r_fusion) and
        hand its window's predictions of later frames to them, now that its camera is known."""
        thres = self.opts.conf_thres_i2p
        state.fusion.add(state.world, (state.world_conf - 1) * has_world)
        state.fusion.add(to_world(camera, state.local_raw),
                         (state.local_conf - 1) * (state.local_conf > thres))
        state.world = torch.where(has_world[..., None], state.fusion.mean(state.world),
                                  state.world)
        for j, points, conf in state.support:
            self.frames[j].fusion.add(to_world(camera, points), (conf - 1) * (conf > thres))
        state.fusion, state.support = PointFusion(), []

    def _prune(self) -> None:
        """Drop what no window, registration or buffer update can need any more."""
        if self.buffer is None or self.next_register == 0:
            return
        in_buffer = set(self.buffer.ids)
        keep_codes_from = min(self.buffer.milestone,
                              self.next_local - self.opts.win_r * self.stride)
        for i in [i for i in self.frames if i < self.next_register and i not in in_buffer]:
            state = self.frames[i]
            if i < self.buffer.milestone:
                state.world = state.world_conf = None
            if i < keep_codes_from:
                state.code = None
            if state.code is None and state.world is None:
                del self.frames[i]


@dataclass
class Slam3rResult:
    """A whole stream's output: cameras (N x 4 x 4 camera-to-world), focals (N,), mean L2W
    and I2P confidences (N,), the fused cloud (P x 3) with colours and confidences, the stride
    and the final buffer."""

    poses_c2w: np.ndarray
    focals: np.ndarray
    conf: np.ndarray
    local_conf: np.ndarray
    points: np.ndarray
    colors: np.ndarray
    point_conf: np.ndarray
    keyframe_stride: int
    buffer_ids: list[int]

    @property
    def failed(self) -> list[int]:
        """Frames whose mean registration confidence is below 10 (the reference's failures)."""
        return [int(i) for i in np.flatnonzero(self.conf < FAILED_CONF)]


def run_slam3r(backend: Slam3rBackend, frames: Iterable[dict],
               options: Slam3rOptions | None = None,
               on_frame: Callable[[Slam3rFrame], None] | None = None) -> Slam3rResult:
    """Stream `frames` through `Slam3rStream` and collect the result; `on_frame` sees each
    registered frame as it comes out (e.g. for progress)."""
    stream = Slam3rStream(backend, options)
    done: list[Slam3rFrame] = []

    def take(new: list[Slam3rFrame]) -> None:
        for frame in new:
            done.append(frame)
            if on_frame is not None:
                on_frame(frame)

    for frame in frames:
        take(stream.push(frame))
    take(stream.finish())
    return Slam3rResult(
        poses_c2w=np.stack([f.camera.pose_c2w for f in done]),
        focals=np.array([f.camera.focal for f in done]),
        conf=np.array([f.conf for f in done]),
        local_conf=np.array([f.local_conf for f in done]),
        points=np.concatenate([f.points for f in done]),
        colors=np.concatenate([f.colors for f in done]),
        point_conf=np.concatenate([f.point_conf for f in done]),
        keyframe_stride=stream.stride, buffer_ids=list(stream.buffer.ids))
