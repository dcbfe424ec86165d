"""Headless MP4 of a map growing frame by frame beside the input, for streaming runs (SLAM).

Video frame t is the input frame t (left half) beside the map of every point added up to t (right
half), both `size` (W, H). The map is drawn by `render.render_points` (z-buffered splats, no
display) from a virtual camera that follows the trajectory as `camera_path` does, but causally:
the last `HISTORY` poses are smoothed (local linear fit, exact at the newest end), then pulled
back and lifted by fractions of the viewing distance (median depth of recent new points).

Memory is bounded whatever the stream's length: the map is a uniform random sample of at most
`budget` of all the points ever added (reservoir sampling), and frames are encoded as they come.
The file is written in place: wrap in `recon4d.io.atomic` (or an atomic output folder) for an
atomic one.
"""

from __future__ import annotations

import os
import queue
import threading
from collections import deque
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from recon4d.errors import OptionError, OutputError
from recon4d.geometry.cameras import intrinsics_from_fov
from recon4d.viz.camera_path import LIFT, PULL_BACK, SMOOTH_SIGMA, virtual_camera_path
from recon4d.viz.overlay import PYAV_INSTALL, check_fps, has_pyav, write_mp4
from recon4d.viz.render import DEFAULT_POINT_SIZE, check_render_options, render_points

MAP_BUDGET = 1_000_000  # map points kept (and drawn each frame)
HISTORY = 10  # recent poses (and new-point depths) the virtual camera follows
DEFAULT_HFOV = 70.0  # degrees: horizontal field of view of the virtual camera
FALLBACK_DISTANCE = 1.0  # viewing distance before any point lies in front of a camera


class PointReservoir:
    """A uniform random sample of at most `capacity` of all the points ever added, with their
    colours (reservoir sampling, vectorised: the n-th point replaces a random slot j < capacity
    drawn from [0, n), or is dropped when j >= capacity)."""

    def __init__(self, capacity: int, seed: int = 0) -> None:
        self.points = np.empty((capacity, 3), np.float32)
        self.colors = np.empty((capacity, 3), np.uint8)
        self.size = 0  # slots filled
        self.seen = 0  # points ever added
        self.rng = np.random.default_rng(seed)

    def add(self, points: np.ndarray, colors: np.ndarray) -> None:
        """Offer (M, 3) points with (M, 3) uint8 colours."""
        free = min(len(self.points) - self.size, len(points))
        self.points[self.size:self.size + free] = points[:free]
        self.colors[self.size:self.size + free] = colors[:free]
        self.size += free
        counts = self.seen + free + 1 + np.arange(len(points) - free)  # 1-based, of the rest
        slots = self.rng.integers(0, counts)
        taken = slots < len(self.points)
        self.points[slots[taken]] = points[free:][taken]
        self.colors[slots[taken]] = colors[free:][taken]
        self.seen += len(points)


class _Mp4Feed:
    """`overlay.write_mp4` fed one frame at a time: it runs in a thread reading a short queue,
    started by the first frame (no frame, no file). A failed write ends the thread and is
    raised by the next `put()` or `close()`."""

    def __init__(self, path: Path, fps: float) -> None:
        self.path, self.fps = path, fps
        self.queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=2)
        self.thread: threading.Thread | None = None
        self.error: Exception | None = None

    def _frames(self) -> Iterator[np.ndarray]:
        while (frame := self.queue.get()) is not None:
            yield frame

    def _encode(self) -> None:
        try:
            write_mp4(self._frames(), self.path, self.fps)
        except Exception as exc:  # raised in the caller's thread by _send() / close()
            self.error = exc

    def _raise(self) -> None:
        if self.error is not None:
            raise OutputError(f"{self.path}: cannot write the map video: {self.error}") \
                from self.error

    def _send(self, item: np.ndarray | None) -> None:
        """Queue `item`, waiting for room unless the encoder has failed."""
        while True:
            self._raise()
            try:
                self.queue.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def put(self, frame: np.ndarray) -> None:
        """Encode `frame` (H, W, 3) uint8 next."""
        if self.thread is None:
            self.thread = threading.Thread(target=self._encode, name="map-video", daemon=True)
            self.thread.start()
        self._send(frame)

    def close(self) -> bool:
        """Finish the file; False when no frame was given (no file)."""
        thread, self.thread = self.thread, None
        if thread is None:
            return False
        self._send(None)
        thread.join()
        self._raise()
        return True


class MapVideo:
    """Streaming MP4 writer of the map growing beside the input (module doc): `add()` once per
    frame, then `close()` (or use it as a context manager).

    `size` (W, H) is each half's size (the video is 2W x H; input frames of another size are
    resized). The virtual camera has horizontal field of view `hfov` degrees, or `intrinsics`
    (3 x 3, pixel centres at integer coordinates) when given; `sigma` (frames), `pull_back` and
    `lift` (times the viewing distance) shape its path as in `camera_path`.
    """

    def __init__(self, path: str | os.PathLike, size: tuple[int, int], fps: float = 10.0, *,
                 budget: int = MAP_BUDGET, point_size: int = DEFAULT_POINT_SIZE,
                 hfov: float = DEFAULT_HFOV, intrinsics: np.ndarray | None = None,
                 sigma: float = SMOOTH_SIGMA, pull_back: float = PULL_BACK, lift: float = LIFT,
                 seed: int = 0) -> None:
        self.path = Path(path)
        self.size = tuple(size)
        check_render_options(self.size, point_size)
        fps = check_fps(fps)
        if budget < 1 or not 0 < hfov < 180:
            raise OptionError(f"map video: budget must be at least 1 and hfov in (0, 180) "
                              f"degrees, got {budget} and {hfov}")
        if not has_pyav():
            raise OutputError(f"{self.path}: cannot write the map video: MP4 videos need PyAV "
                              f"({PYAV_INSTALL})")
        folder = self.path.parent
        if not folder.is_dir() or not os.access(folder, os.W_OK):
            raise OutputError(f"{self.path}: cannot write the map video: folder {folder} "
                              f"{'is not writable' if folder.is_dir() else 'does not exist'}")
        self.intrinsics = (intrinsics_from_fov(*self.size, hfov) if intrinsics is None
                           else np.asarray(intrinsics, np.float64))
        self.point_size, self.sigma, self.pull_back, self.lift = point_size, sigma, pull_back, lift
        self.map = PointReservoir(budget, seed)
        self.poses: deque[np.ndarray] = deque(maxlen=HISTORY)
        self.depths: deque[float] = deque(maxlen=HISTORY)
        self.frames = 0
        self._feed = _Mp4Feed(self.path, fps)

    def add(self, frame_rgb: np.ndarray, new_points: np.ndarray, new_colors: np.ndarray,
            pose_c2w: np.ndarray) -> np.ndarray:
        """Add one frame: the input image (h, w, 3) uint8, the points it adds to the map (M, 3)
        world coordinates with (M, 3) uint8 colours, and its camera-to-world pose (4, 4).
        Returns the video frame written (H, 2W, 3) uint8."""
        frame_rgb = np.asarray(frame_rgb)
        new_points = np.asarray(new_points, np.float32).reshape(-1, 3)
        new_colors = np.asarray(new_colors, np.uint8).reshape(-1, 3)
        pose_c2w = np.array(pose_c2w, np.float64)
        if frame_rgb.ndim != 3 or frame_rgb.shape[2] != 3 or frame_rgb.dtype != np.uint8:
            raise ValueError(f"frame_rgb must be uint8 (H, W, 3), got {frame_rgb.dtype} "
                             f"{frame_rgb.shape}")
        if len(new_points) != len(new_colors) or pose_c2w.shape != (4, 4):
            raise ValueError(f"need as many colours as points and a 4 x 4 pose, got "
                             f"{len(new_points)} points, {len(new_colors)} colours, pose "
                             f"{pose_c2w.shape}")
        finite = np.isfinite(new_points).all(axis=1)
        self.map.add(new_points[finite], new_colors[finite])
        self._follow(pose_c2w, new_points[finite])
        image = np.concatenate([self._input_panel(frame_rgb), self._map_panel()], axis=1)
        self._feed.put(image)
        self.frames += 1
        return image

    def close(self) -> bool:
        """Finish the MP4; False (and no file) when no frame was added. OutputError when the
        file could not be written."""
        return self._feed.close()

    def __enter__(self) -> MapVideo:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _follow(self, pose_c2w: np.ndarray, new_points: np.ndarray) -> None:
        """Record the pose and the median depth of the new points in front of it (a frame
        without a finite pose leaves the virtual camera where it was)."""
        if not np.isfinite(pose_c2w).all():
            return
        self.poses.append(pose_c2w)
        depth = (new_points - pose_c2w[:3, 3]) @ pose_c2w[:3, 2]
        if (depth > 0).any():
            self.depths.append(float(np.median(depth[depth > 0])))

    def _map_panel(self) -> np.ndarray:
        """The map so far from the virtual camera behind the newest (smoothed) pose."""
        distance = float(np.median(self.depths)) if self.depths else FALLBACK_DISTANCE
        poses = np.stack(self.poses) if self.poses else np.eye(4)[None]
        camera = virtual_camera_path(poses, distance, self.sigma, self.pull_back, self.lift)[-1]
        size = self.map.size
        return render_points(torch.from_numpy(self.map.points[:size]),
                             torch.from_numpy(self.map.colors[:size]), camera, self.intrinsics,
                             self.size, self.point_size)

    def _input_panel(self, frame_rgb: np.ndarray) -> np.ndarray:
        """The input frame at `size` (bilinear resize when it differs)."""
        if frame_rgb.shape[1::-1] == self.size:
            return frame_rgb
        return np.asarray(Image.fromarray(frame_rgb).resize(self.size, Image.BILINEAR))
