"""One output layout: what the writers write is what layout.py documents and what eval reads."""

from __future__ import annotations

import fnmatch
import re

import numpy as np
import pytest
from PIL import Image

from recon4d.eval.evaluate import evaluate
from recon4d.eval.prediction import load_prediction
from recon4d.io import layout
from recon4d.io.writers import write_scene
from recon4d.options import EvalOptions
from recon4d.synthetic import generate_scene
from recon4d.synthetic import write_scene as write_synthetic
from tests.fixtures_eval import write_synthetic_scene
from tests.test_writers import make_scene


def documented_names() -> list[str]:
    """First-column names of the tables in layout.py's docstring (`NNNNNN` = frame number; a
    cell may name several files, each in backticks)."""
    cells = re.findall(r"^\| (`[^|]+`) \|", layout.__doc__, flags=re.MULTILINE)
    return [name for cell in cells for name in re.findall(r"`([^`]+)`", cell)]


def undocumented(paths: list[str]) -> list[str]:
    """The `paths` no documented name covers (a pattern, or a folder ending in /)."""
    patterns = [name.replace("NNNNNN", "[0-9]" * 6) for name in documented_names()]
    return [p for p in paths if not any(fnmatch.fnmatchcase(p, pat)
                                        or (pat.endswith("/") and p.startswith(pat))
                                        for pat in patterns)]


def png(path) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img)


def test_frame_file_names():
    assert layout.frame_stem(7) == "000007"
    assert layout.frame_file("depth", 3, ".npy") == "depth/000003.npy"
    assert layout.frame_file(layout.KEPT_MASK_DIR, 12, ".png") == "kept_mask/000012.png"
    assert layout.matches_stem(0, 2) == "matches_0_2"


def test_every_file_written_for_a_scene_is_documented(tmp_path):
    scene = make_scene()
    scene.dynamic_masks = scene.depths > 3
    files = write_scene(scene, tmp_path)
    assert undocumented(files) == []
    # the check itself rejects what the table does not name
    assert undocumented(["depths/000000.npy", "masks/000000.png"]) == ["depths/000000.npy",
                                                                       "masks/000000.png"]


def test_every_file_of_a_synthetic_scene_is_documented(tmp_path):
    folder = write_synthetic(generate_scene(frames=3, width=24, height=16, movers=1, seed=1),
                             tmp_path / "scene")
    files = [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]
    assert len(files) == 3 * 4 + 2 * 3 + 6 and undocumented(files) == []


def test_kept_and_dynamic_masks_are_separate_0_255_pngs(tmp_path):
    scene = make_scene(n=2)
    scene.dynamic_masks = scene.depths > 3
    files = write_scene(scene, tmp_path, ["kept_mask", "dynamic_mask"])
    assert files == ["kept_mask/000000.png", "kept_mask/000001.png",
                     "dynamic_mask/000000.png", "dynamic_mask/000001.png"]
    for i in range(2):
        np.testing.assert_array_equal(png(tmp_path / files[i]), scene.masks[i] * 255)
        np.testing.assert_array_equal(png(tmp_path / files[2 + i]),
                                      (scene.depths[i] > 3) * 255)


def test_no_dynamic_mask_files_without_dynamic_masks(tmp_path):
    assert write_scene(make_scene(n=2), tmp_path, ["dynamic_mask"]) == []
    assert not (tmp_path / "dynamic_mask").exists()


def test_eval_reads_back_what_the_writers_wrote(tmp_path):
    scene = make_scene()
    scene.dynamic_masks = scene.depths > 3
    write_scene(scene, tmp_path, ["trajectory", "depth", "dynamic_mask", "ply"])
    pred = load_prediction(tmp_path)
    np.testing.assert_array_equal(pred.depth, scene.depths)
    np.testing.assert_array_equal(pred.masks, scene.dynamic_masks)
    np.testing.assert_allclose(pred.trajectory.poses, scene.poses_c2w, atol=1e-12)
    assert pred.cloud_path == tmp_path / "pointcloud.ply"



@pytest.mark.parametrize("protocol, abs_rel", [("monst3r", 1 / 576), ("robust", (1 - 5e-4) / 576)])
def test_evaluate_scores_written_depth_with_the_chosen_protocol(tmp_path, protocol, abs_rel):
    # truth 2 everywhere; prediction 1 (scale 2) except one zero: the published protocol keeps
    # the zero (error |0 - 2| / 2 = 1), the robust one replaces it by MIN_DEPTH 1e-3
    scene = make_scene()
    n, h, w = scene.depths.shape
    scene.depths[:] = 1.0
    scene.depths[1, 2, 3] = 0.0
    write_scene(scene, tmp_path / "pred", ["depth"])
    gt = write_synthetic_scene(tmp_path / "gt", np.full((n, h, w), 2.0), np.zeros((n, h, w)),
                               scene.poses_c2w, scene.intrinsics, np.arange(n, dtype=float))
    report = evaluate(tmp_path / "pred", gt, options=EvalOptions(metrics=("depth",),
                                                                 depth_protocol=protocol))
    depth = report["sequences"][gt.name]["depth"]
    assert depth["valid_pixels"] == n * h * w == 576
    assert depth["abs_rel"] == pytest.approx(abs_rel, rel=1e-9)
    assert report["options"]["depth_protocol"] == protocol
