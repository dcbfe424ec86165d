"""Retrieval pair graphs through `recon4d infer` / `reconstruct`: pairs chosen by image
similarity from the network's encoder, the tokens computed once, the oracle refused."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from recon4d.cli import main
from recon4d.inference import PairPredictions
from tests.conftest import GOLDEN_DIR

CKPT = GOLDEN_DIR / "checkpoints" / "tiny_mast3r_a.pth"


def _near_duplicates(folder, groups: int = 3, copies: int = 2) -> list[int]:
    """`groups` random images, each saved `copies` times with a little noise; the group of each
    file (sorted names)."""
    folder.mkdir()
    rng = np.random.default_rng(0)
    group_of = []
    for g in range(groups):
        base = rng.integers(0, 256, size=(48, 64, 3)).astype(np.int16)
        for c in range(copies):
            noisy = np.clip(base + rng.integers(-6, 7, size=base.shape), 0, 255).astype(np.uint8)
            Image.fromarray(noisy).save(folder / f"img_{g}{c}.png")
            group_of.append(g)
    return group_of


@pytest.mark.skipif(not CKPT.exists(), reason="the golden set has no tiny MASt3R checkpoint")
def test_retrieval_graph_pairs_each_image_with_its_near_duplicate(tmp_path):
    group_of = _near_duplicates(tmp_path / "imgs")
    out = tmp_path / "run"
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(out), "--weights", str(CKPT),
                 "--size", "64", "--graph", "retrieval-1-1", "--device", "cpu"]) == 0
    edges = PairPredictions.load_npz(out / "predictions.npz").edges
    pairs = {tuple(sorted(e)) for e in edges.tolist()}
    # one key image paired with every other image, plus each image's nearest neighbour
    assert len(pairs) < 6 * 5 // 2
    for i, g in enumerate(group_of):
        twin = next(j for j, h in enumerate(group_of) if h == g and j != i)
        assert tuple(sorted((i, twin))) in pairs


def test_retrieval_graph_is_refused_for_the_oracle(tmp_path):
    scene = tmp_path / "scene"
    assert main(["synth", str(scene), "--frames", "3", "--width", "64", "--height", "48",
                 "--movers", "0"]) == 0
    code = main(["reconstruct", "--oracle", str(scene), "--out", str(tmp_path / "rec"),
                 "--graph", "retrieval-2-1"])
    assert code == 2
    assert not (tmp_path / "rec").exists()


def test_windows_are_refused_for_a_retrieval_graph_before_any_work(tmp_path, capsys):
    _near_duplicates(tmp_path / "imgs")
    code = main(["reconstruct", str(tmp_path / "imgs"), "--out", str(tmp_path / "rec"),
                 "--weights", str(tmp_path / "missing.pth"), "--graph", "retrieval-1-1",
                 "--window", "4"])
    assert code == 2
    err = capsys.readouterr().err
    assert "--window" in err and "retrieval-1-1" in err and "missing.pth" not in err
    assert not (tmp_path / "rec").exists()
