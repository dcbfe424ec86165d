"""Per-frame confidence maps as float32 `.npy`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from recon4d.io.layout import CONF_DIR, frame_file
from recon4d.io.writers.files import save_npy
from recon4d.scene import Scene


def write_conf(scene: Scene, out_dir: Path) -> list[str]:
    """Write `conf/NNNNNN.npy` (float32, H×W, the Scene's confidences as they are)."""
    files = [frame_file(CONF_DIR, i, ".npy") for i in range(len(scene))]
    for path, conf in zip(files, scene.confs, strict=True):
        save_npy(out_dir / path, conf.astype(np.float32))
    return files
