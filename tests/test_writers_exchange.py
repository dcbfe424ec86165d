"""COLMAP and nerfstudio exports, read back with pycolmap and checked by projecting points."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from PIL import Image

from recon4d.errors import InputError
from recon4d.io.writers import write_scene
from tests.test_writers import CROPS, ORIGINAL_SIZES, H, W, make_scene, world_points

# PINHOLE (fx, fy, cx, cy) by hand, COLMAP pixel-corner convention: cx = (cx + left + 0.5) * s
CAMERA_0 = [40.0, 42.0, 20.0, 16.0]  # frames 0 and 2: K (20, 21, 7.5, 5.5), crop (2, 2), s = 2
CAMERA_1 = [75.0, 63.0, 30.0, 22.5]  # frame 1: K (25, 21, 7.5, 6.0), crop (2, 1), s = 3


def kept_pixels(scene) -> tuple[np.ndarray, np.ndarray]:
    """Frame index and (x, y) model pixel of every kept point (frame then row-major order)."""
    frame, ys, xs = np.nonzero(scene.masks)
    return frame, np.stack([xs, ys], 1).astype(np.float64)


@pytest.fixture(scope="module")
def colmap_dirs(tmp_path_factory: pytest.TempPathFactory):
    scene = make_scene()
    out = tmp_path_factory.mktemp("colmap")
    files = write_scene(scene, out, ["colmap"])
    sparse = out / "colmap/sparse/0"
    assert files == [f"colmap/sparse/0/{s}.{e}" for s in ("cameras", "images", "points3D")
                     for e in ("txt", "bin")]
    dirs = {}
    for ext in ("txt", "bin"):  # COLMAP prefers .bin when both exist: read each kind alone
        dirs[ext] = out / ext
        dirs[ext].mkdir()
        for stem in ("cameras", "images", "points3D"):
            shutil.copy(sparse / f"{stem}.{ext}", dirs[ext])
    return scene, dirs


@pytest.mark.parametrize("kind", ["txt", "bin"])
def test_colmap_cameras_and_poses(colmap_dirs, kind):
    scene, dirs = colmap_dirs
    rec = pycolmap.Reconstruction(str(dirs[kind]))
    assert (rec.num_cameras(), rec.num_images()) == (2, 3)
    for i in range(len(scene)):
        image = rec.images[i + 1]
        assert image.name == f"im{i}.png"
        camera = rec.cameras[image.camera_id]
        assert camera.model == pycolmap.CameraModelId.PINHOLE
        assert (camera.width, camera.height) == tuple(ORIGINAL_SIZES[i])
        np.testing.assert_allclose(camera.params, CAMERA_1 if i == 1 else CAMERA_0)
        np.testing.assert_allclose(image.projection_center(), scene.poses_c2w[i, :3, 3],
                                   atol=1e-9)
        np.testing.assert_allclose(image.cam_from_world().rotation.matrix(),
                                   scene.poses_c2w[i, :3, :3].T, atol=1e-9)
    assert rec.images[1].camera_id == rec.images[3].camera_id != rec.images[2].camera_id


@pytest.mark.parametrize("kind", ["txt", "bin"])
def test_colmap_points_colours_and_observations(colmap_dirs, kind):
    scene, dirs = colmap_dirs
    rec = pycolmap.Reconstruction(str(dirs[kind]))
    xyz, rgb = world_points(scene)
    frame, pixel = kept_pixels(scene)
    assert rec.num_points3D() == len(xyz) == scene.masks.sum()
    ids = sorted(rec.points3D)
    assert ids == list(range(1, len(xyz) + 1))
    got = np.array([rec.points3D[k].xyz for k in ids])
    np.testing.assert_allclose(got, xyz, atol=1e-5)
    np.testing.assert_array_equal([rec.points3D[k].color for k in ids], rgb)
    expected_xy = (pixel + CROPS[frame, :2] + 0.5) * (ORIGINAL_SIZES / CROPS[:, 2:])[frame]
    for k in ids[::7]:
        (element,) = rec.points3D[k].track.elements
        assert element.image_id == frame[k - 1] + 1
        image = rec.images[element.image_id]
        obs = image.points2D[element.point2D_idx]
        assert obs.point3D_id == k
        np.testing.assert_allclose(obs.xy, expected_xy[k - 1], atol=1e-9)
        # pycolmap's own projection of the 3D point lands on its observation
        np.testing.assert_allclose(image.project_point(rec.points3D[k].xyz), obs.xy, atol=1e-3)


def test_colmap_point_budget_spreads_evenly(tmp_path):
    scene = make_scene()
    write_scene(scene, tmp_path, ["colmap"], colmap_max_points=50)
    rec = pycolmap.Reconstruction(str(tmp_path / "colmap/sparse/0"))
    xyz, _ = world_points(scene)
    assert rec.num_points3D() == 50
    got = np.array([rec.points3D[k].xyz for k in sorted(rec.points3D)])
    np.testing.assert_allclose(got, xyz[np.linspace(0, len(xyz) - 1, 50).round().astype(int)],
                               atol=1e-5)
    assert sum(rec.images[i].num_points2D() for i in rec.images) == 50


def project_nerfstudio(frame: dict, points: np.ndarray) -> np.ndarray:
    """Pixel coordinates (corner convention) of world points in a transforms.json frame."""
    w2c = np.linalg.inv(np.array(frame["transform_matrix"]))
    cam = points @ w2c[:3, :3].T + w2c[:3, 3]  # OpenGL axes: y up, looking down -z
    u = frame["fl_x"] * cam[:, 0] / -cam[:, 2] + frame["cx"]
    v = -frame["fl_y"] * cam[:, 1] / -cam[:, 2] + frame["cy"]
    return np.stack([u, v], 1)


def test_nerfstudio_resized_frames_project_consistently(tmp_path):
    scene = make_scene()
    gradient = np.linspace(0, 255, W)[None, :, None] * np.ones((len(scene), H, 1, 3))
    scene.images = gradient.astype(np.uint8)
    files = write_scene(scene, tmp_path, ["ply", "nerfstudio"])
    doc = json.loads((tmp_path / "transforms.json").read_text())
    assert doc["camera_model"] == "OPENCV" and doc["ply_file_path"] == "pointcloud.ply"
    assert files[-1] == "transforms.json"
    xyz, _ = world_points(scene)
    frame_of, pixel = kept_pixels(scene)
    scales = ORIGINAL_SIZES / CROPS[:, 2:]
    for i, frame in enumerate(doc["frames"]):
        assert frame["file_path"] == f"images/{i:06d}.png"
        assert (frame["w"], frame["h"]) == (W * scales[i, 0], H * scales[i, 1])
        with Image.open(tmp_path / frame["file_path"]) as img:
            assert img.size == (frame["w"], frame["h"])
            back = np.array(img.resize((W, H), Image.Resampling.BOX)).astype(float)
        assert np.abs(back[1:-1, 1:-1] - scene.images[i, 1:-1, 1:-1]).max() <= 3
        sel = frame_of == i
        np.testing.assert_allclose(project_nerfstudio(frame, xyz[sel]),
                                   (pixel[sel] + 0.5) * scales[i], atol=1e-3)


def write_sources(folder: Path, suffix: str = ".png") -> list[Path]:
    """Source images of the scene's original sizes."""
    rng = np.random.default_rng(1)
    paths = []
    for i, (w, h) in enumerate(ORIGINAL_SIZES):
        path = folder / f"src{i}{suffix}"
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


def test_nerfstudio_copies_sources_at_original_resolution(tmp_path):
    scene = make_scene()
    sources = write_sources(tmp_path)
    out = tmp_path / "out"
    write_scene(scene, out, ["nerfstudio"], sources=sources)
    doc = json.loads((out / "transforms.json").read_text())
    assert "ply_file_path" not in doc
    xyz, _ = world_points(scene)
    frame_of, pixel = kept_pixels(scene)
    for i, frame in enumerate(doc["frames"]):
        assert (out / frame["file_path"]).read_bytes() == sources[i].read_bytes()
        assert (frame["w"], frame["h"]) == tuple(ORIGINAL_SIZES[i])
        assert [frame[k] for k in ("fl_x", "fl_y", "cx", "cy")] == \
            (CAMERA_1 if i == 1 else CAMERA_0)
        sel = frame_of == i
        expected = (pixel[sel] + CROPS[i, :2] + 0.5) * ORIGINAL_SIZES[i] / CROPS[i, 2:]
        np.testing.assert_allclose(project_nerfstudio(frame, xyz[sel]), expected, atol=1e-3)


def test_nerfstudio_writes_exif_rotated_sources_upright(tmp_path):
    scene = make_scene()
    sources = write_sources(tmp_path)
    w, h = ORIGINAL_SIZES[0]
    upright = np.random.default_rng(2).integers(0, 256, (h, w, 3), dtype=np.uint8)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    Image.fromarray(upright).transpose(Image.Transpose.ROTATE_90).save(
        tmp_path / "rot.png", exif=exif)
    sources[0] = tmp_path / "rot.png"
    write_scene(scene, tmp_path / "out", ["nerfstudio"], sources=sources)
    with Image.open(tmp_path / "out/images/000000.png") as img:
        assert img.size == (w, h)
        np.testing.assert_array_equal(np.array(img), upright)


def test_nerfstudio_rejects_wrong_or_missing_sources(tmp_path):
    scene = make_scene()
    sources = write_sources(tmp_path)
    Image.new("RGB", (41, 32)).save(sources[2])
    with pytest.raises(InputError, match=r"src2.png: source image is 41x32.*40x32"):
        write_scene(scene, tmp_path / "out", sources=sources)
    with pytest.raises(InputError, match="nope.png: source image not found"):
        write_scene(scene, tmp_path / "out", sources=sources[:2] + [tmp_path / "nope.png"])
    with pytest.raises(InputError, match="2 source images given for 3 frames"):
        write_scene(scene, tmp_path / "out", sources=sources[:2])
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("names, expected", [
    (["a.png", "b/c.png", "d.jpg"], ["a.png", "b/c.png", "d.jpg"]),
    (["a.png", "a.png", "d.jpg"], [f"frame_{i:06d}.png" for i in range(3)]),
    (["a.png", "my photo.png", "d.jpg"], [f"frame_{i:06d}.png" for i in range(3)]),
    ([], [f"frame_{i:06d}.png" for i in range(3)]),
])
def test_colmap_image_names(tmp_path, names, expected):
    scene = make_scene()
    scene.image_names = names
    scene.masks = scene.masks.astype(np.uint8)  # 0/1 masks select the same points as booleans
    write_scene(scene, tmp_path, ["colmap"])
    rec = pycolmap.Reconstruction(str(tmp_path / "colmap/sparse/0"))
    assert [rec.images[i + 1].name for i in range(3)] == expected
    assert rec.num_points3D() == int(scene.masks.sum())
