"""Picture of a subset of matches: the two images side by side, joined by coloured lines."""

from __future__ import annotations

import colorsys
import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from recon4d.io.atomic import atomic_path
from recon4d.io.pixels import resize_pixels
from recon4d.matching.masks import mask_to_original
from recon4d.matching.pipeline import PairMatches, PreparedImage


def load_rgb(source: str | os.PathLike | np.ndarray | Image.Image) -> np.ndarray:
    """An input image upright (EXIF applied) as uint8 (H, W, 3), the frame matches refer to."""
    if isinstance(source, np.ndarray):
        return np.asarray(Image.fromarray(source).convert("RGB"))
    if isinstance(source, Image.Image):
        return np.asarray(ImageOps.exif_transpose(source).convert("RGB"))
    with Image.open(Path(source)) as im:
        return np.asarray(ImageOps.exif_transpose(im).convert("RGB"))


def draw_matches(img1: np.ndarray, img2: np.ndarray, xy1: np.ndarray, xy2: np.ndarray,
                 n_viz: int = 20, height: int = 512, dim1: np.ndarray | None = None,
                 dim2: np.ndarray | None = None) -> np.ndarray:
    """Side-by-side RGB picture of `n_viz` matches evenly spread over the list.

    Both images are scaled to `height` rows; `dim1`/`dim2` (bool masks of the images) darken the
    pixels outside them, so a reader sees where matching was allowed.
    """
    panels, scales = [], []
    for img, dim in ((img1, dim1), (img2, dim2)):
        img = img.copy()
        if dim is not None:
            img[~dim] //= 3
        scale = height / img.shape[0]
        size = (max(1, round(img.shape[1] * scale)), height)
        panels.append(Image.fromarray(img).resize(size, Image.Resampling.BILINEAR))
        scales.append(scale)
    canvas = Image.new("RGB", (panels[0].width + panels[1].width, height))
    canvas.paste(panels[0], (0, 0))
    canvas.paste(panels[1], (panels[0].width, 0))
    count = len(xy1)
    if count and n_viz > 0:
        pick = np.unique(np.round(np.linspace(0, count - 1, min(n_viz, count))).astype(int))
        draw = ImageDraw.Draw(canvas)
        for rank, k in enumerate(pick):
            hue = rank / max(len(pick) - 1, 1) * 0.8
            colour = tuple(int(255 * c) for c in colorsys.hsv_to_rgb(hue, 1.0, 1.0))
            a = resize_pixels(xy1[k], scales[0])
            b = resize_pixels(xy2[k], scales[1]) + np.array([panels[0].width, 0])
            draw.line([tuple(a), tuple(b)], fill=colour, width=2)
            for p in (a, b):
                draw.ellipse([p[0] - 3, p[1] - 3, p[0] + 3, p[1] + 3], outline=colour, width=2)
    return np.asarray(canvas)


def match_picture(pm: PairMatches, image1: PreparedImage, image2: PreparedImage,
                  n_viz: int = 20) -> np.ndarray:
    """Picture of pair `pm` on the original images, darkened outside their masks."""
    rgb = [load_rgb(im.source) for im in (image1, image2)]
    dims = [None if im.mask is None else mask_to_original(im.mask, im.geometry)
            for im in (image1, image2)]
    return draw_matches(rgb[0], rgb[1], pm.xy1_orig, pm.xy2_orig, n_viz, dim1=dims[0],
                        dim2=dims[1])


def save_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Write an RGB uint8 image as PNG atomically."""
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
