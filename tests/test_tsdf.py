"""TSDF depth refinement on a static synthetic scene: noisy depths move towards the ground
truth, true depths stay, the tiles bound the working set whatever the number of views."""

from __future__ import annotations

import importlib
import json

import numpy as np
import pytest
import torch

from recon4d.align import tsdf
from recon4d.align.tsdf import refine_depths_tsdf, refine_scene_tsdf
from recon4d.errors import Recon4dError
from recon4d.scene import Scene
from recon4d.synthetic import generate_scene

TAU = 0.1  # truncation, metres; the room is 2.5-10 m deep
NOISE = 0.03  # depth noise, metres
SAMPLES = 31  # grid offsets -2 tau .. tau in steps of tau / 10 (0 included)


@pytest.fixture(scope="module")
def scene():
    return generate_scene(frames=3, width=96, height=64, movers=0, seed=3)


@pytest.fixture(scope="module")
def noisy(scene):
    return with_noise(scene.depth)


@pytest.fixture(scope="module")
def small():
    """Two frames of 48 x 32 pixels for the checks that do not measure accuracy."""
    return generate_scene(frames=2, width=48, height=32, movers=0, seed=3)


def with_noise(depth: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (depth + rng.normal(0, NOISE, depth.shape)).astype(np.float32)


def refine(depths, scene, **kwargs):
    return refine_depths_tsdf(depths, scene.intrinsics, scene.poses_c2w, None, TAU,
                              samples=SAMPLES, **kwargs)


def smooth_pixels(depth: np.ndarray) -> np.ndarray:
    """Pixels whose true depth changes by < 0.1 m to the next pixel (not edges, not grazing)."""
    gy, gx = np.gradient(depth, axis=(1, 2))
    return np.hypot(gx, gy) < 0.1


def test_noisy_depths_move_towards_the_truth(scene, noisy):
    out = refine(noisy, scene)
    before, after = np.abs(noisy - scene.depth), np.abs(out - scene.depth)
    assert out.dtype == np.float32 and out.shape == noisy.shape
    assert np.median(after) < 0.8 * np.median(before)  # measured 0.0148 vs 0.0204
    assert after.mean() < 0.9 * before.mean()  # measured 0.0202 vs 0.0240
    smooth = smooth_pixels(scene.depth)
    assert smooth.mean() > 0.4
    assert after[smooth].mean() < 0.75 * before[smooth].mean()  # measured 0.0153 vs 0.0242


def test_true_depths_are_kept(scene):
    change = np.abs(refine(scene.depth, scene) - scene.depth)
    assert np.median(change) < 0.05 * TAU  # measured 0: at least half stay exactly
    assert np.quantile(change, 0.9) < 0.5 * TAU  # measured 0.3 tau (three grid steps)


def test_pixels_without_depth_stay_and_tensors_come_back_as_tensors(small):
    holes = with_noise(small.depth)
    holes[:, :8] = 0.0
    out = refine(torch.from_numpy(holes), small)
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32
    assert (out[:, :8] == 0).all()
    assert not torch.equal(out[:, 8:], torch.from_numpy(holes[:, 8:]))


def test_scene_refinement_replaces_only_the_depths(small):
    noisy = with_noise(small.depth)
    before = Scene(images=small.rgb, depths=noisy, confs=np.ones_like(noisy),
                   intrinsics=small.intrinsics, poses_c2w=small.poses_c2w,
                   masks=np.ones(noisy.shape, bool), image_names=["a.png", "b.png"])
    after = refine_scene_tsdf(before, TAU, samples=SAMPLES)
    np.testing.assert_array_equal(after.depths, refine(noisy, small))  # equal confidences
    assert after.images is before.images and after.poses_c2w is before.poses_c2w


def test_tiles_change_nothing_and_do_not_grow_with_the_views(scene, monkeypatch):
    sizes: list[int] = []
    original = tsdf._refine_tile

    def recording(depth, weight, k, to_cams, rays, start, offsets, tau):
        sizes.append(len(rays) * len(offsets))
        return original(depth, weight, k, to_cams, rays, start, offsets, tau)

    monkeypatch.setattr(tsdf, "_refine_tile", recording)
    crop = with_noise(scene.depth[:, 20:36, 30:54])  # 16 x 24 pixels: the test stays fast
    budget = 100 * SAMPLES + 3  # 100 pixels per tile
    for views in (2, 3):
        sizes.clear()
        k = scene.intrinsics[:views].copy()
        k[:, :2, 2] -= (30, 20)  # the crop's principal point
        args = (crop[:views], k, scene.poses_c2w[:views], None, TAU)
        tiled = refine_depths_tsdf(*args, samples=SAMPLES, budget=budget)
        assert max(sizes) == 100 * SAMPLES and len(sizes) == views * 4  # 384 pixels a view
        whole = refine_depths_tsdf(*args, samples=SAMPLES)
        np.testing.assert_allclose(tiled, whole, rtol=0, atol=1e-6)


def test_reference_sampling_is_seeded(small):
    noisy = with_noise(small.depth)
    first = refine(noisy, small, sampling="normal", seed=5)
    np.testing.assert_array_equal(first, refine(noisy, small, sampling="normal", seed=5))
    assert not np.array_equal(first, refine(noisy, small, sampling="normal", seed=6))
    assert not np.array_equal(first, refine(noisy, small))  # the grid is another sampling


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_matches_cpu(small):
    noisy = with_noise(small.depth)
    cpu = refine(noisy, small)
    gpu = refine(torch.from_numpy(noisy).cuda(), small)
    assert gpu.is_cuda
    assert np.mean(np.abs(gpu.cpu().numpy() - cpu) > 1e-4) < 0.01


@pytest.mark.parametrize("kwargs, message", [
    (dict(threshold=0.0), "threshold must be > 0"),
    (dict(intrinsics=np.zeros((3, 3, 3))), r"intrinsics must have shape \(2, 3, 3\)"),
    (dict(confs=np.ones((3, 4, 4))), "confidences must have shape"),
    (dict(sampling="uniform"), "unknown sampling 'uniform'; valid: grid, normal"),
    (dict(depths=np.ones((4, 4))), r"depths must be \(N, H, W\)"),
])
def test_bad_arguments_are_clear_errors(small, kwargs, message):
    args = dict(depths=small.depth, intrinsics=small.intrinsics, poses_c2w=small.poses_c2w,
                confs=None, threshold=TAU)
    options = {k: kwargs.pop(k) for k in list(kwargs) if k not in args}
    with pytest.raises(Recon4dError, match=message):
        refine_depths_tsdf(**{**args, **kwargs}, **options)


def test_confident_views_outvote_the_others(scene, noisy):
    depths = noisy.copy()
    depths[1:] = scene.depth[1:] + TAU / 2  # the other views see every surface 5 cm too far
    confs = np.ones_like(depths)
    equal = refine_depths_tsdf(depths, scene.intrinsics, scene.poses_c2w, confs, TAU,
                               samples=SAMPLES)
    confs[0] = 10.0  # view 0 is e^9 times more confident
    trusting = refine_depths_tsdf(depths, scene.intrinsics, scene.poses_c2w, confs, TAU,
                                  samples=SAMPLES)
    pulled = np.median(equal[0] - scene.depth[0])
    kept = np.median(trusting[0] - scene.depth[0])
    # measured: pulled 3.4 cm towards the others, kept within 0.1 cm of the truth
    assert pulled > 0.3 * TAU / 2 and abs(kept) < 0.1 * TAU / 2, (pulled, kept)


def test_reconstruct_refines_the_aligned_depths_when_asked(tmp_path, monkeypatch):
    from recon4d.cli import main

    job = importlib.import_module("recon4d.pipeline.reconstruct")  # the module, not the function

    refined = []

    def spy(scene, threshold, **kwargs):
        refined.append((threshold, job_refine(scene, threshold, **kwargs)))
        return refined[-1][1]

    job_refine = job.refine_scene_tsdf
    monkeypatch.setattr(job, "refine_scene_tsdf", spy)
    scene_dir, out = tmp_path / "scene", tmp_path / "rec"
    assert main(["synth", str(scene_dir), "--frames", "3", "--width", "64", "--height", "48",
                 "--movers", "0"]) == 0
    assert main(["reconstruct", "--oracle", str(scene_dir), "--out", str(out), "--motion",
                 "none", "--tsdf", "0.2", "--formats", "depth"]) == 0
    (threshold, scene), = refined
    assert threshold == 0.2
    written = np.stack([np.load(p) for p in sorted((out / "depth").glob("*.npy"))])
    np.testing.assert_array_equal(written, scene.depths)
    doc = json.loads((out / "scene.json").read_text())
    assert doc["options"]["alignment"]["tsdf"] == 0.2
