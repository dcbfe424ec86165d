"""The 4D viewer: a viser web server that plays a reconstruction frame by frame.

It shows the static cloud, the moving cloud of the current frame, a frustum per camera (the
current one highlighted) and the trail of camera centres up to the current frame. The GUI has a
timeline slider, play/pause, frames per second, static / moving / camera toggles, a confidence
threshold and the point size. It takes arrays, not paths (`recon4d.io.output_folder` reads a
folder; `recon4d view` wires the two), and needs the optional package viser (extra `viewer`).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import numpy as np

from recon4d.errors import InputError, Recon4dError
from recon4d.viz.camera_glyphs import frustum_shapes, orientations_wxyz, scene_scale
from recon4d.viz.point_cloud import PointCloud

CAMERA_COLOUR = (150, 150, 150)
CURRENT_COLOUR = (255, 110, 0)  # the current frame's frustum and the trail
LINE_PIXELS = 2.0
FRUSTUM_SIZE = 0.1  # frustum depth, in units of the scene scale
POINT_SIZE = 0.005  # default point size, in units of the scene scale
DEFAULT_FPS = 10


def load_viser() -> ModuleType:
    """The viser package, or a Recon4dError telling how to install it."""
    try:
        return importlib.import_module("viser")
    except ImportError as exc:
        raise Recon4dError(f"the viewer needs the package 'viser' ({exc}): "
                           "pip install 'recon4d[viewer]'") from None


def confidence_range(clouds: Sequence[PointCloud]) -> tuple[float, float] | None:
    """(lowest, highest) confidence over the clouds that carry one; None when none does."""
    values = [c.confidence for c in clouds if c.confidence is not None and len(c)]
    if not values:
        return None
    return (float(min(v.min() for v in values)), float(max(v.max() for v in values)))


class Viewer:
    """A running viser server showing one reconstruction of N frames.

    `static`: the static cloud; `moving`: one cloud per frame, or none for a static scene;
    `poses_c2w` (N,4,4); `intrinsics` (N,3,3) and `image_size` (width, height) shape the
    frustums (generic ones without). The GUI handles are attributes, so scripts and tests drive
    the viewer as the browser does (`viewer.frame.value = 3`). `stop()` shuts the server down.
    """

    def __init__(self, static: PointCloud, moving: Sequence[PointCloud], poses_c2w: np.ndarray,
                 intrinsics: np.ndarray | None = None,
                 image_size: tuple[int, int] | None = None, *, host: str = "127.0.0.1",
                 port: int = 8080) -> None:
        viser = load_viser()
        self.static, self.moving = static, tuple(moving)
        self.poses = np.asarray(poses_c2w, dtype=np.float64)
        if self.moving and len(self.moving) != len(self.poses):
            raise InputError(f"viewer: {len(self.moving)} moving clouds for "
                             f"{len(self.poses)} cameras")
        centres = self.poses[:, :3, 3]
        self.segments = np.stack([centres[:-1], centres[1:]], axis=1).astype(np.float32)
        self.segment_colours = np.full(self.segments.shape, CURRENT_COLOUR, np.uint8)
        scale = scene_scale(static.points, centres)
        self.server = viser.ViserServer(host=host, port=port, label="recon4d", verbose=False)
        self._lock = threading.RLock()
        self._current = 0
        self._stopped = threading.Event()
        try:
            self._add_scene(intrinsics, image_size, scale)
            self._add_gui(scale)
            self._show_frame()
        except BaseException:
            self.server.stop()
            raise
        self._player = threading.Thread(target=self._play, name="recon4d-viewer-play",
                                        daemon=True)
        self._player.start()

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        return f"http://{self.server.get_host()}:{self.server.get_port()}"

    def stop(self) -> None:
        """Stop playing and shut the server down (idempotent)."""
        if not self._stopped.is_set():
            self._stopped.set()
            self._player.join(timeout=5.0)
            self.server.stop()

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _add_scene(self, intrinsics: np.ndarray | None, image_size: tuple[int, int] | None,
                   scale: float) -> None:
        """Clouds, frustums and trail; the browser opens behind camera 0, upright as it was."""
        scene, pose = self.server.scene, self.poses[0]
        scene.set_up_direction(-pose[:3, 1])
        camera = self.server.initial_camera
        camera.position = pose[:3, 3] - scale * pose[:3, 2]
        camera.look_at = pose[:3, 3] + scale * pose[:3, 2]
        camera.up = -pose[:3, 1]
        size = POINT_SIZE * scale
        self.static_node = scene.add_point_cloud(
            "/static", self.static.points, self.static.colors, point_size=size,
            precision="float32")
        empty = PointCloud.empty()
        self.moving_node = scene.add_point_cloud(
            "/moving", empty.points, empty.colors, point_size=size, precision="float32",
            visible=bool(self.moving))
        self.cameras_node = scene.add_frame("/cameras", show_axes=False)
        fov, aspect = frustum_shapes(intrinsics, image_size, len(self.poses))
        wxyz = orientations_wxyz(self.poses)
        self.frustums = [scene.add_camera_frustum(
            f"/cameras/{i:06d}", fov=float(fov[i]), aspect=float(aspect[i]),
            scale=FRUSTUM_SIZE * scale, thickness=LINE_PIXELS, thickness_units="screen",
            color=CAMERA_COLOUR, wxyz=wxyz[i], position=self.poses[i, :3, 3])
            for i in range(len(self.poses))]
        self.trail = scene.add_line_segments(
            "/cameras/trail", self.segments[:0], self.segment_colours[:0],
            thickness=LINE_PIXELS, thickness_units="screen")

    def _add_gui(self, scale: float) -> None:
        """The controls; each one redraws what it changes."""
        gui, last = self.server.gui, len(self.poses) - 1
        self.frame = gui.add_slider("frame", min=0, max=last, step=1, initial_value=0)
        self.playing = gui.add_checkbox("play", initial_value=False)
        self.fps = gui.add_slider("frames per second", min=1, max=60, step=1,
                                  initial_value=DEFAULT_FPS)
        self.show_static = gui.add_checkbox("static points", initial_value=True)
        self.show_moving = gui.add_checkbox("moving points", initial_value=bool(self.moving),
                                            disabled=not self.moving)
        self.show_cameras = gui.add_checkbox("cameras", initial_value=True)
        span = confidence_range((self.static, *self.moving))
        low, high = span or (0.0, 1.0)
        self.min_confidence = gui.add_slider(
            "min confidence", min=low, max=high, step=(high - low) / 100 or 1.0,
            initial_value=low, disabled=span is None)
        size = POINT_SIZE * scale
        self.point_size = gui.add_slider("point size", min=size / 10, max=size * 10,
                                         step=size / 10, initial_value=size)
        self.frame.on_update(lambda _: self._show_frame())
        self.min_confidence.on_update(lambda _: self._filter())
        self.point_size.on_update(lambda _: self._resize())
        for box, node in ((self.show_static, self.static_node),
                          (self.show_moving, self.moving_node),
                          (self.show_cameras, self.cameras_node)):
            box.on_update(lambda _, box=box, node=node: setattr(node, "visible", box.value))

    def _show_frame(self) -> None:
        """Highlight the current camera, draw the trail up to it and its moving points."""
        index = int(self.frame.value)
        with self._lock, self.server.atomic():
            self.frustums[self._current].color = CAMERA_COLOUR
            self.frustums[index].color = CURRENT_COLOUR
            self._current = index
            self.trail.points = self.segments[:index]
            self.trail.colors = self.segment_colours[:index]
            if self.moving:
                cloud = self.moving[index].above(self.min_confidence.value)
                self.moving_node.points, self.moving_node.colors = cloud.points, cloud.colors

    def _filter(self) -> None:
        """Show only the points at or above the confidence threshold."""
        cloud = self.static.above(self.min_confidence.value)
        with self._lock, self.server.atomic():
            self.static_node.points, self.static_node.colors = cloud.points, cloud.colors
        self._show_frame()

    def _resize(self) -> None:
        """Apply the point size to both clouds."""
        with self._lock, self.server.atomic():
            self.static_node.point_size = self.moving_node.point_size = self.point_size.value

    def _play(self) -> None:
        """While `play` is ticked, advance one frame per 1 / fps seconds, looping at the end."""
        while not self._stopped.wait(1.0 / self.fps.value):
            if self.playing.value:
                self.frame.value = (int(self.frame.value) + 1) % len(self.poses)
