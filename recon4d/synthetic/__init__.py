"""Procedural dynamic scenes with full ground truth, and an oracle with the network's interface.

`generate_scene` renders a seeded textured room with moving boxes (RGB, depth, masks, instances,
poses, intrinsics, optical and scene flow); `write_scene`/`load_scene` store it in a documented
folder; `OracleModel` turns it into DUSt3R/MASt3R-style pair predictions with controllable
corruption, so every later stage can be tested without weights or a GPU.
"""

from recon4d.synthetic.oracle import OracleCorruption, OracleModel
from recon4d.synthetic.scene import SyntheticScene, generate_scene
from recon4d.synthetic.scene_io import load_scene, write_scene
from recon4d.synthetic.trajectories import TRAJECTORIES

__all__ = ["TRAJECTORIES", "OracleCorruption", "OracleModel", "SyntheticScene",
           "generate_scene", "load_scene", "write_scene"]
