"""`recon4d reconstruct` end to end: oracle accuracy, tiny checkpoint, npz inputs, failures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from recon4d.cli import main
from recon4d.errors import InputError
from recon4d.eval import pose_metrics, read_tum
from recon4d.inference import make_pairs
from recon4d.options import AlignOptions, NetworkOptions, OutputOptions
from recon4d.pipeline import ReconstructOptions, reconstruct
from recon4d.pipeline.cameras import intrinsics_at_model, known_focals, read_calibration
from recon4d.synthetic import OracleModel, generate_scene, write_scene
from tests.conftest import GOLDEN_DIR

TINY = GOLDEN_DIR / "checkpoints" / "tiny_dust3r_linear.pth"


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    """A static 8-frame 128x96 synthetic scene folder and its ground truth."""
    scene = generate_scene(frames=8, width=128, height=96, movers=0, seed=3)
    folder = write_scene(scene, tmp_path_factory.mktemp("synth") / "scene")
    return folder, scene


def path_length(poses: np.ndarray) -> float:
    return float(np.linalg.norm(np.diff(poses[:, :3, 3], axis=0), axis=1).sum())


def leftovers(parent, name: str) -> list[str]:
    """Staging folders an interrupted run would leave beside `name`."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


def write_images(folder, sizes) -> None:
    """Textured images (smooth gradients plus noise), one per (width, height)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for k, (w, h) in enumerate(sizes):
        ys, xs = np.mgrid[0:h, 0:w]
        base = np.stack([xs * 255 / w, ys * 255 / h, (xs + ys + 40 * k) % 256], -1)
        pixels = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"img_{k}.png")


def oracle_arrays(scene, edges, with_images: bool) -> dict[str, np.ndarray]:
    """Pair predictions in the originals' flat npz layout, built directly from the oracle."""
    oracle = OracleModel(scene)
    preds = [oracle.predict_pair(i, j) for i, j in edges]
    height, width = scene.shape
    arrays = {"view1/idx": edges[:, 0], "view2/idx": edges[:, 1],
              "view1/true_shape": np.tile([height, width], (len(edges), 1)).astype(np.int32),
              "view2/true_shape": np.tile([height, width], (len(edges), 1)).astype(np.int32),
              "pred1/pts3d": np.stack([p[0]["pts3d"] for p in preds]),
              "pred1/conf": np.stack([p[0]["conf"] for p in preds]),
              "pred2/pts3d_in_other_view": np.stack([p[1]["pts3d"] for p in preds]),
              "pred2/conf": np.stack([p[1]["conf"] for p in preds])}
    if with_images:
        arrays["images"] = scene.rgb
    return arrays


def test_oracle_end_to_end_recovers_the_trajectory(synth, tmp_path, capsys):
    folder, scene = synth
    out = tmp_path / "run"
    assert main(["reconstruct", "--oracle", str(folder), "--out", str(out)]) == 0
    metrics = pose_metrics(out / "trajectory_tum.txt", folder / "trajectory_tum.txt")
    assert metrics["num_poses"] == 8
    assert metrics["ate"] < 0.01 * path_length(scene.poses_c2w)
    doc = json.loads((out / "scene.json").read_text())
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    assert doc["command"] == "reconstruct" and sorted(doc["files"]) == on_disk
    assert doc["inputs"]["oracle"] == str(folder) and doc["inputs"]["frames"] == 8
    assert doc["inputs"]["graph"] == "complete" and doc["inputs"]["pairs"] == 56
    assert doc["options"]["alignment"] == {"solver": "fast", "niter": None, "tsdf": 0.0,
                                           "conf_threshold": 3.0, "focal": None, "calib": None}
    # the oracle, not a network checkpoint, made the predictions (item 8 of issue 9)
    assert "DUSt3R" not in (out / "scene.json").read_text()
    assert "weights" not in doc["options"]["network"] and doc["options"]["oracle"] == str(folder)
    assert doc["model"]["weights"] == "oracle"
    corruption = doc["model"]["corruption"]  # OracleCorruption's defaults
    assert corruption["scale_sigma"] == 0.2 and corruption["noise_rel"] == 0.01
    assert corruption["outlier_fraction"] == 0.01 and corruption["outlier_log_range"] == [0.2, 0.7]
    assert set(doc["timing"]) == {"predict", "flow", "align", "write", "total"}
    depth = np.load(out / "depth" / "000000.npy")
    assert depth.shape == (96, 128) and np.isfinite(depth).all()
    summary = capsys.readouterr().out.strip().splitlines()[-1]
    assert summary.startswith("recon4d reconstruct: 8 frames, ")
    assert f"{doc['result']['points']} points" in summary
    assert leftovers(tmp_path, "run") == []


def test_known_focal_is_kept(synth, tmp_path):
    folder, scene = synth
    focal = float(scene.intrinsics[0, 0, 0]) * 1.1  # deliberately not the truth
    result = reconstruct(tmp_path / "f", oracle=folder, progress=False,
                         options=ReconstructOptions(NetworkOptions(graph="swin-1"),
                                                    alignment=AlignOptions(niter=2, focal=focal),
                                                    outputs=OutputOptions(("intrinsics",))))
    np.testing.assert_allclose(result.scene.intrinsics[:, 0, 0], focal, rtol=1e-9)
    np.testing.assert_allclose(result.scene.intrinsics[:, 1, 1], focal, rtol=1e-9)
    assert "intrinsics.json" in result.files


def test_known_calibration_is_kept(synth, tmp_path):
    folder, scene = synth
    k = scene.intrinsics[0].copy()
    (tmp_path / "calib.json").write_text(json.dumps({"K": k.tolist()}))
    out = tmp_path / "c"
    assert main(["reconstruct", "--oracle", str(folder), "--out", str(out), "--calib",
                 str(tmp_path / "calib.json"), "--formats", "trajectory,intrinsics",
                 "--graph", "swin-1", "--niter", "2"]) == 0
    doc = json.loads((out / "scene.json").read_text())
    assert doc["options"]["alignment"]["calib"] == str(tmp_path / "calib.json")
    assert doc["files"] == ["intrinsics.json", "trajectory_tum.txt", "scene.json"]
    frames = json.loads((out / "intrinsics.json").read_text())["frames"]
    np.testing.assert_allclose([f["K"] for f in frames], np.repeat(k[None], 8, 0), atol=1e-9)


def test_hand_built_npz_without_images(synth, tmp_path):
    """The originals' layout, no images: aligned like the oracle, points grey."""
    _, scene = synth
    edges = make_pairs(8, "complete", symmetrize=True)
    np.savez(tmp_path / "preds.npz", **oracle_arrays(scene, edges, with_images=False))
    result = reconstruct(tmp_path / "out", predictions=tmp_path / "preds.npz", progress=False)
    assert (result.scene.images == 128).all() and result.scene.images.shape == (8, 96, 128, 3)
    metrics = pose_metrics(result.scene.poses_c2w, scene.poses_c2w)
    assert metrics["ate"] < 0.01 * path_length(scene.poses_c2w)
    written = read_tum(tmp_path / "out" / "trajectory_tum.txt")
    np.testing.assert_array_equal(written.timestamps, np.arange(8))


def test_predictions_round_trip_from_infer(tmp_path):
    """`infer` then `reconstruct --predictions` equals `reconstruct` on the images directly."""
    write_images(tmp_path / "imgs", [(64, 48)] * 3)
    common = ["--weights", str(TINY), "--size", "64", "--device", "cpu"]
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(tmp_path / "inf"), *common]) == 0
    static = ["--motion", "none"]  # numbered images would take the dynamic path
    assert main(["reconstruct", "--predictions", str(tmp_path / "inf" / "predictions.npz"),
                 "--out", str(tmp_path / "a"), "--device", "cpu", *static]) == 0
    assert main(["reconstruct", str(tmp_path / "imgs"), "--out", str(tmp_path / "b"),
                 *common, *static]) == 0
    traj_a = read_tum(tmp_path / "a" / "trajectory_tum.txt")
    traj_b = read_tum(tmp_path / "b" / "trajectory_tum.txt")
    assert len(traj_a) == 3 and np.isfinite(traj_a.poses).all()
    np.testing.assert_allclose(traj_a.poses, traj_b.poses, atol=1e-5)
    for run in ("a", "b"):
        for i in range(3):
            depth = np.load(tmp_path / run / "depth" / f"{i:06d}.npy")
            assert depth.shape == (48, 64) and np.isfinite(depth).all()
    doc = json.loads((tmp_path / "b" / "scene.json").read_text())
    assert doc["model"]["weights"] == str(TINY) and doc["inputs"]["size"] == 64


def test_tiny_checkpoint_original_resolution_geometry(tmp_path):
    """Frames 128x96 -> 64x48 model inputs: scene records sizes and crops; --focal is scaled."""
    write_images(tmp_path / "imgs", [(128, 96)] * 3)
    result = reconstruct(tmp_path / "out", tmp_path / "imgs", progress=False,
                         options=ReconstructOptions(
                             NetworkOptions(weights=str(TINY), size=64, device="cpu"),
                             alignment=AlignOptions(focal=100.0)))
    np.testing.assert_array_equal(result.scene.original_sizes, [[128, 96]] * 3)
    np.testing.assert_array_equal(result.scene.crops, [[0, 0, 64, 48]] * 3)
    np.testing.assert_allclose(result.scene.intrinsics[:, 0, 0], 50.0)
    assert result.scene.image_names == ["img_0.png", "img_1.png", "img_2.png"]
    for i in range(3):
        depth = np.load(tmp_path / "out" / "depth" / f"{i:06d}.npy")
        assert depth.shape == (48, 64) and np.isfinite(depth).all()
    assert len(read_tum(tmp_path / "out" / "trajectory_tum.txt")) == 3


def test_intrinsics_to_model_resolution_by_hand():
    # 1024x768 at size 512: resize to 512x384, no crop
    k = np.array([[800.0, 0, 511.5], [0, 800, 383.5], [0, 0, 1]])
    out = intrinsics_at_model(k, np.array([[1024, 768]]), np.array([[0, 0, 512, 384]]), 1)
    np.testing.assert_allclose(out[0], [[400, 0, 255.5], [0, 400, 191.5], [0, 0, 1]])
    # 640x640 at size 512: resize to 512x512, crop rows 64..448 -> centre stays the centre
    out = intrinsics_at_model(np.array([[500.0, 0, 319.5], [0, 500, 319.5], [0, 0, 1]]),
                              np.array([[640, 640]]), np.array([[0, 64, 512, 512]]), 1)
    np.testing.assert_allclose(out[0], [[400, 0, 255.5], [0, 400, 191.5], [0, 0, 1]])
    np.testing.assert_allclose(known_focals(800.0, np.array([[1024, 768]]),
                                            np.array([[0, 0, 512, 384]]), 1), [400.0])
    np.testing.assert_allclose(intrinsics_at_model(k, None, None, 2), [k, k])


def test_calibration_file_forms(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"fx": 500, "fy": 510, "cx": 320, "cy": 240}))
    np.testing.assert_array_equal(read_calibration(path),
                                  [[500, 0, 320], [0, 510, 240], [0, 0, 1]])
    path.write_text(json.dumps([[1, 0, 2], [0, 1, 3], [0, 0, 1]]))
    assert read_calibration(path)[1, 2] == 3
    path.write_text(json.dumps({"K": [[1, 2], [3, 4]]}))
    with pytest.raises(InputError, match="c.json: expected"):
        read_calibration(path)


def run_failing(tmp_path, capsys, args: list[str], message: str) -> None:
    """The command exits with 2, prints `message`, and leaves no output folder behind."""
    out = tmp_path / "out"
    assert main(["reconstruct", *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists() and leftovers(tmp_path, "out") == []


def test_single_image_fails_cleanly(tmp_path, capsys):
    write_images(tmp_path / "one", [(64, 48)])
    run_failing(tmp_path, capsys, [str(tmp_path / "one"), "--weights", str(TINY)],
                "1 frame(s) found, at least 2 needed")


def test_images_of_different_sizes_fail_cleanly(tmp_path, capsys):
    write_images(tmp_path / "mixed", [(64, 48), (48, 64), (64, 48)])
    run_failing(tmp_path, capsys, [str(tmp_path / "mixed"), "--weights", str(TINY), "--size",
                                   "64"], "images of different sizes: img_1.png")


def test_disconnected_graph_fails_cleanly(synth, tmp_path, capsys):
    _, scene = synth
    edges = np.array([[0, 1], [1, 0], [2, 3], [3, 2]])
    np.savez(tmp_path / "split.npz", **oracle_arrays(scene, edges, with_images=True))
    run_failing(tmp_path, capsys, ["--predictions", str(tmp_path / "split.npz"), "--motion",
                                   "none"], "disconnected")


def test_conflicting_inputs_and_bad_options_fail_cleanly(synth, tmp_path, capsys):
    folder, _ = synth
    run_failing(tmp_path, capsys, [str(folder), "--oracle", str(folder)], "exactly one of")
    run_failing(tmp_path, capsys, ["--oracle", str(folder), "--formats", "nope"],
                "unknown output format(s) 'nope'")
    run_failing(tmp_path, capsys, ["--oracle", str(folder), "--focal", "500", "--calib",
                                   "k.json"], "either --focal or --calib")
    # checked before the (missing) predictions are even read
    run_failing(tmp_path, capsys, ["--predictions", str(tmp_path / "absent.npz"), "--focal",
                                   "-5"], "--focal must be a positive number, got -5.0")


def test_never_replaces_its_own_input_or_another_commands_output(synth, tmp_path, capsys):
    """--out pointing at the synthetic scene being read (a `recon4d synth` folder) is refused."""
    folder, _ = synth
    before = sorted(p.name for p in folder.rglob("*"))
    assert main(["reconstruct", "--oracle", str(folder), "--out", str(folder)]) == 2
    assert "is the output of `recon4d synth`" in capsys.readouterr().err
    assert sorted(p.name for p in folder.rglob("*")) == before
