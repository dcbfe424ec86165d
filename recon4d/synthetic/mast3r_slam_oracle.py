"""An oracle for the MASt3R-style SLAM's pair source (`recon4d.slam.mast3r_network`), answered
from a synthetic scene's ground truth with the pair oracle's corruption (`OracleCorruption`).

A frame's code is its scene index; `decode(f, k)` is the pair oracle's prediction of (f, k)
(one random scale per pair, movers of k placed at f's time under `dynamic_as_static`, as the
network does), with descriptors, as batch-free float32 tensors in f's camera.

The descriptors' spatial periods are stretched so that the shortest spans `MIN_PERIOD_PX`
pixels at the scene's median depth: a network's descriptors vary over a few pixels at any
resolution, and the window refinement (steps of up to 5 pixels) needs that; the pair oracle's
periods are sub-pixel in small test scenes.

Default corruption (`SLAM_CORRUPTION`): the pair oracle's, with pair normalisation (unit mean
distance, so the matcher's 0.1 distance check means what it means for the network at any
scene size) and 0.2 % instead of 1 % independent per-pixel noise: a network's pointmaps are
smooth at the pixel scale, and the ray matching converges (squared ray error < 1e-6) only on
smooth ray images; 1 % i.i.d. noise is two pixels of ray jitter at 224 x 160.

`depth_stretch` makes odometry drift as a network's does: every predicted pointmap is stretched
by 1 + `depth_stretch` along the first camera's optical axis (both views of a pair; a focal
misjudged by that factor). Rays stay consistent within a pair, so matches stay right, but no
Sim(3) maps one camera's stretched points onto another's exactly: each frame's pose against its
keyframe under-turns by about that fraction, keyframe chains accumulate it, and a loop edge
spans one pair and carries one pair's error only. (A rotation of both views about the camera
centre does not drift: the keyframe pose and its turned pointmap compensate each other.)
"""

from __future__ import annotations

import numpy as np
import torch

from recon4d.synthetic.descriptors import WAVELENGTHS, IdentityDescriptors
from recon4d.synthetic.oracle import OracleCorruption, OracleModel
from recon4d.synthetic.scene import SyntheticScene

DESC_DIM = 24  # MASt3R's descriptor dimension
SLAM_CORRUPTION = OracleCorruption(normalize=True, noise_rel=0.002)
MIN_PERIOD_PX = 4.0  # shortest descriptor period in pixels at the median depth (at least)


class StretchedDescriptors(IdentityDescriptors):
    """`IdentityDescriptors` with every spatial period multiplied by `stretch` (>= 1)."""

    def __init__(self, dim: int, seed: int, stretch: float) -> None:
        super().__init__(dim, seed)
        self.stretch = stretch

    def _object_features(self, k: int) -> tuple[np.ndarray, np.ndarray]:
        freq, phase = super()._object_features(k)
        return freq / self.stretch, phase


def period_stretch(scene: SyntheticScene) -> float:
    """Factor (>= 1) making the shortest descriptor period `MIN_PERIOD_PX` pixels long at the
    median surface depth of the scene's first frame."""
    depth = scene.depth[0]
    footprint = float(np.median(depth[depth > 0])) / float(scene.intrinsics[0][0, 0])
    return max(1.0, MIN_PERIOD_PX * footprint / WAVELENGTHS[0])


class Mast3rSlamOracle(OracleModel):
    """`SlamPairSource` for `scene`: encode -> frame index, decode -> oracle pair predictions."""

    def __init__(self, scene: SyntheticScene, corruption: OracleCorruption | None = None,
                 seed: int = 0, desc_dim: int = DESC_DIM,
                 device: str | torch.device = "cpu", depth_stretch: float = 0.0) -> None:
        super().__init__(scene, SLAM_CORRUPTION if corruption is None else corruption,
                         desc_dim=desc_dim, seed=seed)
        self.descriptors = StretchedDescriptors(desc_dim, seed, period_stretch(scene))
        self.device = torch.device(device)
        self.stretch = np.array([1.0, 1.0, 1.0 + depth_stretch], dtype=np.float32)

    def encode(self, view: dict) -> int:
        """The scene index of a view dict (its `idx`), checked against the scene."""
        return self._frames(view, "frame")[0]

    def decode(self, code_f: int, code_k: int) -> tuple[dict, dict]:
        """(pred_f, pred_k): `pts3d`, `conf`, `desc`, `desc_conf` of f and k, in f's camera."""
        side_f, side_k = self.predict_pair(code_f, code_k)
        side_f, side_k = ({**side, "pts3d": side["pts3d"] * self.stretch}
                          for side in (side_f, side_k))
        return tuple({key: torch.from_numpy(np.ascontiguousarray(value)).float().to(self.device)
                      for key, value in side.items()} for side in (side_f, side_k))
