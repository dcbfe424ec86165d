"""Writers of trajectory, intrinsics, depth, confidence, PLY and GLB, read back independently."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import trimesh
from evo.tools import file_interface
from PIL import Image
from scipy.spatial.transform import Rotation

from recon4d.errors import InputError
from recon4d.io.writers import write_scene
from recon4d.scene import Scene
from recon4d.viz.colormap import VIRIDIS, apply_colormap

H, W = 12, 16
# frames 0 and 2: 40x32 source resized to 20x16, cropped at (2, 2); frame 1: 60x45 -> 20x15
ORIGINAL_SIZES = np.array([[40, 32], [60, 45], [40, 32]])
CROPS = np.array([[2, 2, 20, 16], [2, 1, 20, 15], [2, 2, 20, 16]])


def make_scene(seed: int = 0, n: int = 3) -> Scene:
    """A random scene with known geometry: random rigid poses, depths in [1, 5], 70% kept."""
    rng = np.random.default_rng(seed)
    poses = np.tile(np.eye(4), (n, 1, 1))
    poses[:, :3, :3] = Rotation.random(n, random_state=seed).as_matrix()
    poses[:, :3, 3] = rng.normal(size=(n, 3))
    k = np.tile(np.array([[20.0, 0, 7.5], [0, 21, 5.5], [0, 0, 1]]), (n, 1, 1))
    k[1, 0, 0], k[1, 1, 2] = 25.0, 6.0
    return Scene(images=rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8),
                 depths=rng.uniform(1, 5, (n, H, W)).astype(np.float32),
                 confs=rng.uniform(1, 10, (n, H, W)).astype(np.float32),
                 intrinsics=k, poses_c2w=poses, masks=rng.random((n, H, W)) > 0.3,
                 image_names=[f"im{i}.png" for i in range(n)],
                 original_sizes=ORIGINAL_SIZES[:n].copy(), crops=CROPS[:n].copy())


def world_points(scene: Scene) -> tuple[np.ndarray, np.ndarray]:
    """Kept world points and colours, computed here by inverting K (frame then row-major order)."""
    xyz, rgb = [], []
    ys, xs = np.mgrid[0:H, 0:W]
    pix = np.stack([xs, ys, np.ones_like(xs)], -1).reshape(-1, 3).astype(np.float64)
    for i in range(len(scene)):
        cam = (pix @ np.linalg.inv(scene.intrinsics[i]).T) * scene.depths[i].reshape(-1, 1)
        world = cam @ scene.poses_c2w[i, :3, :3].T + scene.poses_c2w[i, :3, 3]
        keep = scene.masks[i].reshape(-1)
        xyz.append(world[keep])
        rgb.append(scene.images[i].reshape(-1, 3)[keep])
    return np.concatenate(xyz), np.concatenate(rgb)


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> tuple[Scene, Path, list[str]]:
    scene = make_scene()
    out = tmp_path_factory.mktemp("writers")
    return scene, out, write_scene(scene, out)


def test_returned_list_is_exactly_the_files_written(written):
    _, out, files = written
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert sorted(files) == on_disk
    assert len(files) == len(set(files))
    assert {"trajectory_tum.txt", "intrinsics.json", "depth/000002.npy", "depth/000002.png",
            "depth_color/000002.png", "conf/000002.npy", "kept_mask/000002.png",
            "pointcloud.ply", "scene.glb",
            "colmap/sparse/0/points3D.bin", "colmap/sparse/0/points3D.txt",
            "transforms.json", "images/000002.png"} <= set(files)


def test_trajectory_reads_back_with_evo(written):
    scene, out, _ = written
    traj = file_interface.read_tum_trajectory_file(str(out / "trajectory_tum.txt"))
    np.testing.assert_array_equal(traj.timestamps, [0, 1, 2])
    np.testing.assert_allclose(traj.positions_xyz, scene.poses_c2w[:, :3, 3], atol=1e-12)
    wxyz = traj.orientations_quat_wxyz
    rot = Rotation.from_quat(wxyz[:, [1, 2, 3, 0]]).as_matrix()
    np.testing.assert_allclose(rot, scene.poses_c2w[:, :3, :3], atol=1e-12)


def test_trajectory_uses_scene_timestamps(tmp_path):
    scene = make_scene()
    scene.timestamps = np.array([10.5, 10.75, 11.0])
    write_scene(scene, tmp_path, ["trajectory"])
    traj = file_interface.read_tum_trajectory_file(str(tmp_path / "trajectory_tum.txt"))
    np.testing.assert_array_equal(traj.timestamps, scene.timestamps)


def test_intrinsics_json_maps_model_pixels_to_original_pixels(written):
    scene, out, _ = written
    doc = json.loads((out / "intrinsics.json").read_text())
    assert (doc["width"], doc["height"]) == (W, H)
    frames = doc["frames"]
    np.testing.assert_allclose([f["K"] for f in frames], scene.intrinsics)
    # frame 1 by hand: scale 3, crop (2, 1): fx0 = 75, cx0 = (7.5 + 2.5) * 3 - 0.5 = 29.5,
    # cy0 = (6 + 1.5) * 3 - 0.5 = 22
    np.testing.assert_allclose(frames[1]["K_original"], [[75, 0, 29.5], [0, 63, 22.0], [0, 0, 1]])
    assert frames[1]["scale_to_original"] == [3.0, 3.0]
    assert (frames[1]["original_width"], frames[1]["original_height"]) == (60, 45)
    assert frames[1]["name"] == "im1.png"
    # a camera point seen at model pixel (x, y) lands at ((x + left + 0.5) * s - 0.5) originally
    for f, crop, size in zip(frames, CROPS, ORIGINAL_SIZES, strict=True):
        k, k0 = np.array(f["K"]), np.array(f["K_original"])
        scale = size / crop[2:]
        point = np.array([0.3, -0.2, 2.0])
        uv = (k @ point)[:2] / point[2]
        uv0 = (k0 @ point)[:2] / point[2]
        np.testing.assert_allclose(uv0, (uv + crop[:2] + 0.5) * scale - 0.5)
    assert doc["depth_png_scale"] == pytest.approx(scene.depths.max() / 65535)


def test_depth_npy_png_and_conf(written):
    scene, out, _ = written
    scale = json.loads((out / "intrinsics.json").read_text())["depth_png_scale"]
    for i in range(len(scene)):
        depth = np.load(out / f"depth/{i:06d}.npy")
        assert depth.dtype == np.float32
        np.testing.assert_array_equal(depth, scene.depths[i])
        np.testing.assert_array_equal(np.load(out / f"conf/{i:06d}.npy"), scene.confs[i])
        with Image.open(out / f"depth/{i:06d}.png") as img:
            assert img.mode == "I;16"
            assert float(img.text["depth_scale"]) == scale
            counts = np.array(img).astype(np.float64)
        assert counts.max() <= 65535
        assert np.abs(counts * scale - scene.depths[i]).max() <= scale / 2 + 1e-9
    frame, y, x = np.unravel_index(np.argmax(scene.depths), scene.depths.shape)
    with Image.open(out / f"depth/{frame:06d}.png") as img:  # the deepest pixel uses the full range
        assert np.array(img)[y, x] == 65535


def test_depth_color_near_is_bright_far_is_dark(tmp_path):
    scene = make_scene()
    scene.depths[0, 0, 0] = 0.0  # no depth: black
    write_scene(scene, tmp_path, ["depth_color"])
    with Image.open(tmp_path / "depth_color/000000.png") as img:
        assert img.mode == "RGB" and img.size == (W, H)
        rgb = np.array(img)
    assert rgb[0, 0].tolist() == [0, 0, 0]
    positive = scene.depths > 0
    near = np.unravel_index(np.argmin(np.where(positive[0], scene.depths[0], np.inf)), (H, W))
    far = np.unravel_index(np.argmax(scene.depths[0]), (H, W))
    assert rgb[near].tolist() == VIRIDIS[-1].tolist()
    assert rgb[far].tolist() == VIRIDIS[0].tolist()


def test_colormap_matches_matplotlib_viridis():
    cm = pytest.importorskip("matplotlib").colormaps["viridis"]
    t = np.linspace(0, 1, 101)
    ours = apply_colormap(t).astype(float)
    theirs = cm(t)[:, :3] * 255
    assert np.abs(ours - theirs).max() <= 6  # 17-stop piecewise-linear approximation
    assert apply_colormap(np.array([np.nan, -1.0, 2.0])).tolist() == \
        [VIRIDIS[0].tolist(), VIRIDIS[0].tolist(), VIRIDIS[-1].tolist()]


def test_ply_reads_back_with_trimesh(written):
    scene, out, _ = written
    xyz, rgb = world_points(scene)
    assert (out / "pointcloud.ply").read_bytes().startswith(
        b"ply\nformat binary_little_endian 1.0\n")
    cloud = trimesh.load(out / "pointcloud.ply")
    assert isinstance(cloud, trimesh.PointCloud)
    assert len(cloud.vertices) == scene.masks.sum()
    np.testing.assert_allclose(cloud.vertices, xyz, atol=1e-5)
    np.testing.assert_array_equal(cloud.colors[:, :3], rgb)


def _glb_json_and_bin(path: Path) -> tuple[dict, bytes]:
    """The two GLB chunks, parsed from the glTF 2.0 container layout."""
    data = path.read_bytes()
    magic, version, total = struct.unpack_from("<4sII", data)
    assert (magic, version, total) == (b"glTF", 2, len(data))
    json_len, json_type = struct.unpack_from("<I4s", data, 12)
    bin_len, bin_type = struct.unpack_from("<I4s", data, 20 + json_len)
    assert (json_type, bin_type) == (b"JSON", b"BIN\0")
    return json.loads(data[20:20 + json_len]), data[28 + json_len:28 + json_len + bin_len]


def test_glb_points_and_frustums_read_back_with_trimesh(written):
    scene, out, _ = written
    loaded = trimesh.load(out / "scene.glb")
    # the root transform puts camera 0 at the origin with OpenGL axes (y up, looking down -z)
    view = np.linalg.inv(scene.poses_c2w[0] @ np.diag([1.0, -1, -1, 1]))
    xyz, rgb = world_points(scene)
    matrix, name = loaded.graph["points"]
    np.testing.assert_allclose(matrix, view, atol=1e-12)
    cloud = loaded.geometry[name]
    np.testing.assert_allclose(cloud.vertices, xyz, atol=1e-5)
    np.testing.assert_array_equal(cloud.colors[:, :3], rgb)
    cam0 = trimesh.transform_points(xyz, matrix) @ np.diag([1.0, -1, -1])  # back to OpenCV
    keep0 = scene.masks[0].sum()
    np.testing.assert_allclose(cam0[:keep0, 2], scene.depths[0][scene.masks[0]], atol=1e-4)

    matrix, name = loaded.graph["cameras"]
    verts = loaded.geometry[name].vertices.reshape(len(scene), 5, 3)
    depth = 0.1 * np.median(scene.depths)
    np.testing.assert_allclose(verts[:, 0], scene.poses_c2w[:, :3, 3], atol=1e-5)
    for i in range(len(scene)):  # corners project to the image corners at the frustum depth
        rot, t = scene.poses_c2w[i, :3, :3], scene.poses_c2w[i, :3, 3]
        cam = (verts[i, 1:] - t) @ rot
        np.testing.assert_allclose(cam[:, 2], depth, rtol=1e-5)
        uv = (cam @ scene.intrinsics[i].T)[:, :2] / cam[:, 2:]
        np.testing.assert_allclose(uv, [[-0.5, -0.5], [W - 0.5, -0.5], [W - 0.5, H - 0.5],
                                        [-0.5, H - 0.5]], atol=1e-3)
    doc, blob = _glb_json_and_bin(out / "scene.glb")
    prim = doc["meshes"][1]["primitives"][0]
    assert prim["mode"] == 1  # LINES: trimesh ignores their indices, so check them here
    acc = doc["accessors"][prim["indices"]]
    view_ = doc["bufferViews"][acc["bufferView"]]
    idx = np.frombuffer(blob, "<u4", acc["count"], view_["byteOffset"]).reshape(-1, 8, 2)
    edges = {tuple(sorted(e)) for e in idx[1].tolist()}
    assert edges == {(5, 6), (5, 7), (5, 8), (5, 9), (6, 7), (7, 8), (8, 9), (6, 9)}


def test_glb_without_points_has_only_cameras(tmp_path):
    scene = make_scene()
    scene.masks[:] = False
    files = write_scene(scene, tmp_path, ["glb", "ply"])
    assert files == ["pointcloud.ply", "scene.glb"]
    loaded = trimesh.load(tmp_path / "scene.glb")
    assert list(loaded.geometry) == ["cameras"]
    assert b"element vertex 0\n" in (tmp_path / "pointcloud.ply").read_bytes()


def test_unknown_format_lists_valid_ones(tmp_path):
    with pytest.raises(InputError, match="'pointclod'.*valid formats: trajectory, intrinsics"):
        write_scene(make_scene(), tmp_path / "out", ["ply", "pointclod"])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field, value, message", [
    ("depths", np.nan, r"Scene.depths has non-finite values in frame 1 \(im1.png\)"),
    ("confs", np.inf, r"Scene.confs has non-finite values in frame 1 \(im1.png\)"),
    ("depths", -1.0, r"negative depth in frame 1 \(im1.png\)"),
])
def test_bad_values_name_the_frame_and_write_nothing(tmp_path, field, value, message):
    scene = make_scene()
    getattr(scene, field)[1, 3, 4] = value
    with pytest.raises(InputError, match=message):
        write_scene(scene, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_non_rigid_pose_and_bad_shapes_are_rejected(tmp_path):
    scene = make_scene()
    scene.poses_c2w[2, :3, :3] *= 1.5
    with pytest.raises(InputError, match="orthonormal.*frame 2"):
        write_scene(scene, tmp_path)
    scene = make_scene()
    scene.confs = scene.confs[:, :-1]
    with pytest.raises(InputError, match=r"Scene.confs: expected shape \(3, 12, 16\)"):
        write_scene(scene, tmp_path)
    scene = make_scene()
    scene.dynamic_masks = np.zeros((2, 12, 16), bool)
    with pytest.raises(InputError, match=r"Scene.dynamic_masks: expected shape \(3, 12, 16\)"):
        write_scene(scene, tmp_path)
    assert list(tmp_path.iterdir()) == []
