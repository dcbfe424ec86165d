"""Golden runner for kind `preprocess`: recon4d.io.load_images on the manifest's file list."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from recon4d.io import load_images


def run_preprocess(case: dict, root: str | Path) -> dict[str, np.ndarray]:
    """Load `files.images` as one list with `params`; return each view's uint8 image and shape."""
    params = case["params"]
    paths = [Path(root) / name for name in case["files"]["images"]]
    views = load_images(paths, size=params["size"], square_ok=params["square_ok"],
                        patch_size=params["patch_size"])
    expected_views = case["expected_views"]
    assert len(views) == len(expected_views), (
        f"{case['name']}: {len(views)} views loaded, {len(expected_views)} expected")
    out = {}
    for k, (view, exp) in enumerate(zip(views, expected_views, strict=True)):
        assert (view["idx"], view["instance"]) == (exp["idx"], exp["instance"]), (
            f"{case['name']} view {k}: idx/instance {view['idx']!r}/{view['instance']!r} "
            f"!= {exp['idx']!r}/{exp['instance']!r}")
        img = view["img"]
        assert img.dtype == torch.float32 and img.ndim == 4 and img.shape[:2] == (1, 3)
        u8 = torch.round((img + 1) * 127.5).clamp_(0, 255).to(torch.uint8)
        # the stored uint8 form stands for `img` only if it maps back to it bit for bit
        assert torch.equal((u8.float() / 255 - 0.5) / 0.5, img), (
            f"{case['name']} view {k}: img is not (u8/255 - 0.5)/0.5 of any uint8 image")
        true_shape = np.asarray(view["true_shape"])
        assert true_shape.dtype == np.int32
        assert tuple(true_shape.ravel()) == tuple(img.shape[2:]), "true_shape != img H, W"
        out[f"view{k}.img_uint8"] = u8.numpy()
        out[f"view{k}.true_shape"] = true_shape
    return out
