"""Feeding a running SLAM session to the live viewer (`recon4d.viz.live_viewer`) without slowing
the stream: at most `view_rate` updates a second (the last frame always goes), and per update only
what changed since the last one.

MASt3R-SLAM (`Mast3rMapFeed`): a map piece per keyframe, its points in its own camera (static,
confident pixels: the fused cloud's rule) resent when a frame was fused into it, its Sim(3) pose
resent when the back end moved it. SLAM3R (`Slam3rMapFeed`): a piece per registered frame, its
sampled world points, sent once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from recon4d.options.slam import LiveViewOptions
from recon4d.slam.mast3r import Mast3rSlam
from recon4d.slam.slam3r import Slam3rFrame
from recon4d.viz.live_viewer import LiveMapViewer
from recon4d.viz.point_cloud import PointCloud


def start_live_view(options: LiveViewOptions) -> LiveMapViewer | None:
    """The live viewer on 127.0.0.1 when `--view` asks for one (its address printed), else
    None; a missing viser is an error here, before any frame."""
    if not options.view:
        return None
    viewer = LiveMapViewer(host="127.0.0.1", port=options.port)
    print(f"recon4d slam: live view at {viewer.url}", flush=True)
    return viewer


class _Throttle:
    """True at most `rate` times a second."""

    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.period, self.clock = 1.0 / rate, clock
        self.last: float | None = None

    def due(self) -> bool:
        now = self.clock()
        if self.last is not None and now - self.last < self.period:
            return False
        self.last = now
        return True


class Mast3rMapFeed:
    """Feeds the keyframe map and every frame's pose of a `Mast3rSlam` (module doc)."""

    def __init__(self, viewer: LiveMapViewer, rate: float) -> None:
        self.viewer, self.throttle = viewer, _Throttle(rate)
        self.sent_counts: dict[int, int] = {}  # keyframe -> fused predictions when last sent
        self.sent_poses: dict[int, torch.Tensor] = {}  # keyframe -> Sim(3) pose when last sent

    def frame(self, slam: Mast3rSlam, last: bool = False) -> None:
        """After a frame: update the viewer when due (always for the `last` one)."""
        if not (self.throttle.due() or last) or not slam.relative:
            return
        clouds, transforms = {}, {}
        for key, keyframe in enumerate(slam.keyframes):
            if self.sent_counts.get(key) != keyframe.count:
                local, colors, conf = slam.keyframe_points(keyframe, slam.options.cloud_conf)
                clouds[key] = PointCloud(local.float().cpu().numpy(), colors, conf)
                self.sent_counts[key] = keyframe.count
            pose = keyframe.pose_c2w.detach().to("cpu", torch.float64)
            if key not in self.sent_poses or not torch.equal(self.sent_poses[key], pose):
                transforms[key] = pose.numpy()
                self.sent_poses[key] = pose.clone()
        self.viewer.update(slam.frame_poses(), clouds, transforms)


class Slam3rMapFeed:
    """Feeds SLAM3R's registered frames: their poses and sampled world points (module doc)."""

    def __init__(self, viewer: LiveMapViewer, rate: float) -> None:
        self.viewer, self.throttle = viewer, _Throttle(rate)
        self.poses: list[np.ndarray] = []
        self.pending: dict[int, PointCloud] = {}

    def frame(self, frame: Slam3rFrame) -> None:
        """A registered frame: kept, and the viewer updated when due."""
        self.poses.append(frame.camera.pose_c2w)
        self.pending[frame.index] = PointCloud(frame.points, frame.colors, frame.point_conf)
        if self.throttle.due():
            self.flush()

    def flush(self) -> None:
        """Send what is pending (at the end of the stream)."""
        if self.poses:
            self.viewer.update(np.stack(self.poses), self.pending)
            self.pending = {}
