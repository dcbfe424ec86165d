"""Loader geometry (model pixel <-> original pixel) and mask handling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from recon4d.errors import InputError
from recon4d.io.images import resize_and_crop
from recon4d.matching.coords import loader_geometry
from recon4d.matching.masks import (
    erode_mask,
    mask_to_model,
    mask_to_original,
    paint_background,
    read_mask,
)
from recon4d.matching.visualize import draw_matches


@pytest.mark.parametrize("width,height,size,model_wh", [
    (4032, 3024, 512, (512, 384)), (3024, 4032, 512, (384, 512)), (1920, 1080, 512, (512, 288)),
    (3000, 2000, 512, (512, 336)), (300, 200, 512, (512, 336)), (1000, 1000, 512, (512, 384)),
    (1001, 449, 512, (512, 224)), (513, 100, 512, (512, 96)), (640, 480, 224, (224, 224)),
])
def test_model_shape_matches_the_spec_examples(width, height, size, model_wh):
    assert loader_geometry(width, height, size).model_shape == model_wh[::-1]


@pytest.mark.parametrize("width,height,size", [(1000, 700, 512), (300, 200, 512),
                                               (640, 480, 224), (1001, 449, 512), (700, 700, 512)])
def test_to_original_reads_back_a_coordinate_ramp(width, height, size):
    """Resample images whose values are their own x (and y) coordinates with the loader: each
    model pixel then holds the original coordinate it came from (interpolating filters keep
    linear ramps)."""
    xs = np.tile(np.arange(width, dtype=np.float32), (height, 1))
    ys = np.tile(np.arange(height, dtype=np.float32)[:, None], (1, width))
    ramp_x = np.asarray(resize_and_crop(Image.fromarray(xs, "F"), size))
    ramp_y = np.asarray(resize_and_crop(Image.fromarray(ys, "F"), size))
    geom = loader_geometry(width, height, size)
    assert ramp_x.shape == geom.model_shape
    h, w = ramp_x.shape
    yy, xx = np.mgrid[8:h - 8, 8:w - 8]  # away from the edges, where filters clamp
    model_xy = np.stack([xx.ravel(), yy.ravel()], 1)
    orig = geom.to_original(model_xy)
    np.testing.assert_allclose(orig[:, 0], ramp_x[8:h - 8, 8:w - 8].ravel(), atol=0.02)
    np.testing.assert_allclose(orig[:, 1], ramp_y[8:h - 8, 8:w - 8].ravel(), atol=0.02)
    np.testing.assert_allclose(geom.to_model(orig), model_xy, atol=1e-9)


def test_mask_to_model_follows_the_geometry(tmp_path):
    width, height = 900, 640
    mask = np.zeros((height, width), dtype=bool)
    mask[100:500, 200:650] = True
    geom = loader_geometry(width, height)
    out = mask_to_model(mask, geom).numpy()
    assert out.shape == geom.model_shape
    h, w = out.shape
    yy, xx = np.mgrid[0:h, 0:w]
    orig = geom.to_original(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(h, w, 2)
    # distance (in original px) from the rectangle's edges; the decision may differ only near them
    ox, oy = orig[..., 0], orig[..., 1]
    inside = (ox > 199.5) & (ox < 649.5) & (oy > 99.5) & (oy < 499.5)
    edge = np.minimum.reduce([np.abs(ox - 199.5), np.abs(ox - 649.5),
                              np.abs(oy - 99.5), np.abs(oy - 499.5)])
    scale = width / geom.resized[0]
    far = edge > scale
    assert far.sum() > 0.9 * far.size
    np.testing.assert_array_equal(out[far], inside[far])
    # a mask already at the model resolution passes through unchanged
    assert torch.equal(mask_to_model(out, geom), torch.from_numpy(out))


def test_mask_errors_name_the_file(tmp_path):
    geom = loader_geometry(640, 480)
    bad = tmp_path / "wrong_size.png"
    Image.fromarray(np.full((100, 100), 255, np.uint8)).save(bad)
    with pytest.raises(InputError, match="wrong_size.png.*640x480.*512x384"):
        mask_to_model(read_mask(bad), geom, str(bad))
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((480, 640), np.uint8)).save(empty)
    with pytest.raises(InputError, match="empty.png selects no pixel"):
        mask_to_model(read_mask(empty), geom, str(empty))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"not a png")
    with pytest.raises(InputError, match="corrupt.png cannot be read"):
        read_mask(corrupt)
    with pytest.raises(InputError, match="missing.png does not exist"):
        read_mask(tmp_path / "missing.png")
    with pytest.raises(InputError, match="2-D"):
        read_mask(np.zeros((2, 3, 4)))


def test_read_mask_formats(tmp_path):
    grey = np.array([[0, 127, 128], [255, 10, 200]], np.uint8)
    Image.fromarray(grey).save(tmp_path / "m.png")
    Image.fromarray(np.stack([grey] * 3, -1)).save(tmp_path / "rgb.png")
    np.save(tmp_path / "m.npy", grey.astype(np.float32))
    expected = np.array([[False, False, True], [True, False, True]])
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), expected)
    np.testing.assert_array_equal(read_mask(tmp_path / "rgb.png"), expected)
    np.testing.assert_array_equal(read_mask(tmp_path / "m.npy"), grey > 0)
    np.testing.assert_array_equal(read_mask(torch.from_numpy(expected)), expected)


def test_erode_mask_by_hand():
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:7, 1:6] = True  # 5x5 square
    mask[0, 7] = True  # a border pixel next to background still erodes
    eroded = erode_mask(mask, 1)
    expected = torch.zeros(8, 8, dtype=torch.bool)
    expected[3:6, 2:5] = True
    assert torch.equal(eroded, expected)
    full = torch.ones(4, 4, dtype=torch.bool)
    assert torch.equal(erode_mask(full, 2), full)  # the image border does not erode
    assert torch.equal(erode_mask(mask, 0), mask)


def test_paint_background():
    img = torch.rand(1, 3, 4, 5) * 2 - 1
    mask = torch.zeros(4, 5, dtype=torch.bool)
    mask[1:3, 2:4] = True
    out = paint_background(img, mask, "white")
    assert torch.equal(out[..., mask], img[..., mask])
    assert (out[..., ~mask] == 1.0).all()
    assert (paint_background(img, mask, "black")[..., ~mask] == -1.0).all()
    with pytest.raises(InputError, match="colour"):
        paint_background(img, mask, "purple")


def test_mask_to_original_round_trip():
    geom = loader_geometry(900, 640)
    h, w = geom.model_shape
    mask = torch.zeros(h, w, dtype=torch.bool)
    mask[50:200, 100:300] = True
    mask[220:260, 20:60] = True
    orig = mask_to_original(mask, geom)
    assert orig.shape == (640, 900)
    back = mask_to_model(orig, geom)
    # equal away from the blobs' edges (one model pixel of resampling either way)
    edge = erode_mask(~mask, 1) | erode_mask(mask, 1)
    assert torch.equal(back[edge], mask[edge])
    # rows the loader cropped away (900x640 -> 512x364 -> 6 rows off top and bottom) are empty:
    # source row y lands in model row (y + 0.5) * 364 / 640 - 6.5, inside [-0.5, 351.5) exactly
    # for y = 11..628
    mask[:, :] = True
    cropped = np.ones(640, bool)
    cropped[11:629] = False
    full = mask_to_original(mask, geom)
    assert not full[cropped].any() and full[~cropped].all()


def test_draw_matches_by_hand():
    img = np.full((40, 60, 3), 90, np.uint8)
    dim = np.ones((40, 60), bool)
    dim[:, :10] = False
    out = draw_matches(img, img, np.array([[30.0, 20.0]]), np.array([[40.0, 5.0]]), n_viz=5,
                       height=40, dim1=dim)
    assert out.shape == (40, 120, 3)
    assert (out[20, 30] != 90).any() and (out[5, 100] != 90).any()  # both endpoints drawn
    assert (out[35, 5] == 30).all()  # outside the mask of image 1: darkened
    assert (out[35, 65] == 90).all()  # image 2 has no mask
