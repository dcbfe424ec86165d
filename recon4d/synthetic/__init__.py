"""Procedural dynamic scenes with full ground truth, and an oracle with the network's interface.

`generate_scene` renders a seeded textured room with moving boxes (RGB, depth, masks, instances,
poses, intrinsics, optical and scene flow); `write_scene`/`load_scene` store it in a documented
folder; `OracleModel` turns it into DUSt3R/MASt3R-style pair predictions with controllable
corruption, so every later stage can be tested without weights or a GPU.
"""

from __future__ import annotations

from recon4d.lazy import lazy_getattr

# imported on first use: `recon4d synth` and the evaluation never load the oracle's torch
_LAZY = {
    "Mast3rSlamOracle": "recon4d.synthetic.mast3r_slam_oracle",
    "OracleCorruption": "recon4d.synthetic.oracle",
    "OracleModel": "recon4d.synthetic.oracle",
    "Slam3rOracle": "recon4d.synthetic.slam3r_oracle",
    "SyntheticScene": "recon4d.synthetic.scene",
    "generate_scene": "recon4d.synthetic.scene",
    "load_scene": "recon4d.synthetic.scene_io",
    "write_scene": "recon4d.synthetic.scene_io",
}

__all__ = sorted(_LAZY)
__getattr__ = lazy_getattr(__name__, _LAZY)
