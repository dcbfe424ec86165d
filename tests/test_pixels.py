"""Pixel-centre and intrinsics maps between model input and source images (recon4d.io.pixels)."""

from __future__ import annotations

import numpy as np

from recon4d.io.images import crop_geometry
from recon4d.io.pixels import (
    crop_offset_scale,
    intrinsics_to_model,
    intrinsics_to_source,
    model_to_source,
    resize_pixels,
    source_to_model,
)


def test_hand_computed_pixel_centres():
    # halving: model pixel 0 covers source pixels 0 and 1, so its centre is at 0.5
    assert resize_pixels(np.array([0.0, 0.0]), 2.0).tolist() == [0.5, 0.5]
    # 1024x768 -> 512x384, crop at (0, 0): pixel (10, 3) -> (20.5, 6.5)
    assert model_to_source([10, 3], np.zeros(2), np.array([2.0, 2.0])).tolist() == [20.5, 6.5]
    # crop offset (16, 8) is added in resized pixels before scaling back
    xy = model_to_source([0, 0], np.array([16.0, 8.0]), np.array([2.0, 2.0]))
    assert xy.tolist() == [32.5, 16.5]


def test_round_trip_on_loader_crops():
    rng = np.random.default_rng(0)
    sizes = np.array([[1920, 1080], [640, 480], [500, 500], [300, 1000]])
    crops = []
    for w, h in sizes:
        geo = crop_geometry(int(w), int(h), 512)
        crops.append((*geo.box[:2], *geo.resized))
    offset, scale = crop_offset_scale(sizes, np.array(crops))
    xy = rng.uniform(0, 500, size=(len(sizes), 2))
    back = source_to_model(model_to_source(xy, offset, scale), offset, scale)
    np.testing.assert_allclose(back, xy, atol=1e-9)


def test_intrinsics_follow_the_pixel_map():
    """A 3D point projected with K_model lands, mapped to the source, where K_source puts it."""
    rng = np.random.default_rng(1)
    k_model = np.array([[400.0, 0.5, 255.5], [0, 410.0, 191.5], [0, 0, 1]])
    offset, scale = np.array([[16.0, 0.0]]), np.array([[1920 / 544, 1080 / 306]])
    k_source = intrinsics_to_source(k_model, offset, scale)
    assert k_source.shape == (1, 3, 3)
    points = rng.uniform([-1, -1, 2], [1, 1, 5], size=(20, 3))

    def project(k):
        uvw = points @ k.T
        return uvw[:, :2] / uvw[:, 2:]

    np.testing.assert_allclose(project(k_source[0]), model_to_source(project(k_model), offset,
                                                                     scale), atol=1e-9)
    np.testing.assert_allclose(intrinsics_to_model(k_source, offset, scale)[0], k_model,
                               atol=1e-12)
