"""4D outputs of write_scene: static.ply, dynamic/*.ply, the 4D GLB, the default-format rule."""

from __future__ import annotations

import json
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import trimesh
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from recon4d.errors import InputError
from recon4d.eval.ply import read_ply_points
from recon4d.io.writers import FORMATS, STATIC_FORMATS, default_formats, write_scene
from recon4d.io.writers.clouds4d import relative_voxel, static_cloud
from recon4d.io.writers.points import masked_points
from recon4d.scene import Scene

H, W, N = 6, 8, 4
# the videos and the render have their own tests (and need PyAV)
WRITTEN = [f for f in FORMATS if f not in ("videos", "render")]


def make_scene(seed: int = 0, dynamic: bool = True) -> Scene:
    """Random rigid poses, depths in [1, 5], 80% kept; a moving block in frames 1-3 only."""
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (N, 1, 1))
    poses[:, :3, :3] = Rotation.random(N, random_state=seed).as_matrix()
    poses[:, :3, 3] = rng.normal(size=(N, 3))
    k = np.tile(np.array([[7.0, 0, 3.5], [0, 6, 2.5], [0, 0, 1]]), (N, 1, 1))
    moving = np.zeros((N, H, W), dtype=bool)
    moving[1:, 1:4, 2:6] = True
    return Scene(images=rng.integers(0, 256, (N, H, W, 3), dtype=np.uint8),
                 depths=rng.uniform(1, 5, (N, H, W)).astype(np.float32),
                 confs=rng.uniform(1, 10, (N, H, W)).astype(np.float32),
                 intrinsics=k, poses_c2w=poses, masks=rng.random((N, H, W)) > 0.2,
                 dynamic_masks=moving if dynamic else None)


def expected_points(scene: Scene, select: np.ndarray) -> tuple[np.ndarray, ...]:
    """World points, colours, confidences and frames of the `select`ed pixels, by inverting K."""
    xyz, rgb, conf, frame = [], [], [], []
    ys, xs = np.mgrid[0:H, 0:W]
    pix = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3).astype(np.float64)
    for i in range(len(scene)):
        cam = (pix @ np.linalg.inv(scene.intrinsics[i]).T) * scene.depths[i].reshape(-1, 1)
        world = cam @ scene.poses_c2w[i, :3, :3].T + scene.poses_c2w[i, :3, 3]
        keep = select[i].reshape(-1)
        xyz.append(world[keep])
        rgb.append(scene.images[i].reshape(-1, 3)[keep])
        conf.append(scene.confs[i].reshape(-1)[keep])
        frame.append(np.full(int(keep.sum()), i))
    return tuple(np.concatenate(a) for a in (xyz, rgb, conf, frame))


def ply_vertices(path: Path) -> np.ndarray:
    """The vertex records of a PLY file, read by trimesh (structured array)."""
    loaded = trimesh.load(path)
    return loaded.metadata["_ply_raw"]["vertex"]["data"]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scene, Path, list[str]]:
    scene = make_scene()
    out = tmp_path_factory.mktemp("writers4d")
    return scene, out, write_scene(scene, out, WRITTEN, static_voxel=1.0, glb_frame=2)


def test_a_4d_scene_gets_every_format_by_default(written):
    scene, out, files = written
    assert default_formats(scene) == FORMATS
    assert set(STATIC_FORMATS) < set(FORMATS)
    assert {"static.ply", "dynamic/000000.ply", "dynamic/000003.ply",
            "monst3r/pred_traj.txt", "monst3r/enlarged_dynamic_mask_3.png",
            "pointcloud.ply", "scene.glb", "dynamic_mask/000003.png"} <= set(files)
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(files) == on_disk


def test_static_scene_keeps_todays_default_outputs(tmp_path):
    scene = make_scene(dynamic=False)
    assert default_formats(scene) == STATIC_FORMATS
    files = write_scene(scene, tmp_path)
    assert not any(f.startswith(("static", "dynamic", "monst3r", "render")) for f in files)
    assert write_scene(scene, tmp_path / "x", ["static_ply", "dynamic_ply"]) == []


def test_static_ply_is_one_point_per_voxel_of_static_kept_points(written):
    scene, out, _ = written
    xyz, rgb, conf, _ = expected_points(scene, scene.masks & ~scene.dynamic_masks)
    groups: dict[tuple, list[int]] = {}
    for index, cell in enumerate(map(tuple, np.floor(xyz).astype(int))):  # voxel side 1.0
        groups.setdefault(cell, []).append(index)
    assert max(len(g) for g in groups.values()) > 1  # the test merges something
    verts = ply_vertices(out / "static.ply")
    assert len(verts) == len(groups)
    got = np.stack([verts[c] for c in "xyz"], axis=1)
    tree = cKDTree(got)
    for members in groups.values():
        distance, row = tree.query(xyz[members].mean(axis=0))
        assert distance < 1e-5
        colour = np.rint(rgb[members].mean(axis=0))
        np.testing.assert_array_equal([verts[c][row] for c in ("red", "green", "blue")], colour)
        assert verts["confidence"][row] == pytest.approx(conf[members].max())


def test_dynamic_ply_holds_the_moving_kept_points_of_each_frame(written):
    scene, out, _ = written
    xyz, rgb, conf, frame = expected_points(scene, scene.masks & scene.dynamic_masks)
    for i in range(N):
        path = out / f"dynamic/{i:06d}.ply"
        if i == 0:  # no moving pixel: a valid header and no vertex
            assert b"element vertex 0\n" in path.read_bytes()
            assert len(read_ply_points(path)) == 0
            continue
        verts = ply_vertices(path)
        np.testing.assert_allclose(np.stack([verts[c] for c in "xyz"], 1), xyz[frame == i],
                                   rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(np.stack([verts[c] for c in ("red", "green", "blue")], 1),
                                      rgb[frame == i])
        np.testing.assert_array_equal(verts["confidence"], conf[frame == i])


def test_pointcloud_ply_carries_confidence_and_stays_readable(written):
    scene, out, _ = written
    xyz, _, conf, _ = expected_points(scene, scene.masks)
    verts = ply_vertices(out / "pointcloud.ply")
    np.testing.assert_array_equal(verts["confidence"], conf)
    np.testing.assert_allclose(read_ply_points(out / "pointcloud.ply"), xyz, rtol=1e-5,
                               atol=1e-5)


def _glb_meshes(path: Path) -> dict[str, np.ndarray]:
    """{mesh name: POSITION array} read from the GLB's JSON and binary chunks."""
    data = path.read_bytes()
    json_len = struct.unpack_from("<I", data, 12)[0]
    doc = json.loads(data[20:20 + json_len])
    blob = data[20 + json_len + 8:]
    meshes = {}
    for mesh in doc["meshes"]:
        accessor = doc["accessors"][mesh["primitives"][0]["attributes"]["POSITION"]]
        view = doc["bufferViews"][accessor["bufferView"]]
        meshes[mesh["name"]] = np.frombuffer(blob, "<f4", accessor["count"] * 3,
                                             view["byteOffset"]).reshape(-1, 3)
    return meshes


def test_glb_of_a_4d_scene_has_static_cloud_frustums_and_one_frames_movers(written):
    scene, out, _ = written
    meshes = _glb_meshes(out / "scene.glb")
    assert list(meshes) == ["static", "moving_000002", "cameras"]
    static = ply_vertices(out / "static.ply")
    np.testing.assert_array_equal(meshes["static"], np.stack([static[c] for c in "xyz"], 1))
    xyz, _, _, frame = expected_points(scene, scene.masks & scene.dynamic_masks)
    np.testing.assert_allclose(meshes["moving_000002"], xyz[frame == 2], rtol=1e-5, atol=1e-5)
    assert len(meshes["cameras"]) == 5 * N
    loaded = trimesh.load(out / "scene.glb")  # a peer reader opens it
    assert len(loaded.geometry) == 3


def test_glb_frame_defaults_to_the_middle_and_is_checked(tmp_path):
    scene = make_scene()
    write_scene(scene, tmp_path, ["glb"])
    assert "moving_000002" in _glb_meshes(tmp_path / "scene.glb")  # N // 2
    with pytest.raises(InputError, match="glb_frame 4 is not a frame"):
        write_scene(scene, tmp_path / "bad", ["glb"], glb_frame=4)
    assert not (tmp_path / "bad").exists()


def test_relative_voxel_is_a_fraction_of_the_median_camera_distance():
    scene = make_scene()
    scene.depths[:] = 2.0
    scene.intrinsics[:, 0, 0] = scene.intrinsics[:, 1, 1] = 1e7  # rays along the axis
    assert relative_voxel(scene, masked_points(scene)) == pytest.approx(2.0 / 200, rel=1e-6)


def test_static_cloud_grows_the_voxel_to_respect_the_point_cap():
    points = masked_points(make_scene())
    fine = static_cloud(points, 1e-6, max_points=None)
    assert len(fine) == len(points)  # every point in its own voxel
    capped = static_cloud(points, 1e-6, max_points=10)
    assert 0 < len(capped) <= 10
    assert capped.conf.max() == points.conf.max()


def test_render_goes_through_the_renderer_atomically(tmp_path, monkeypatch):
    calls = []

    def fake_render(scene, path):
        calls.append(scene)
        Path(path).write_bytes(b"mp4")

    fake_module = types.ModuleType("recon4d.viz.render")  # the real one loads torch: slow
    fake_module.write_render = fake_render
    monkeypatch.setitem(sys.modules, "recon4d.viz.render", fake_module)
    scene = make_scene()
    assert write_scene(scene, tmp_path, ["render"]) == ["render_4d.mp4"]
    assert calls == [scene] and (tmp_path / "render_4d.mp4").read_bytes() == b"mp4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["render_4d.mp4"]


def test_render_is_skipped_with_a_warning_without_pyav(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr("recon4d.viz.overlay.has_pyav", lambda: False)
    assert write_scene(make_scene(), tmp_path, ["render"]) == []
    assert "render_4d.mp4 not written" in caplog.text and not any(tmp_path.iterdir())
