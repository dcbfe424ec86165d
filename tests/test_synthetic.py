"""Synthetic scenes against analytic truth: depth, occlusion, flow, motion, determinism, I/O."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from recon4d.commands import synth as synth_cmd
from recon4d.errors import InputError, OutputError
from recon4d.geometry.cameras import look_at
from recon4d.geometry.transforms import make_rigid
from recon4d.synthetic import scene_io
from recon4d.synthetic.flow import forward_flow
from recon4d.synthetic.geometry import Surfaces, box, quads
from recon4d.synthetic.rasterizer import rasterize
from recon4d.synthetic.scene import generate_scene
from recon4d.synthetic.trajectories import ORBIT_RADIUS, TRAJECTORIES, camera_trajectory

W, H = 96, 72  # hand-made test scenes
SW, SH = 160, 120  # the generated scene
K = np.array([[70.3, 0.0, 47.7], [0.0, 70.3, 36.2], [0.0, 0.0, 1.0]])  # centres off pixel grid
FLAT = [np.full((8, 8, 3), 0.5, dtype=np.float32)]


def wall(origin, edge_u, edge_v, object_id=0) -> Surfaces:
    return quads(origin, edge_u, edge_v, object_id, textures=FLAT)


def identity_poses(count: int = 1) -> np.ndarray:
    return np.broadcast_to(np.eye(4), (count, 4, 4)).copy()


@pytest.fixture(scope="module")
def scene():
    return generate_scene(frames=12, width=SW, height=SH, movers=2, seed=3, trajectory="shake")


# --- rasterizer -------------------------------------------------------------------------------

def test_depth_of_tilted_wall_is_analytic_ray_plane_distance() -> None:
    normal = np.array([0.3, -0.2, 1.0]) / np.linalg.norm([0.3, -0.2, 1.0])
    e1 = np.cross(normal, [0.0, 1.0, 0.0])
    e1 /= np.linalg.norm(e1)
    e2 = np.cross(normal, e1)
    centre = np.array([0.5, 0.2, 6.0])
    surf = wall(centre - 20 * e1 - 20 * e2, 40 * e1, 40 * e2)
    cam_centre = np.array([0.3, -0.4, 0.5])
    c2w = make_rigid(Rotation.from_euler("xyz", [4, -7, 3], degrees=True).as_matrix(), cam_centre)
    frag = rasterize(surf, identity_poses(), c2w, K, W, H)
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    ray_cam = np.stack([(u - K[0, 2]) / K[0, 0], (v - K[1, 2]) / K[1, 1], np.ones(u.shape)], -1)
    ray_world = ray_cam @ c2w[:3, :3].T
    expected = (normal @ centre - normal @ cam_centre) / (ray_world @ normal)  # z-depth: ray z=1
    np.testing.assert_allclose(frag.depth, expected, rtol=1e-10)
    assert (frag.quad == 0).all()


def test_box_in_front_of_wall_wins_whatever_the_drawing_order() -> None:
    back = wall([-10, -10, 5.0], [20, 0, 0], [0, 20, 0])
    cube = box((1.0, 1.0, 1.0), object_id=1, rng=np.random.default_rng(0), centre=(0, 0, 2.5))
    out = [rasterize(Surfaces.concat(parts), identity_poses(2), np.eye(4), K, W, H)
           for parts in ([back, cube], [cube, back])]
    np.testing.assert_array_equal(out[0].depth, out[1].depth)
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    x, y = (u - K[0, 2]) / K[0, 0] * 2.0, (v - K[1, 2]) / K[1, 1] * 2.0  # on the front face z=2
    inside = (np.abs(x) < 0.5) & (np.abs(y) < 0.5)
    expected = np.where(inside, 2.0, 5.0)
    np.testing.assert_allclose(out[0].depth, expected, rtol=1e-12)
    object_of = Surfaces.concat([back, cube]).object_ids[out[0].quad]
    np.testing.assert_array_equal(object_of, inside.astype(np.int32))


def test_pixels_without_surface_have_zero_depth() -> None:
    surf = wall([0.0, -10, 3.0], [10, 0, 0], [0, 20, 0])  # covers only x >= 0
    frag = rasterize(surf, identity_poses(), np.eye(4), K, W, H)
    u = np.arange(W)
    np.testing.assert_array_equal(frag.depth[0] > 0, u >= K[0, 2])
    assert (frag.quad[:, u < K[0, 2]] == -1).all()


# --- flow -------------------------------------------------------------------------------------

def test_flow_of_sideways_camera_before_wall_is_f_b_over_z() -> None:
    surf = wall([-20, -20, 4.0], [40, 0, 0], [0, 40, 0])
    c2w0, c2w1 = np.eye(4), make_rigid(np.eye(3), [0.2, 0.0, 0.0])
    depth0 = rasterize(surf, identity_poses(), c2w0, K, W, H).depth
    depth1 = rasterize(surf, identity_poses(), c2w1, K, W, H).depth
    flow, valid, scene_flow = forward_flow(depth0, np.zeros((H, W), np.int32), depth1, K, K,
                                           c2w0, c2w1, identity_poses(), identity_poses())
    np.testing.assert_allclose(flow[..., 0], -K[0, 0] * 0.2 / 4.0, atol=1e-5)
    np.testing.assert_allclose(flow[..., 1], 0.0, atol=1e-5)
    assert (scene_flow == 0).all()
    u = np.arange(W)[None].repeat(H, 0)
    landing = u - K[0, 0] * 0.2 / 4.0
    np.testing.assert_array_equal(valid, landing >= -0.5)  # only the left border leaves


def test_flow_is_invalid_where_a_box_hides_the_wall_in_the_next_frame() -> None:
    back = wall([-20, -20, 6.0], [40, 0, 0], [0, 40, 0])
    cube = box((1.0, 1.0, 1.0), object_id=0, rng=np.random.default_rng(0), centre=(0, 0, 2.5))
    surf = Surfaces.concat([back, cube])
    c2w0, c2w1 = np.eye(4), make_rigid(np.eye(3), [0.5, 0.0, 0.0])
    f0 = rasterize(surf, identity_poses(), c2w0, K, W, H)
    f1 = rasterize(surf, identity_poses(), c2w1, K, W, H)
    flow, valid, _ = forward_flow(f0.depth, np.zeros((H, W), np.int32), f1.depth, K, K, c2w0,
                                  c2w1, identity_poses(), identity_poses())
    # wall pixels of frame 0: where do they land in frame 1, relative to the box's front face?
    u, v = np.meshgrid(np.arange(W), np.arange(H))
    on_wall = f0.depth == 6.0
    # wall point in camera 1, along its ray onto the plane z = 2 of the box front, which spans
    # x in [-1, 0], y in [-0.5, 0.5] in camera 1
    x1 = ((u - K[0, 2]) / K[0, 0] * 6.0 - 0.5) / 3 + 0.5
    y1 = (v - K[1, 2]) / K[1, 1] * 6.0 / 3
    margin = 1.5 / K[0, 0] * 2.0  # 1.5 pixels at the front face
    hidden = on_wall & (np.abs(x1) < 0.5 - margin) & (np.abs(y1) < 0.5 - margin)
    seen = on_wall & ((np.abs(x1) > 0.5 + margin) | (np.abs(y1) > 0.5 + margin))
    assert hidden.sum() > 50 and seen.sum() > 1000
    assert not valid[hidden].any()
    inside = (u + flow[..., 0] >= -0.5) & (u + flow[..., 0] < W - 0.5)
    assert valid[seen & inside].all()


def test_reprojection_consistency_of_generated_scene(scene) -> None:
    height, width = scene.shape
    u, v = np.meshgrid(np.arange(width), np.arange(height))
    errors, same_object = [], []
    for t in range(scene.num_frames - 1):
        valid = scene.flow_valid[t]
        moved = scene.world_points(t) + scene.scene_flow_fwd[t]
        w2c = np.linalg.inv(scene.poses_c2w[t + 1])
        cam = moved @ w2c[:3, :3].T + w2c[:3, 3]
        proj = cam @ scene.intrinsics[t + 1].T
        uv = proj[..., :2] / proj[..., 2:]
        target = np.stack([u, v], -1) + scene.flow_fwd[t]
        np.testing.assert_allclose(uv[valid], target[valid], atol=2e-3)
        # on a plane 1/depth is affine in the pixel: interpolate it between the 4 pixel centres
        x = np.clip(target[..., 0], 0, width - 1.001)
        y = np.clip(target[..., 1], 0, height - 1.001)
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        fx, fy = x - x0, y - y0
        inv = 1.0 / scene.depth[t + 1].astype(np.float64)
        inv_there = ((inv[y0, x0] * (1 - fx) + inv[y0, x0 + 1] * fx) * (1 - fy)
                     + (inv[y0 + 1, x0] * (1 - fx) + inv[y0 + 1, x0 + 1] * fx) * fy)
        errors.append(np.abs(inv_there * cam[..., 2] - 1)[valid])
        ui, vi = np.rint(x).astype(int), np.rint(y).astype(int)
        same_object.append((scene.instance[t + 1][vi, ui] == scene.instance[t])[valid])
    errors = np.concatenate(errors)
    assert len(errors) > 0.9 * (scene.num_frames - 1) * width * height
    assert (errors < 1e-5).mean() > 0.9  # exact inside planes ...
    assert (errors < 0.05).mean() > 0.98  # ... close at creases, off only at occluding edges
    assert np.concatenate(same_object).mean() > 0.99


def test_static_points_have_zero_scene_flow_and_movers_move(scene) -> None:
    static = scene.instance[:-1] == 0
    assert (scene.scene_flow_fwd[static] == 0).all()
    moving = np.linalg.norm(scene.scene_flow_fwd, axis=-1) > 0
    assert moving[~static].mean() > 0.5
    np.testing.assert_array_equal(scene.dynamic_mask, scene.instance > 0)


def test_movers_that_stop_have_zero_motion_during_the_stop() -> None:
    s = generate_scene(frames=30, width=48, height=36, movers=3, seed=5, trajectory="orbit")
    stopped_pairs = moving_pairs = 0
    for k, spec in enumerate(s.params["mover_specs"], start=1):
        start, end = spec["stop"]
        for i in range(s.num_frames - 1):
            pose_change = np.abs(s.object_poses[i + 1, k] - s.object_poses[i, k]).max()
            flow_k = s.scene_flow_fwd[i][s.instance[i] == k]
            if start <= s.timestamps[i] and s.timestamps[i + 1] <= end:
                assert pose_change == 0
                assert (flow_k == 0).all()
                stopped_pairs += 1
            elif s.timestamps[i + 1] <= start or s.timestamps[i] >= end:
                assert pose_change > 1e-4
                moving_pairs += 1
    assert stopped_pairs >= 3 * 5 and moving_pairs >= 3 * 10


# --- trajectories and the generator ---------------------------------------------------------

@pytest.mark.parametrize("kind", TRAJECTORIES)
def test_trajectories_are_rigid_and_keep_their_shape(kind: str) -> None:
    times = np.arange(40) / 10.0
    poses = camera_trajectory(kind, times, np.random.default_rng(0))
    rot = poses[:, :3, :3]
    np.testing.assert_allclose(rot @ rot.transpose(0, 2, 1), np.broadcast_to(np.eye(3), rot.shape),
                               atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)
    centres = poses[:, :3, 3]
    radius = np.linalg.norm(centres[:, :2], axis=1)
    if kind == "rotation":
        assert (centres == centres[0]).all()
        assert np.degrees(np.arccos(np.clip(rot[:, :, 2] @ rot[0, :, 2], -1, 1))).max() > 10
    elif kind == "orbit":
        np.testing.assert_allclose(radius, ORBIT_RADIUS)
    elif kind == "walk":  # moves along its viewing direction
        step = centres[-1] - centres[0]
        assert step @ rot[0, :, 2] > 0.9 * np.linalg.norm(step) > 1.0
    else:
        assert 0 < np.ptp(centres, axis=0).max() < 0.2


def test_look_at_gives_opencv_axes() -> None:
    pose = look_at(np.array([0.0, 0.0, 1.0]), np.array([5.0, 0.0, 1.0]))
    np.testing.assert_allclose(pose[:3, :3], [[0, 0, 1], [-1, 0, 0], [0, -1, 0]], atol=1e-12)


def test_same_seed_same_scene_other_seed_other_scene(scene) -> None:
    again = generate_scene(frames=12, width=SW, height=SH, movers=2, seed=3, trajectory="shake")
    for name in ("rgb", "depth", "dynamic_mask", "instance", "poses_c2w", "intrinsics",
                 "flow_fwd", "flow_valid", "scene_flow_fwd", "timestamps", "object_poses"):
        np.testing.assert_array_equal(getattr(scene, name), getattr(again, name), err_msg=name)
    other = generate_scene(frames=12, width=SW, height=SH, movers=2, seed=4, trajectory="shake")
    assert (other.rgb != scene.rgb).mean() > 0.5
    assert not np.allclose(other.poses_c2w, scene.poses_c2w)


def test_contract_shapes_and_dtypes(scene) -> None:
    n, H, W = scene.num_frames, SH, SW
    expected = {"rgb": ((n, H, W, 3), np.uint8), "depth": ((n, H, W), np.float32),
                "dynamic_mask": ((n, H, W), np.bool_), "instance": ((n, H, W), np.int32),
                "poses_c2w": ((n, 4, 4), np.float64), "intrinsics": ((n, 3, 3), np.float64),
                "flow_fwd": ((n - 1, H, W, 2), np.float32),
                "flow_valid": ((n - 1, H, W), np.bool_),
                "scene_flow_fwd": ((n - 1, H, W, 3), np.float32),
                "timestamps": ((n,), np.float64), "object_poses": ((n, 3, 4, 4), np.float64)}
    for name, (shape, dtype) in expected.items():
        arr = getattr(scene, name)
        assert arr.shape == shape and arr.dtype == dtype, name
    assert scene.seed == 3 and scene.params["trajectory"] == "shake"
    assert set(np.unique(scene.instance)) == {0, 1, 2}


def test_surface_coords_are_the_same_for_the_same_point_in_two_frames(scene) -> None:
    height, width = scene.shape
    t = 4
    inst0, body0 = scene.surface_coords(t)
    inst1, body1 = scene.surface_coords(t + 1)
    # pixels whose surface point lands (almost) on a pixel centre of frame t+1
    target = np.stack(np.meshgrid(np.arange(width), np.arange(height)), -1) + scene.flow_fwd[t]
    ui, vi = np.rint(target[..., 0]).astype(int), np.rint(target[..., 1]).astype(int)
    good = scene.flow_valid[t] & (np.abs(target - np.rint(target)).max(-1) < 0.1)
    assert good.sum() > 50
    assert (inst1[vi[good], ui[good]] == inst0[good]).mean() > 0.97
    pixel_size = scene.depth[t][good] / scene.intrinsics[t, 0, 0]
    gap = np.linalg.norm(body1[vi[good], ui[good]] - body0[good], axis=-1)
    assert (gap < pixel_size).mean() > 0.95  # within 0.1 px, stretched on slanted surfaces
    shifted = body1[vi[good], np.clip(ui[good] + 5, 0, width - 1)]  # 5 pixels to the right
    assert np.median(np.linalg.norm(shifted - body0[good], axis=-1)) > 3 * np.median(pixel_size)


@pytest.mark.parametrize("kwargs", [dict(frames=1), dict(width=4), dict(movers=-1),
                                    dict(seed=-1), dict(trajectory="spiral"), dict(fps=0.0)])
def test_bad_arguments_raise_clear_input_errors(kwargs) -> None:
    with pytest.raises(InputError, match="synthetic scene"):
        generate_scene(**{**dict(frames=2, width=16, height=16), **kwargs})


# --- folder I/O -------------------------------------------------------------------------------

def test_write_then_load_round_trip(scene, tmp_path) -> None:
    folder = scene_io.write_scene(scene, tmp_path / "scene")
    back = scene_io.load_scene(folder)
    for name in ("rgb", "depth", "dynamic_mask", "instance", "poses_c2w", "intrinsics",
                 "flow_fwd", "flow_valid", "scene_flow_fwd", "timestamps", "object_poses"):
        np.testing.assert_array_equal(getattr(back, name), getattr(scene, name), err_msg=name)
        assert getattr(back, name).dtype == getattr(scene, name).dtype, name
    assert back.seed == scene.seed and back.params["trajectory"] == "shake"
    meta = json.loads((folder / "scene.json").read_text())
    assert "rgb/000011.png" in meta["files"] and "flow_fwd/000010.npy" in meta["files"]
    assert "flow_fwd/000011.npy" not in meta["files"]
    assert set(meta["layout"]) == set(scene_io.LAYOUT)


def test_tum_trajectory_matches_poses(scene, tmp_path) -> None:
    folder = scene_io.write_scene(scene, tmp_path / "scene")
    rows = np.loadtxt(folder / "trajectory_tum.txt")
    np.testing.assert_allclose(rows[:, 0], scene.timestamps, atol=1e-9)
    np.testing.assert_allclose(rows[:, 1:4], scene.poses_c2w[:, :3, 3], atol=1e-8)
    rot = Rotation.from_quat(rows[:, 4:]).as_matrix()  # scipy: (x, y, z, w) like TUM
    np.testing.assert_allclose(rot, scene.poses_c2w[:, :3, :3], atol=1e-7)


def test_load_names_the_missing_or_damaged_file(scene, tmp_path) -> None:
    folder = scene_io.write_scene(scene, tmp_path / "scene")
    (folder / "depth" / "000003.npy").unlink()
    with pytest.raises(InputError, match=r"depth/000003\.npy: missing"):
        scene_io.load_scene(folder)
    np.save(folder / "depth" / "000003.npy", np.zeros((5, 5), np.float32))
    with pytest.raises(InputError, match=r"000003\.npy: expected shape"):
        scene_io.load_scene(folder)
    with pytest.raises(InputError, match="no scene.json"):
        scene_io.load_scene(tmp_path)


def test_failed_write_leaves_no_folder(scene, tmp_path, monkeypatch) -> None:
    calls = []

    def failing_save(path, arr):
        calls.append(path)
        if len(calls) == 5:
            raise OSError("disk full")
        with open(path, "wb") as f:
            np.lib.format.write_array(f, arr)

    monkeypatch.setattr(scene_io.np, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        scene_io.write_scene(scene, tmp_path / "scene")
    assert list(tmp_path.iterdir()) == []


# --- command line -----------------------------------------------------------------------------

def _run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    synth_cmd.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["synth", *argv])
    return args.func(args)


def test_cli_writes_a_loadable_scene(tmp_path, capsys) -> None:
    out = tmp_path / "scene"
    argv = [str(out), "--frames", "3", "--width", "32", "--height", "24", "--movers", "1",
            "--seed", "2", "--trajectory", "walk"]
    assert _run_cli(argv) == 0
    loaded = scene_io.load_scene(out)
    assert loaded.rgb.shape == (3, 24, 32, 3) and loaded.params["trajectory"] == "walk"
    assert "3 frames 32x24" in capsys.readouterr().out
    assert _run_cli(argv) == 0  # a previous scene may be replaced


def test_cli_refuses_to_replace_a_foreign_folder(tmp_path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(OutputError, match="not a recon4d output"):
        _run_cli([str(tmp_path), "--frames", "2", "--width", "16", "--height", "16"])
    assert (tmp_path / "notes.txt").read_text() == "keep me"
