"""Benchmark readers on tiny fixture folders written in each benchmark's real layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from recon4d.errors import InputError
from recon4d.eval.files import read_mask
from recon4d.eval.readers import FrameSelection, detect_format, list_sequences, load_sequence
from recon4d.eval.readers.sintel import read_cam, read_dpt
from tests.fixtures_eval import (
    random_poses,
    write_davis_sequence,
    write_sintel_sequence,
    write_synthetic_scene,
    write_tum_sequence,
)

T0 = 1305031102.0


def tum_fixture(folder: Path) -> dict:
    """Six frames with known depth/pose association (see the comments) and the truth."""
    rgb = np.round(T0 + np.arange(6) / 30, 6)
    # frame 4's depth is 30 ms late (no depth within 20 ms); the others are close
    depth_stamps = rgb + np.array([0.005, -0.012, 0.0, -0.01, 0.03, 0.001])
    yy, xx = np.mgrid[:6, :8]
    depth = np.stack([(i + 1) * 0.5 + 0.0002 * (yy * 8 + xx) for i in range(6)])
    # ground truth at 100 Hz, 2 ms off the frames, ending before frame 5
    gt_stamps = T0 - 0.1 + 0.002 + np.arange(25) * 0.01
    gt_poses = random_poses(25, seed=0)
    write_tum_sequence(folder, depth, rgb, depth_stamps, gt_stamps, gt_poses)
    nearest = np.abs(rgb[:, None] - gt_stamps[None]).argmin(axis=1)
    has_pose = np.abs(rgb - gt_stamps[nearest]) <= 0.01
    return {"rgb": rgb, "depth": depth, "poses": gt_poses[nearest], "has_pose": has_pose}


def test_tum_sequence(tmp_path):
    folder = tmp_path / "rgbd_dataset_freiburg3_walking_xyz"
    truth = tum_fixture(folder)
    assert detect_format(folder) == "tum"
    fmt, seqs = list_sequences(tmp_path)  # a folder of sequences works too
    assert (fmt, list(seqs)) == ("tum", [folder.name])
    gt = load_sequence("tum", folder)
    np.testing.assert_array_equal(gt.timestamps, truth["rgb"])
    expected_depth = truth["depth"].astype(np.float32)
    expected_depth[4] = 0  # no depth map within 20 ms
    np.testing.assert_allclose(gt.depth, expected_depth, atol=1e-6)
    assert list(truth["has_pose"]) == [True] * 5 + [False]
    np.testing.assert_allclose(gt.poses[:5], truth["poses"][:5], atol=1e-12)
    assert np.isnan(gt.poses[5]).all()
    np.testing.assert_array_equal(gt.intrinsics[0], [[535.4, 0, 320.1], [0, 539.2, 247.6],
                                                     [0, 0, 1]])
    assert gt.max_depth is None
    sub = load_sequence("tum", folder, FrameSelection(start=1, stride=2))
    assert sub.frames == [f"rgb/{t:.6f}.png" for t in truth["rgb"][[1, 3, 5]]]
    np.testing.assert_allclose(sub.depth, expected_depth[[1, 3, 5]], atol=1e-6)


def test_bonn_sequence(tmp_path):
    folder = tmp_path / "rgbd_bonn_dataset" / "rgbd_bonn_balloon"
    truth = tum_fixture(folder)
    assert detect_format(folder) == "bonn"
    assert detect_format(tmp_path / "rgbd_bonn_dataset") == "bonn"
    gt = load_sequence("bonn", folder)
    assert gt.max_depth == 70.0 and gt.clip_depth is None  # Bonn caps, never clips
    assert gt.intrinsics[0, 0, 0] == 542.822841 and gt.intrinsics[0, 1, 2] == 237.756098
    np.testing.assert_allclose(gt.poses[:5], truth["poses"][:5], atol=1e-12)


def test_tum_malformed_files(tmp_path):
    folder = tmp_path / "seq"
    tum_fixture(folder)
    (folder / "depth" / sorted((folder / "depth").iterdir())[0].name).unlink()
    with pytest.raises(InputError, match=r"depth/1305031102\.005000\.png: file not found"):
        load_sequence("tum", folder)
    (folder / "rgb.txt").write_text("# header\n1305031102.0 rgb/a.png\nnot-a-time rgb/b.png\n")
    with pytest.raises(InputError, match=r"rgb.txt, line 3: expected 'timestamp filename'"):
        load_sequence("tum", folder)


def sintel_fixture(root: Path) -> dict:
    rng = np.random.default_rng(1)
    depth = rng.uniform(0.5, 90.0, (3, 4, 5)).astype(np.float32)
    k = np.tile(np.array([[688.0, 0, 511.5], [0, 688.0, 217.5], [0, 0, 1]]), (3, 1, 1))
    poses = random_poses(3, seed=2)
    write_sintel_sequence(root, "alley_2", depth, k, poses)
    write_sintel_sequence(root, "market_5", depth[:2], k[:2], poses[:2])
    return {"depth": depth, "k": k, "poses": poses}


def test_sintel_files_and_sequences(tmp_path):
    truth = sintel_fixture(tmp_path)
    dpt = tmp_path / "training" / "depth" / "alley_2" / "frame_0001.dpt"
    assert dpt.read_bytes()[:4] == b"PIEH" and len(dpt.read_bytes()) == 12 + 4 * 20
    np.testing.assert_array_equal(read_dpt(dpt), truth["depth"][0])
    k, c2w = read_cam(tmp_path / "training" / "camdata_left" / "alley_2" / "frame_0002.cam")
    np.testing.assert_array_equal(k, truth["k"][1])
    np.testing.assert_allclose(c2w, truth["poses"][1], atol=1e-12)
    assert detect_format(tmp_path) == "sintel"
    fmt, seqs = list_sequences(tmp_path)
    assert list(seqs) == ["alley_2", "market_5"]
    gt = load_sequence(fmt, seqs["alley_2"], FrameSelection(max_frames=2))
    assert gt.frames == ["frame_0001", "frame_0002"]
    assert gt.max_depth == 70.0 and gt.clip_depth == 70.0  # Sintel caps and clips at 70
    np.testing.assert_array_equal(gt.depth, truth["depth"][:2])
    np.testing.assert_allclose(gt.poses, truth["poses"][:2], atol=1e-12)


def test_sintel_malformed_files(tmp_path):
    sintel_fixture(tmp_path)
    dpt = tmp_path / "training" / "depth" / "alley_2" / "frame_0003.dpt"
    dpt.write_bytes(dpt.read_bytes()[:-4])
    with pytest.raises(InputError, match=r"frame_0003.dpt: size 88 bytes does not match 5x4"):
        read_dpt(dpt)
    cam = tmp_path / "training" / "camdata_left" / "alley_2" / "frame_0001.cam"
    cam.write_bytes(b"XXXX" + cam.read_bytes()[4:])
    with pytest.raises(InputError, match=r"frame_0001.cam: not a Sintel file"):
        read_cam(cam)


def test_davis_merges_objects(tmp_path):
    labels = np.zeros((3, 6, 7), np.uint8)
    labels[:, 1:3, 1:3] = 1
    labels[:, 4:6, 3:6] = 2
    labels[2] = 0
    write_davis_sequence(tmp_path, "bear", labels)
    write_davis_sequence(tmp_path, "camel", labels[:2])
    # a DAVIS 2016 style 0/255 grayscale annotation reads the same way
    Image.fromarray((labels[0] > 0).astype(np.uint8) * 255).save(
        tmp_path / "Annotations" / "480p" / "camel" / "00001.png")
    assert detect_format(tmp_path) == "davis"
    fmt, seqs = list_sequences(tmp_path)
    assert list(seqs) == ["bear", "camel"]
    gt = load_sequence(fmt, seqs["bear"])
    np.testing.assert_array_equal(gt.masks, labels > 0)
    assert gt.frames == ["00000", "00001", "00002"] and gt.depth is None and gt.poses is None
    camel = load_sequence(fmt, seqs["camel"])
    np.testing.assert_array_equal(camel.masks, labels[:2] > 0)
    (seqs["bear"] / "00001.png").write_bytes(b"broken")
    with pytest.raises(InputError, match=r"bear/00001.png: cannot read image"):
        load_sequence(fmt, seqs["bear"])


def synthetic_fixture(folder: Path) -> dict:
    rng = np.random.default_rng(3)
    depth = rng.uniform(1, 5, (4, 6, 8)).astype(np.float32)
    masks = rng.random((4, 6, 8)) < 0.3
    poses = random_poses(4, seed=4)
    k = np.tile(np.array([[10.0, 0, 4], [0, 10.0, 3], [0, 0, 1]]), (4, 1, 1))
    stamps = np.arange(4) * 0.1
    write_synthetic_scene(folder, depth, masks, poses, k, stamps)
    return {"depth": depth, "masks": masks, "poses": poses, "k": k, "stamps": stamps}


def test_synthetic_scene(tmp_path):
    truth = synthetic_fixture(tmp_path / "scene")
    assert detect_format(tmp_path / "scene") == "synthetic"
    gt = load_sequence("synthetic", tmp_path / "scene", FrameSelection(stride=2))
    np.testing.assert_array_equal(gt.depth, truth["depth"][::2])
    np.testing.assert_array_equal(gt.masks, truth["masks"][::2])
    np.testing.assert_array_equal(gt.poses, truth["poses"][::2])
    np.testing.assert_array_equal(gt.intrinsics, truth["k"][::2])
    np.testing.assert_allclose(gt.timestamps, truth["stamps"][::2])
    np.save(tmp_path / "scene" / "depth" / "000001.npy", np.zeros((6, 9), np.float32))
    with pytest.raises(InputError, match=r"000001.npy: size \(6, 9\) differs"):
        load_sequence("synthetic", tmp_path / "scene")


def test_unknown_layout(tmp_path):
    (tmp_path / "random").mkdir()
    with pytest.raises(InputError, match="not a known ground-truth layout"):
        detect_format(tmp_path / "random")
    with pytest.raises(InputError, match="ground-truth folder not found"):
        detect_format(tmp_path / "absent")


def test_mask_png_variants(tmp_path):
    mask = np.zeros((3, 4), bool)
    mask[1, 2] = True
    rgba = np.zeros((3, 4, 4), np.uint8)
    rgba[..., 3] = 255  # opaque everywhere: alpha must not count as foreground
    rgba[1, 2, 0] = 200
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    Image.fromarray(mask.astype(np.uint8) * 255).save(tmp_path / "gray.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "rgba.png"), mask)
    np.testing.assert_array_equal(read_mask(tmp_path / "gray.png"), mask)


def test_reads_scenes_written_by_the_synthetic_module(tmp_path):
    from recon4d.synthetic import generate_scene, load_scene, write_scene

    write_scene(generate_scene(frames=3, width=32, height=24, movers=1, seed=2), tmp_path / "s")
    scene = load_scene(tmp_path / "s")
    assert detect_format(tmp_path / "s") == "synthetic"
    gt = load_sequence("synthetic", tmp_path / "s")
    np.testing.assert_array_equal(gt.depth, scene.depth)
    np.testing.assert_array_equal(gt.masks, scene.dynamic_mask)
    np.testing.assert_array_equal(gt.poses, scene.poses_c2w)
    np.testing.assert_array_equal(gt.intrinsics, scene.intrinsics)
    np.testing.assert_array_equal(gt.timestamps, scene.timestamps)
