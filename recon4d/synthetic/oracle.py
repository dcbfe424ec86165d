"""An oracle with the pair network's interface, built from a synthetic scene's ground truth.

`OracleModel(scene)(view1, view2)` returns `pred1`, `pred2` like the DUSt3R/MASt3R forward
(docs/formats.md, "Pair predictions"): pts3d of view 1 and pts3d_in_other_view of view 2, both
in camera 1, conf = 1 + exp(.) >= 1, and optionally unit descriptors with desc_conf.
`OracleCorruption` turns exact truth into network-like predictions, deterministically per
(seed, pair).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

import numpy as np
import torch
import torch.nn.functional as F

from recon4d.errors import InputError
from recon4d.geometry.cameras import camera_rays
from recon4d.geometry.transforms import apply_transform, invert_rigid
from recon4d.io.images import crop_geometry, load_images
from recon4d.models.config import ModelConfig
from recon4d.synthetic.descriptors import IdentityDescriptors
from recon4d.synthetic.flow import move_points
from recon4d.synthetic.scene import SyntheticScene

SKY = -1  # object id of the descriptors of pixels without a surface (identity = direction)


@dataclass(frozen=True)
class OracleCorruption:
    """How predictions deviate from the truth; the defaults are the "default corruption"."""

    scale_sigma: float = 0.2  # std of the log of the random global scale of each pair
    normalize: bool = False  # DUSt3R pair normalisation: unit mean distance (before the scale)
    noise_rel: float = 0.01  # Gaussian noise per axis, sigma = noise_abs + noise_rel * depth
    noise_abs: float = 0.0
    outlier_fraction: float = 0.01  # points pushed along their ray, with low confidence
    outlier_log_range: tuple[float, float] = (0.2, 0.7)  # |log depth factor| of an outlier
    edge_blur: float = 1.5  # Gaussian sigma (pixels) of depth blur at discontinuities, 0 = off
    edge_threshold: float = 0.05  # relative depth jump marking a discontinuity
    dynamic_as_static: bool = True  # DUSt3R failure: view-2 movers placed at their view-1 pose
    desc_noise: float = 0.05  # Gaussian noise per descriptor component, then renormalised
    conf_peak: float = 20.0  # conf = 1 + conf_peak * exp(-relative error / conf_error_scale)
    conf_error_scale: float = 0.05

    @classmethod
    def none(cls) -> OracleCorruption:
        """Exact truth: no scale, noise, outliers, blur, dynamic failure or descriptor noise."""
        return cls(scale_sigma=0.0, noise_rel=0.0, noise_abs=0.0, outlier_fraction=0.0,
                   edge_blur=0.0, dynamic_as_static=False, desc_noise=0.0)

    def but(self, **changes) -> OracleCorruption:
        """A copy with some fields changed."""
        return replace(self, **changes)


def _gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of an (H, W) map with replicated borders."""
    radius = max(1, math.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=image.dtype)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    kernel = kernel / kernel.sum()
    out = F.pad(image[None, None], (radius, radius, radius, radius), mode="replicate")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1))
    return F.conv2d(out, kernel.view(1, 1, -1, 1))[0, 0]


def blurred_edge_depth(depth: np.ndarray, sigma: float, threshold: float) -> np.ndarray:
    """Depth with a Gaussian blur applied only near discontinuities (like a network's DPT head).

    A discontinuity is a step between neighbouring pixels larger than `threshold` relative to
    the nearer depth; pixels within ceil(2 sigma) of one (square window) take the blurred depth.
    """
    d = torch.from_numpy(depth.astype(np.float64))
    filled = torch.where(d > 0, d, d.max())
    jump = torch.zeros(d.shape, dtype=torch.bool)
    for axis in (0, 1):
        a, b = filled.narrow(axis, 0, d.shape[axis] - 1), filled.narrow(axis, 1, d.shape[axis] - 1)
        step = (a - b).abs() > threshold * torch.minimum(a, b)
        jump.narrow(axis, 0, d.shape[axis] - 1).logical_or_(step)
        jump.narrow(axis, 1, d.shape[axis] - 1).logical_or_(step)
    radius = max(1, math.ceil(2 * sigma))
    near_edge = F.max_pool2d(jump[None, None].double(), 2 * radius + 1, 1, radius)[0, 0] > 0
    return torch.where(near_edge & (d > 0), _gaussian_blur(filled, sigma), d).numpy()


class OracleModel(torch.nn.Module):
    """Ground-truth pair predictor for `scene` with the network's forward(view1, view2)."""

    def __init__(self, scene: SyntheticScene, corruption: OracleCorruption | None = None,
                 desc_dim: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.scene = scene
        self.corruption = OracleCorruption() if corruption is None else corruption
        self.desc_dim, self.seed = desc_dim, seed
        # frame -> (flat pixel indices, factors) where its edge blur moves the depth: the blur
        # depends on the frame only, not on the pair (about 1 % of the pixels, a few tens of kB)
        self._edge_factors: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.descriptors = IdentityDescriptors(desc_dim, seed) if desc_dim else None
        self.config = ModelConfig(
            arch="AsymmetricMASt3R" if desc_dim else "AsymmetricCroCo3DStereo",
            output_mode=f"pts3d+desc{desc_dim}" if desc_dim else "pts3d")

    def views(self, size: int | None = None) -> list[dict]:
        """The scene's frames as `recon4d.io.load_images` returns them, at the scene resolution.

        `size` defaults to the long side; a size whose resize or crop would change the frames
        is refused, since the ground truth exists only at the rendered resolution.
        """
        height, width = self.scene.shape
        size = max(height, width) if size is None else size
        geo = crop_geometry(width, height, size)
        if geo.resized != (width, height) or geo.box != (0, 0, width, height):
            raise InputError(
                f"synthetic scene is {width}x{height}, but model inputs at size {size} would be "
                f"resized/cropped; render the scene at the model resolution (e.g. 512x384)")
        return load_images(list(self.scene.rgb), size=size)

    def _frames(self, view: dict, side: str) -> list[int]:
        """Frame indices of a (collated) view dict, checked against the scene."""
        idx = view["idx"]
        frames = [int(i) for i in (idx if isinstance(idx, (list, tuple))
                                   else np.atleast_1d(np.asarray(idx)))]
        shape = tuple(view["img"].shape[-2:])
        if shape != self.scene.shape:
            raise InputError(f"oracle {side}: images are {shape[1]}x{shape[0]} but the synthetic "
                             f"scene is {self.scene.shape[1]}x{self.scene.shape[0]}")
        bad = [i for i in frames if not 0 <= i < self.scene.num_frames]
        if bad:
            raise InputError(f"oracle {side}: frame indices {bad} outside the scene's "
                             f"{self.scene.num_frames} frames")
        return frames

    def forward(self, view1: dict, view2: dict) -> tuple[dict, dict]:
        """pred1 {pts3d, conf[, desc, desc_conf]}, pred2 {pts3d_in_other_view, conf[, ...]}."""
        pairs = list(zip(self._frames(view1, "view1"), self._frames(view2, "view2"), strict=True))
        results = [self.predict_pair(i, j) for i, j in pairs]
        device = view1["img"].device

        def stack(side: int, key: str) -> torch.Tensor:
            return torch.from_numpy(np.stack([r[side][key] for r in results])).to(device)

        keys = ["pts3d", "conf"] + (["desc", "desc_conf"] if self.desc_dim else [])
        pred1 = {k: stack(0, k) for k in keys}
        pred2 = {("pts3d_in_other_view" if k == "pts3d" else k): stack(1, k) for k in keys}
        return pred1, pred2

    def predict_pair(self, i: int, j: int) -> tuple[dict, dict]:
        """Numpy float32 predictions of the pair (view1 = frame i, view2 = frame j)."""
        c = self.corruption
        side1 = self.predict_view(i, i, np.random.default_rng([self.seed, 0, i, j]))
        side2 = self.predict_view(j, i, np.random.default_rng([self.seed, 1, i, j]))
        factor = float(np.exp(np.random.default_rng([self.seed, 2, i, j]).normal()
                              * c.scale_sigma))
        if c.normalize:  # DUSt3R: mean distance to camera 1 over both views' surface points
            dists = [np.linalg.norm(pts[surf], axis=-1) for pts, surf in
                     ((side1["pts3d"], self.scene.depth[i] > 0),
                      (side2["pts3d"], self.scene.depth[j] > 0))]
            factor /= max(float(np.concatenate(dists).mean()), 1e-12)
        for side in (side1, side2):
            side["pts3d"] = (side["pts3d"] * factor).astype(np.float32)
        return side1, side2

    def _believed_points(self, i: int, ref: int) -> np.ndarray:
        """Frame i's surface points in camera `ref` as the network would place them (H, W, 3).

        Under `dynamic_as_static` a view-2 mover is put where it was at view 1's time.
        """
        scene = self.scene
        if self.corruption.dynamic_as_static and ref != i:
            inst, body = scene.surface_coords(i)
            identity = np.broadcast_to(np.eye(4), scene.object_poses[i].shape)
            world = move_points(body, inst, identity, scene.object_poses[ref])
        else:
            world = scene.world_points(i)
        return apply_transform(invert_rigid(scene.poses_c2w[ref]), world)

    def _edge_blur_factors(self, i: int, depth: np.ndarray) -> np.ndarray:
        """Frame i's factors (H, W) on the distance from its camera from the edge blur of its
        depth `depth` (1 away from discontinuities); computed once per frame, kept sparse."""
        if i not in self._edge_factors:
            c = self.corruption
            has_surface = depth > 0
            blurred = blurred_edge_depth(depth, c.edge_blur, c.edge_threshold)
            radial = np.where(has_surface, blurred / np.where(has_surface, depth, 1.0), 1.0)
            moved = np.flatnonzero(radial != 1.0)
            self._edge_factors[i] = (moved, radial.ravel()[moved])
        radial = np.ones_like(depth)
        moved, factors = self._edge_factors[i]
        radial.ravel()[moved] = factors
        return radial

    def _radial_errors(self, i: int, depth: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Per-pixel factors on the distance from frame i's own camera (depth `depth`): edge
        blur, outliers."""
        c = self.corruption
        radial = self._edge_blur_factors(i, depth) if c.edge_blur > 0 else np.ones_like(depth)
        if c.outlier_fraction > 0:
            outlier = rng.random(depth.shape) < c.outlier_fraction
            log_factor = rng.uniform(*c.outlier_log_range, size=depth.shape)
            log_factor *= rng.choice([-1.0, 1.0], size=depth.shape)
            radial = np.where(outlier, radial * np.exp(log_factor), radial)
        return radial

    def predict_view(self, i: int, ref: int, rng: np.random.Generator) -> dict:
        """Frame i's corrupted points in camera `ref` (scene units), conf and descriptors."""
        c, scene = self.corruption, self.scene
        depth = scene.depth[i].astype(np.float64)
        has_surface = depth > 0
        safe_depth = np.where(has_surface, depth, 1.0)
        ref_from_i = invert_rigid(scene.poses_c2w[ref]) @ scene.poses_c2w[i]
        centre = ref_from_i[:3, 3]  # camera i in camera ref
        target = self._believed_points(i, ref)
        points = centre + (target - centre) * self._radial_errors(i, depth, rng)[..., None]
        sigma = c.noise_abs + c.noise_rel * depth
        points = points + rng.standard_normal(points.shape) * sigma[..., None]
        rel_error = np.linalg.norm(points - target, axis=-1) / safe_depth
        conf = 1.0 + c.conf_peak * np.exp(-rel_error / c.conf_error_scale)
        # no surface (sky): far along the pixel's ray, confidence 1 (zero weight in alignment)
        height, width = scene.shape
        rays = camera_rays(scene.intrinsics[i], height, width) @ ref_from_i[:3, :3].T
        far = 2.0 * depth.max() if has_surface.any() else 1.0
        points = np.where(has_surface[..., None], points, centre + rays * far)
        out = {"pts3d": points, "conf": np.where(has_surface, conf, 1.0).astype(np.float32)}
        if self.descriptors is not None:
            out["desc"] = self._descriptors(i, has_surface, rng)
            out["desc_conf"] = out["conf"].copy()  # as MASt3R without two_confs
        return out

    def _descriptors(self, i: int, has_surface: np.ndarray, rng: np.random.Generator
                     ) -> np.ndarray:
        """Unit descriptors (H, W, D) of frame i from surface identity, plus noise.

        Pixels without a surface are identified by their world viewing direction.
        """
        scene = self.scene
        inst, body = scene.surface_coords(i)
        height, width = scene.shape
        rays = camera_rays(scene.intrinsics[i], height, width) @ scene.poses_c2w[i][:3, :3].T
        direction = rays / np.linalg.norm(rays, axis=-1, keepdims=True)
        desc = self.descriptors(np.where(has_surface, inst, SKY),
                                np.where(has_surface[..., None], body, direction))
        if self.corruption.desc_noise > 0:
            desc = desc + rng.standard_normal(desc.shape).astype(np.float32) * (
                self.corruption.desc_noise)
            desc /= np.linalg.norm(desc, axis=-1, keepdims=True)
        return desc.astype(np.float32)
