"""`trajectory_tum.txt`: camera-to-world poses in TUM format, readable by evo."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon4d.io.layout import TRAJECTORY_FILE
from recon4d.io.tum import Trajectory, write_tum
from recon4d.scene import Scene


def write_trajectory(scene: Scene, out_dir: Path) -> list[str]:
    """Write `t tx ty tz qx qy qz qw` per frame; t = the Scene's timestamps, else frame index."""
    stamps = (np.arange(len(scene), dtype=np.float64) if scene.timestamps is None
              else np.asarray(scene.timestamps, dtype=np.float64))
    write_tum(out_dir / TRAJECTORY_FILE, Trajectory(stamps, scene.poses_c2w))
    return [TRAJECTORY_FILE]
