"""A live viewer that a running SLAM session feeds: the map's point clouds, the trajectory so far
and the current camera, served in the browser by viser while frames stream in.

The map is a set of pieces (a keyframe's fused points, or a frame's registered points), each a
point cloud in its own frame with a similarity transform world <- piece. `update` sends only the
pieces whose points or transforms changed, so moving a keyframe after a back-end solve costs one
small message, not its points; the trajectory (one segment per consecutive pair of frames) and
the current camera's frustum are resent whole. It takes arrays, not SLAM objects (the SLAM
driver, `recon4d.pipeline.slam_live`, feeds it), is safe to call from the streaming thread while
the server answers browsers, and needs the optional package viser (extra `viewer`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np

from recon4d.viz.camera_glyphs import DEFAULT_ASPECT, DEFAULT_FOV, orientations_wxyz, scene_scale
from recon4d.viz.point_cloud import PointCloud
from recon4d.viz.viewer import CURRENT_COLOUR, FRUSTUM_SIZE, LINE_PIXELS, POINT_SIZE, load_viser


def similarity_parts(transform: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
    """(scale, rotation wxyz (4,), translation (3,)) of a 4 x 4 similarity s R | t."""
    transform = np.asarray(transform, dtype=np.float64)
    scale = float(np.cbrt(np.linalg.det(transform[:3, :3])))
    rotation = np.eye(4)
    rotation[:3, :3] = transform[:3, :3] / scale
    return scale, orientations_wxyz(rotation[None])[0], transform[:3, 3].copy()


class LiveMapViewer:
    """A viser server showing a map that grows (module doc); `url` is its address.

    State, readable by scripts and tests: `poses` (N, 4, 4) camera-to-world of every frame so
    far, `clouds` (piece id -> PointCloud in the piece's frame), `transforms` (piece id -> 4 x 4
    world <- piece) and `updates` (how many `update` calls reached the server).
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int = 8080) -> None:
        viser = load_viser()
        self.server = viser.ViserServer(host=host, port=port, label="recon4d live",
                                        verbose=False)
        self.poses = np.zeros((0, 4, 4))
        self.clouds: dict[int, PointCloud] = {}
        self.transforms: dict[int, np.ndarray] = {}
        self.updates = 0
        self._nodes: dict[int, Any] = {}
        self._point_size: float | None = None  # set from the scene's size at the first points
        self._lock = threading.Lock()
        self._stopped = False
        try:
            scene = self.server.scene
            self.trail = scene.add_line_segments(
                "/trajectory", np.zeros((0, 2, 3), np.float32), np.zeros((0, 2, 3), np.uint8),
                thickness=LINE_PIXELS, thickness_units="screen")
            self.camera = scene.add_camera_frustum(
                "/current", fov=float(DEFAULT_FOV), aspect=DEFAULT_ASPECT, scale=FRUSTUM_SIZE,
                thickness=LINE_PIXELS, thickness_units="screen", color=CURRENT_COLOUR,
                visible=False)
            self.status = self.server.gui.add_markdown("waiting for the first frame")
        except BaseException:
            self.server.stop()
            raise

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        return f"http://{self.server.get_host()}:{self.server.get_port()}"

    def update(self, poses_c2w: np.ndarray, clouds: Mapping[int, PointCloud] | None = None,
               transforms: Mapping[int, np.ndarray] | None = None) -> None:
        """Show the trajectory `poses_c2w` (N, 4, 4; the last one is the current camera) and the
        map pieces that changed: `clouds` new or refilled pieces (in their own frame), and
        `transforms` new or moved pieces (a new piece without one sits at the identity)."""
        clouds, transforms = dict(clouds or {}), dict(transforms or {})
        poses = np.asarray(poses_c2w, dtype=np.float64).reshape(-1, 4, 4)
        with self._lock:
            if self._stopped:
                return
            if self._point_size is None and clouds:
                self._start_view(poses, clouds)
            with self.server.atomic():
                for key, cloud in clouds.items():
                    self._set_points(key, cloud)
                for key, transform in transforms.items():
                    self._place(key, transform)
                self._set_trajectory(poses)
            self.poses = poses
            self.updates += 1

    def map_cloud(self) -> PointCloud:
        """Every piece's points in world coordinates, pieces in id order (float64 points)."""
        with self._lock:
            pieces = [(self.clouds[key], self.transforms.get(key, np.eye(4)))
                      for key in sorted(self.clouds)]
        parts = []
        for cloud, transform in pieces:
            world = cloud.points.astype(np.float64) @ transform[:3, :3].T + transform[:3, 3]
            parts.append(PointCloud(world, cloud.colors, cloud.confidence))
        if not parts:
            return PointCloud.empty()
        return PointCloud(np.concatenate([p.points for p in parts]),
                          np.concatenate([p.colors for p in parts]),
                          None if any(p.confidence is None for p in parts)
                          else np.concatenate([p.confidence for p in parts]))

    def stop(self) -> None:
        """Shut the server down (idempotent); the state stays readable, later updates are
        ignored."""
        with self._lock:
            if not self._stopped:
                self._stopped = True
                self.server.stop()

    def __enter__(self) -> LiveMapViewer:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _start_view(self, poses: np.ndarray, clouds: dict[int, PointCloud]) -> None:
        """Point size, frustum size and the browser's opening camera (behind the first camera,
        upright as it was) from the size of the first points."""
        points = np.concatenate([c.points for c in clouds.values()])
        scale = scene_scale(points, poses[:, :3, 3])
        self._point_size = POINT_SIZE * scale
        self.camera.scale = FRUSTUM_SIZE * scale
        pose = poses[0]
        self.server.scene.set_up_direction(-pose[:3, 1])
        initial = self.server.initial_camera
        initial.position = pose[:3, 3] - scale * pose[:3, 2]
        initial.look_at = pose[:3, 3] + scale * pose[:3, 2]
        initial.up = -pose[:3, 1]

    def _set_points(self, key: int, cloud: PointCloud) -> None:
        points = np.asarray(cloud.points, np.float32)
        self.clouds[key] = cloud
        node = self._nodes.get(key)
        if node is None:
            self._nodes[key] = self.server.scene.add_point_cloud(
                f"/map/{key:06d}", points, cloud.colors, point_size=self._point_size,
                precision="float32")
            self._place(key, self.transforms.get(key, np.eye(4)))
        else:
            node.points, node.colors = points, cloud.colors

    def _place(self, key: int, transform: np.ndarray) -> None:
        transform = np.asarray(transform, dtype=np.float64)
        self.transforms[key] = transform
        node = self._nodes.get(key)
        if node is not None:
            node.scale, node.wxyz, node.position = similarity_parts(transform)

    def _set_trajectory(self, poses: np.ndarray) -> None:
        centres = poses[:, :3, 3].astype(np.float32)
        segments = np.stack([centres[:-1], centres[1:]], axis=1)
        self.trail.points = segments
        self.trail.colors = np.full(segments.shape, CURRENT_COLOUR, np.uint8)
        if len(poses):
            self.camera.wxyz = orientations_wxyz(poses[-1:])[0]
            self.camera.position = poses[-1, :3, 3]
            self.camera.visible = True
            self.status.content = f"frame {len(poses) - 1}, {len(self.clouds)} map pieces"
