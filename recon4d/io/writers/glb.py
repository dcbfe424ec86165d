"""`scene.glb`: coloured point clouds and a wireframe frustum per camera, glTF 2.0 binary.

A static scene holds its kept points (mesh `points`); a 4D scene (one with dynamic masks) its
static cloud (`static`, as `static.ply`) and the moving points of one frame (`moving_NNNNNN`).
Vertex data is in the Scene's world frame; the root node's matrix re-expresses it in camera 0's
frame with OpenGL axes (x right, y up, z backwards), so glTF viewers open upright, looking the
way camera 0 looked.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np

from recon4d.geometry.transforms import invert_rigid
from recon4d.io.atomic import atomic_write_bytes
from recon4d.io.layout import GLB_FILE, frame_stem
from recon4d.io.writers.clouds4d import SceneClouds
from recon4d.io.writers.points import Cloud
from recon4d.scene import Scene
from recon4d.viz.colormap import apply_colormap

OPENCV_TO_OPENGL = np.diag([1.0, -1.0, -1.0, 1.0])
# lines of a frustum over its 5 vertices: centre (0) to each corner, then the image rectangle
FRUSTUM_LINES = np.array([[0, 1], [0, 2], [0, 3], [0, 4], [1, 2], [2, 3], [3, 4], [4, 1]])
_FLOAT, _UBYTE, _UINT = 5126, 5121, 5125
_ARRAY_BUFFER, _ELEMENT_ARRAY_BUFFER = 34962, 34963
_POINTS, _LINES = 0, 1


def viewing_transform(scene: Scene) -> np.ndarray:
    """4×4 world -> camera 0 with OpenGL axes (the GLB root node's matrix)."""
    return invert_rigid(scene.poses_c2w[0] @ OPENCV_TO_OPENGL)


def default_frustum_depth(scene: Scene) -> float:
    """A tenth of the median positive depth of the scene (1.0 without any)."""
    positive = scene.depths[scene.depths > 0]
    return 0.1 * float(np.median(positive)) if positive.size else 1.0


def frustum_vertices(scene: Scene, depth: float) -> np.ndarray:
    """(N, 5, 3) world vertices: camera centre, then image corners TL, TR, BR, BL at `depth`."""
    _, h, w = scene.depths.shape
    u = np.array([-0.5, w - 0.5, w - 0.5, -0.5])
    v = np.array([-0.5, -0.5, h - 0.5, h - 0.5])
    k = scene.intrinsics
    rays = np.stack([(u[None] - k[:, 0, 2, None]) / k[:, 0, 0, None],
                     (v[None] - k[:, 1, 2, None]) / k[:, 1, 1, None], np.ones((len(k), 4))], -1)
    cam = np.concatenate([np.zeros((len(k), 1, 3)), rays * depth], axis=1)
    rot, trans = scene.poses_c2w[:, :3, :3], scene.poses_c2w[:, :3, 3]
    return np.einsum("nij,nvj->nvi", rot, cam) + trans[:, None]


class _GltfBuilder:
    """Collects binary buffer views and accessors for one glTF buffer."""

    def __init__(self) -> None:
        self.blob = bytearray()
        self.views: list[dict] = []
        self.accessors: list[dict] = []

    def add(self, data: np.ndarray, component: int, kind: str, target: int,
            normalized: bool = False, bounds: bool = False) -> int:
        """Append `data` (count × components, C-contiguous) and return its accessor index."""
        raw = np.ascontiguousarray(data).tobytes()
        self.blob.extend(b"\0" * (-len(self.blob) % 4))
        self.views.append({"buffer": 0, "byteOffset": len(self.blob), "byteLength": len(raw),
                           "target": target})
        self.blob.extend(raw)
        accessor = {"bufferView": len(self.views) - 1, "componentType": component,
                    "count": int(data.shape[0]), "type": kind}
        if normalized:
            accessor["normalized"] = True
        if bounds:
            accessor["min"] = data.min(axis=0).tolist()
            accessor["max"] = data.max(axis=0).tolist()
        self.accessors.append(accessor)
        return len(self.accessors) - 1


def _rgba(rgb: np.ndarray) -> np.ndarray:
    """(M, 4) uint8 opaque colours (glTF wants 4-byte aligned colour elements)."""
    return np.concatenate([rgb, np.full((len(rgb), 1), 255, np.uint8)], axis=1)


def glb_clouds(scene: Scene, clouds: SceneClouds, frame: int | None = None) -> dict[str, Cloud]:
    """The named clouds of the GLB: kept points, or for a 4D scene the static cloud and the
    moving points of `frame` (default: the middle frame, N // 2)."""
    if scene.dynamic_masks is None:
        return {"points": clouds.kept}
    frame = len(scene) // 2 if frame is None else frame
    return {"static": clouds.static, f"moving_{frame_stem(frame)}": clouds.moving_in(frame)}


def glb_bytes(scene: Scene, clouds: dict[str, Cloud],
              frustum_depth: float | None = None) -> bytes:
    """The GLB content: one points mesh per named cloud (omitted when empty), in the given
    order, and a lines mesh `cameras` of the camera frustums."""
    depth = default_frustum_depth(scene) if frustum_depth is None else frustum_depth
    builder = _GltfBuilder()
    meshes = []
    for name, cloud in clouds.items():
        if not len(cloud):
            continue
        attrs = {"POSITION": builder.add(cloud.xyz.astype(np.float32), _FLOAT, "VEC3",
                                         _ARRAY_BUFFER, bounds=True),
                 "COLOR_0": builder.add(_rgba(cloud.rgb), _UBYTE, "VEC4", _ARRAY_BUFFER,
                                        normalized=True)}
        meshes.append({"name": name, "primitives": [{"attributes": attrs, "mode": _POINTS}]})
    n = len(scene)
    verts = frustum_vertices(scene, depth).reshape(-1, 3).astype(np.float32)
    time = np.linspace(0.0, 1.0, n) if n > 1 else np.zeros(1)
    colours = np.repeat(apply_colormap(time), 5, axis=0)
    lines = (FRUSTUM_LINES[None] + 5 * np.arange(n)[:, None, None]).reshape(-1).astype(np.uint32)
    attrs = {"POSITION": builder.add(verts, _FLOAT, "VEC3", _ARRAY_BUFFER, bounds=True),
             "COLOR_0": builder.add(_rgba(colours), _UBYTE, "VEC4", _ARRAY_BUFFER,
                                    normalized=True)}
    indices = builder.add(lines, _UINT, "SCALAR", _ELEMENT_ARRAY_BUFFER)
    meshes.append({"name": "cameras",
                   "primitives": [{"attributes": attrs, "indices": indices, "mode": _LINES}]})
    nodes = [{"name": "recon4d", "matrix": viewing_transform(scene).T.reshape(-1).tolist(),
              "children": list(range(1, len(meshes) + 1))}]
    nodes += [{"name": mesh["name"], "mesh": i} for i, mesh in enumerate(meshes)]
    builder.blob.extend(b"\0" * (-len(builder.blob) % 4))
    doc = {"asset": {"version": "2.0", "generator": "recon4d"}, "scene": 0,
           "scenes": [{"nodes": [0]}], "nodes": nodes, "meshes": meshes,
           "accessors": builder.accessors, "bufferViews": builder.views,
           "buffers": [{"byteLength": len(builder.blob)}]}
    text = json.dumps(doc, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 4)
    total = 12 + 8 + len(text) + 8 + len(builder.blob)
    return b"".join([struct.pack("<4sII", b"glTF", 2, total),
                     struct.pack("<I4s", len(text), b"JSON"), text,
                     struct.pack("<I4s", len(builder.blob), b"BIN\0"), bytes(builder.blob)])


def write_glb(scene: Scene, clouds: dict[str, Cloud], out_dir: Path,
              frustum_depth: float | None = None) -> list[str]:
    """Write `scene.glb`; frustums reach `frustum_depth` (default: default_frustum_depth)."""
    atomic_write_bytes(out_dir / GLB_FILE, glb_bytes(scene, clouds, frustum_depth))
    return [GLB_FILE]
