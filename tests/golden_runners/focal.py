"""Golden `focal` cases: every call of the case through `recon4d.align.focal.estimate_focal`."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.numpy import load_file

from recon4d.align.focal import estimate_focal


def run_focal(case: dict, root: Path) -> dict[str, np.ndarray]:
    """Run each (pts3d, pp) -> expected call of the case with the case's mode and clip range."""
    inputs = load_file(str(Path(root) / case["files"]["inputs"]))
    params = case["params"]
    out = {}
    for call in case["calls"]:
        focal = estimate_focal(torch.from_numpy(inputs[call["pts3d"]]),
                               torch.from_numpy(inputs[call["pp"]]), mode=params["focal_mode"],
                               min_focal=params["min_focal"], max_focal=params["max_focal"])
        out[call["expected"]] = focal.numpy()
    return out
