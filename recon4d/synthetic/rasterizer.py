"""Z-buffer rasterizer for textured quads: exact per-pixel ray-plane depth, nearest surface wins.

Quads are drawn one after another (a Python loop over primitives, never over pixels); each covers
the pixels of its screen bounding box, computes the analytic depth of the pixel-centre rays and
keeps the nearer of itself and the z-buffer.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recon4d.geometry.cameras import camera_rays, project
from recon4d.geometry.transforms import invert_rigid
from recon4d.synthetic.geometry import Surfaces

NEAR = 1e-3  # nearest visible depth in scene units
LIGHT_DIR = np.array([0.35, -0.45, 0.82]) / np.linalg.norm([0.35, -0.45, 0.82])
AMBIENT = 0.6


@dataclass
class Fragments:
    """Per-pixel result of rasterization; quad -1 and depth 0 where no surface is hit."""

    depth: np.ndarray  # (H, W) float64 z-depth
    quad: np.ndarray  # (H, W) int32 quad index
    s: np.ndarray  # (H, W) float64 surface coordinate along edge_u
    t: np.ndarray  # (H, W) float64 surface coordinate along edge_v


def _clip_near(corners: np.ndarray) -> np.ndarray:
    """The part of a convex polygon (n, 3) with z >= NEAR (Sutherland-Hodgman, one plane)."""
    out = []
    for a, b in zip(corners, np.roll(corners, -1, axis=0), strict=True):
        if a[2] >= NEAR:
            out.append(a)
        if (a[2] >= NEAR) != (b[2] >= NEAR):
            out.append(a + (b - a) * (NEAR - a[2]) / (b[2] - a[2]))
    return np.array(out).reshape(-1, 3)


def _screen_box(corners_cam: np.ndarray, intrinsics: np.ndarray, width: int,
                height: int) -> tuple[int, int, int, int] | None:
    """Pixel bounding box (u0, u1, v0, v1) of the visible part of a quad, None if off-screen."""
    visible = _clip_near(corners_cam)
    if len(visible) == 0:
        return None
    uv, _ = project(visible, intrinsics)
    u0, v0 = np.floor(uv.min(axis=0)).astype(int) - 1
    u1, v1 = np.ceil(uv.max(axis=0)).astype(int) + 2
    u0, u1, v0, v1 = max(u0, 0), min(u1, width), max(v0, 0), min(v1, height)
    return (u0, u1, v0, v1) if u0 < u1 and v0 < v1 else None


def rasterize(surfaces: Surfaces, object_poses: np.ndarray, c2w: np.ndarray,
              intrinsics: np.ndarray, width: int, height: int) -> Fragments:
    """Visible surface per pixel; `object_poses` (K+1, 4, 4) body-to-world at this frame."""
    rays = camera_rays(intrinsics, height, width)
    frag = Fragments(np.full((height, width), np.inf), np.full((height, width), -1, np.int32),
                     np.zeros((height, width)), np.zeros((height, width)))
    body_to_cam = invert_rigid(c2w) @ object_poses  # (K+1, 4, 4)
    for q in range(len(surfaces)):
        pose = body_to_cam[surfaces.object_ids[q]]
        rot, trans = pose[:3, :3], pose[:3, 3]
        origin = rot @ surfaces.origins[q] + trans
        eu, ev = rot @ surfaces.edges_u[q], rot @ surfaces.edges_v[q]
        corners = np.stack([origin, origin + eu, origin + eu + ev, origin + ev])
        bbox = _screen_box(corners, intrinsics, width, height)
        if bbox is None:
            continue
        u0, u1, v0, v1 = bbox
        # hit = z * ray with z = (n.o)/(n.ray); its surface coordinates s, t solve
        # hit - o = s*eu + t*ev, i.e. s = z * (ray.a) - o.a with a = (|ev|^2 eu - (eu.ev) ev)/det
        guu, guv, gvv = eu @ eu, eu @ ev, ev @ ev
        det = guu * gvv - guv * guv
        a_s, a_t = (gvv * eu - guv * ev) / det, (guu * ev - guv * eu) / det
        normal = np.cross(eu, ev)
        dots = rays[v0:v1, u0:u1] @ np.stack([normal, a_s, a_t], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (normal @ origin) / dots[..., 0]
        s = z * dots[..., 1] - origin @ a_s
        t = z * dots[..., 2] - origin @ a_t
        zbuf = frag.depth[v0:v1, u0:u1]
        win = (z > NEAR) & (z < zbuf) & (s >= 0) & (s <= 1) & (t >= 0) & (t <= 1)
        zbuf[win] = z[win]
        frag.quad[v0:v1, u0:u1][win] = q
        frag.s[v0:v1, u0:u1][win] = s[win]
        frag.t[v0:v1, u0:u1][win] = t[win]
    frag.depth[frag.quad < 0] = 0.0
    return frag


def shade(surfaces: Surfaces, frag: Fragments, object_poses: np.ndarray) -> np.ndarray:
    """uint8 RGB (H, W, 3): texture colour times two-sided Lambertian light plus ambient."""
    world_normals = np.einsum("qij,qj->qi", object_poses[surfaces.object_ids, :3, :3],
                              surfaces.normals)
    brightness = (AMBIENT + (1 - AMBIENT) * np.abs(world_normals @ LIGHT_DIR)).astype(np.float32)
    hit = frag.quad >= 0
    rgb = np.zeros(frag.quad.shape + (3,), dtype=np.float32)
    quad = frag.quad[hit]
    rgb[hit] = surfaces.atlas.sample(quad, frag.s[hit], frag.t[hit]) * brightness[quad, None]
    return np.clip(np.rint(rgb * 255), 0, 255).astype(np.uint8)
