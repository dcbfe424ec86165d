"""Matching pipeline and `recon4d match` on real files with the tiny random-weight MASt3R
checkpoint: structure, coordinates, masks, outputs and errors (random weights: no quality)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import recon4d.cli
from recon4d.errors import InputError, OptionError, Recon4dError
from recon4d.io.images import upright_size
from recon4d.matching.coords import loader_geometry
from recon4d.matching.masks import mask_to_model, read_mask
from recon4d.matching.pipeline import MatchOptions, match_pair
from recon4d.models import load_model
from tests.conftest import GOLDEN_DIR

CKPT = GOLDEN_DIR / "checkpoints" / "tiny_mast3r_a.pth"
IMAGES = GOLDEN_DIR / "images"
PORTRAIT = IMAGES / "exif_orient6_320x200.jpg"  # stored 320x200, EXIF-rotated to 200x320
WIDE = IMAGES / "wide_641x353.png"
SIZE = 64


@pytest.fixture(scope="module")
def model():
    return load_model(CKPT)


RECTS = ((40, 280, 30, 170), (60, 300, 100, 500))  # (top, bottom, left, right), original px


@pytest.fixture()
def masks(tmp_path):
    """Foreground rectangles RECTS at the original (upright) size of PORTRAIT and WIDE."""
    paths = []
    for name, (h, w), (top, bottom, left, right) in zip(
            ("m1.png", "m2.png"), ((320, 200), (353, 641)), RECTS, strict=True):
        m = np.zeros((h, w), np.uint8)
        m[top:bottom, left:right] = 255
        Image.fromarray(m).save(tmp_path / name)
        paths.append(tmp_path / name)
    return paths


def test_match_pair_structure_and_coordinates(model, masks):
    assert upright_size(PORTRAIT) == (200, 320)
    options = MatchOptions(max_3d_error=None)  # random weights: 3D points are meaningless
    pm = match_pair(model, PORTRAIT, WIDE, masks[0], masks[1], options, size=SIZE)
    assert len(pm) > 0
    for xy, orig, mask_path, image, rect in ((pm.xy1, pm.xy1_orig, masks[0], PORTRAIT, RECTS[0]),
                                             (pm.xy2, pm.xy2_orig, masks[1], WIDE, RECTS[1])):
        geom = loader_geometry(*upright_size(image), size=SIZE)
        assert mask_to_model(read_mask(mask_path), geom)[xy[:, 1], xy[:, 0]].all()
        # in original pixels the matches lie in the rectangle, up to one model pixel
        pad = geom.original[0] / geom.resized[0]
        top, bottom, left, right = rect
        assert (orig[:, 0] >= left - pad).all() and (orig[:, 0] <= right - 1 + pad).all()
        assert (orig[:, 1] >= top - pad).all() and (orig[:, 1] <= bottom - 1 + pad).all()
    assert pm.two_view is not None and pm.two_view.pose.shape == (4, 4)
    assert pm.two_view.pts3d.shape == (len(pm), 3)
    assert (pm.conf >= 0).all() and (pm.similarity <= 1 + 1e-5).all()


def test_pipeline_errors(model, masks, tmp_path):
    bad = tmp_path / "bad_mask.png"
    Image.fromarray(np.full((10, 10), 255, np.uint8)).save(bad)
    with pytest.raises(InputError, match="bad_mask.png"):
        match_pair(model, PORTRAIT, WIDE, bad, None, size=SIZE)
    with pytest.raises(InputError, match="not_an_image.txt"):
        match_pair(model, IMAGES / "not_an_image.txt", WIDE, size=SIZE)
    dust3r = load_model(GOLDEN_DIR / "checkpoints" / "tiny_dust3r_linear.pth")
    with pytest.raises(Recon4dError, match="MASt3R"):
        match_pair(dust3r, PORTRAIT, WIDE, size=SIZE)


@pytest.fixture()
def cli():
    """The `recon4d` command line entry point."""
    return recon4d.cli.main


def test_cli_two_images_with_masks(cli, masks, tmp_path):
    out = tmp_path / "out"
    rc = cli(["match", str(PORTRAIT), str(WIDE), "--mask1", str(masks[0]), "--mask2",
              str(masks[1]), "--out", str(out), "--weights", str(CKPT), "--size", str(SIZE),
              "--device", "cpu", "--n-viz", "5", "--max-3d-error", "off"])
    assert rc == 0
    scene = json.loads((out / "scene.json").read_text())
    assert scene["command"] == "match"
    assert set(scene["files"]) == {"matches_0_1.npz", "matches_0_1.png", "scene.json"}
    with np.load(out / "matches_0_1.npz") as npz:
        assert npz["xy1"].shape == npz["xy2"].shape == (scene["pairs"][0]["matches"], 2)
        assert tuple(npz["image_size1"]) == (200, 320) and tuple(npz["image_size2"]) == (641, 353)
        assert npz["pose"].shape == (4, 4) and npz["pts3d"].shape == (len(npz["xy1"]), 3)
    with Image.open(out / "matches_0_1.png") as png:
        assert png.mode == "RGB" and png.height == 512


def test_cli_bad_mask_leaves_no_output(cli, tmp_path, capsys):
    bad = tmp_path / "wrong.png"
    Image.fromarray(np.full((7, 9), 255, np.uint8)).save(bad)
    out = tmp_path / "out"
    rc = cli(["match", str(PORTRAIT), str(WIDE), "--mask1", str(bad), "--out", str(out),
              "--weights", str(CKPT), "--size", str(SIZE), "--device", "cpu"])
    assert rc == 2
    assert "wrong.png is 9x7 pixels" in capsys.readouterr().err
    assert not out.exists() and list(tmp_path.iterdir()) == [bad]


def test_cli_batch_with_mask_dir(cli, tmp_path):
    images = tmp_path / "images"
    mask_dir = tmp_path / "masks"
    images.mkdir()
    mask_dir.mkdir()
    for k, src in enumerate((PORTRAIT, WIDE, IMAGES / "tall_353x641.png")):
        with Image.open(src) as im:
            im.save(images / f"frame_{k}{src.suffix}", exif=im.getexif())
            w, h = upright_size(images / f"frame_{k}{src.suffix}")
        mask = np.zeros((h, w), bool)
        mask[h // 4:3 * h // 4, w // 4:3 * w // 4] = True
        np.save(mask_dir / f"frame_{k}.npy", mask)
    out = tmp_path / "out"
    rc = cli(["match", str(images), "--mask-dir", str(mask_dir), "--graph", "complete",
              "--out", str(out), "--weights", str(CKPT), "--size", str(SIZE), "--device", "cpu",
              "--n-viz", "0"])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "matches_0_1.npz", "matches_0_2.npz", "matches_1_2.npz", "scene.json"]
    (mask_dir / "frame_2.npy").unlink()
    rc = cli(["match", str(images), "--mask-dir", str(mask_dir), "--out", str(tmp_path / "o2"),
              "--weights", str(CKPT), "--size", str(SIZE), "--device", "cpu"])
    assert rc == 2 and not (tmp_path / "o2").exists()


def test_cli_one_mask_is_recorded_as_null_and_missing_gpu_is_refused(cli, masks, tmp_path,
                                                                      capsys):
    out = tmp_path / "out"
    rc = cli(["match", str(PORTRAIT), str(WIDE), "--mask1", str(masks[0]), "--out", str(out),
              "--weights", str(CKPT), "--size", str(SIZE), "--device", "cpu", "--n-viz", "0"])
    assert rc == 0
    assert json.loads((out / "scene.json").read_text())["inputs"]["masks"] == [str(masks[0]),
                                                                                None]
    if not torch.cuda.is_available():
        rc = cli(["match", str(PORTRAIT), str(WIDE), "--out", str(tmp_path / "gpu"),
                  "--weights", str(CKPT), "--device", "cuda"])
        assert rc == 2 and "no CUDA GPU" in capsys.readouterr().err
        assert not (tmp_path / "gpu").exists()


@pytest.mark.parametrize("options, message", [
    (dict(dist="cosine"), "dist: unknown value 'cosine'; choose from dot, l2"),
    (dict(conf_mode="mean"), "conf_mode: unknown value 'mean'"),
    (dict(mask_mode="pre"), "--mask-mode: unknown value 'pre'; choose from search, post"),
    (dict(premask="pink"), "--premask: unknown value 'pink'"),
    (dict(subsample=0), "--subsample must be an integer >= 1, got 0"),
])
def test_bad_match_options_are_refused_before_any_work(options, message):
    with pytest.raises(OptionError, match=message):
        MatchOptions(**options)
