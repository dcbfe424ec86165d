"""Keyframe retrieval of the MASt3R-style SLAM: the pooled-token fallback, the incremental ASMK
database against the offline `asmk_similarity` of the same features, and `--retrieval-weights`
end to end (oracle and tiny MASt3R checkpoint, random retrieval weights: structure only) with
its errors before any frame."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from recon4d.cli import main
from recon4d.errors import CheckpointError
from recon4d.eval import pose_metrics
from recon4d.inference.retrieval import asmk_similarity
from recon4d.models.retrieval import codebook_path_for, load_retrieval
from recon4d.options.slam import Mast3rSlamOptions
from recon4d.slam.mast3r import Mast3rSlam
from recon4d.slam.mast3r_retrieval import KeyframeDatabase
from recon4d.synthetic import generate_scene, write_scene
from recon4d.synthetic.mast3r_slam_oracle import DESC_DIM, Mast3rSlamOracle
from tests.test_retrieval_model import official_args, whitening, write_retrieval

pytestmark = pytest.mark.usefixtures("one_torch_thread")
MAST3R = Path(__file__).parent / "data" / "golden" / "checkpoints" / "tiny_mast3r_a.pth"
CLUSTERS = 16


@dataclass
class Code:
    """A network frame code: encoder tokens (1, T, D)."""

    feat: torch.Tensor


def retrieval_for(folder: Path, width: int, nfeat: int = 300) -> Path:
    """A random-weight retrieval checkpoint for `width`-d tokens and its codebook."""
    state = {f"prewhiten.{k}": v for k, v in whitening(0, width).items()}
    centroids = np.random.default_rng(1).normal(size=(CLUSTERS, width)).astype(np.float32)
    return write_retrieval(folder, state, official_args(nfeat=nfeat), centroids)


def test_fallback_ranks_by_cosine_above_its_threshold_and_leaves_out_excluded():
    database = KeyframeDatabase()  # default threshold 0.5
    rows = torch.tensor([[1.0, 0, 0], [0.8, 0.6, 0], [0, 1.0, 0], [0.6, 0, 0.8]])
    for row in rows:
        database.add(row)
    found = database.query(torch.tensor([1.0, 0, 0]), k=3)
    assert [i for i, _ in found] == [0, 1, 3]  # cosines 1, 0.8, 0.6; 0 is below 0.5
    assert [s for _, s in found] == pytest.approx([1.0, 0.8, 0.6])
    assert [i for i, _ in database.query(torch.tensor([1.0, 0, 0]), k=2, exclude={0})] == [1, 3]
    assert KeyframeDatabase(0.7).query(torch.tensor([1.0, 0, 0]), k=3) == []  # empty
    strict = KeyframeDatabase(0.7)
    for row in rows:
        strict.add(row)
    assert [i for i, _ in strict.query(torch.tensor([1.0, 0, 0]), k=3)] == [0, 1]


def test_asmk_database_grown_one_keyframe_at_a_time_scores_as_offline_asmk(tmp_path):
    pytest.importorskip("asmk")
    from recon4d.slam.mast3r_asmk import AsmkKeyframeDatabase

    width = 8
    retriever = load_retrieval(retrieval_for(tmp_path, width, nfeat=20))
    database = AsmkKeyframeDatabase(retriever, min_score=0.0)
    rng = np.random.default_rng(5)
    pool = rng.normal(size=(60, width)).astype(np.float32)
    # frames share runs of the token pool with their neighbours, plus private noise tokens
    tokens = [np.concatenate([pool[6 * i:6 * i + 24],
                              rng.normal(size=(6, width)).astype(np.float32)])
              for i in range(7)]
    descs = [database.describe(Code(torch.from_numpy(t)[None]), torch.empty(0))
             for t in tokens]
    offline = asmk_similarity([d.features for d in descs], retriever.centroids)
    for n, desc in enumerate(descs):
        found = database.query(desc, k=len(descs))
        assert len(database) == n  # a query does not insert
        scores = np.zeros(n)
        for i, score in found:
            scores[i] = score
        np.testing.assert_allclose(scores, offline[n, :n], rtol=1e-5, atol=1e-7)
        database.add(desc)
    assert len(database) == len(descs)
    expected = [i for i in np.argsort(-offline[3], kind="stable") if i not in (2, 3)][:2]
    assert [i for i, _ in database.query(descs[3], k=2, exclude={2, 3})] == expected
    assert AsmkKeyframeDatabase(retriever).min_score == 5e-3  # MASt3R-SLAM's threshold


@pytest.fixture(scope="module")
def synth(tmp_path_factory):
    scene = generate_scene(frames=12, width=64, height=48, movers=0, seed=4, fps=1.0)
    return write_scene(scene, tmp_path_factory.mktemp("synth") / "scene"), scene


def test_python_stream_with_retrieval_weights_uses_asmk(synth, tmp_path):
    pytest.importorskip("asmk")
    from recon4d.slam.mast3r_asmk import AsmkKeyframeDatabase

    _, scene = synth
    source = Mast3rSlamOracle(scene)
    options = Mast3rSlamOptions(retrieval_weights=str(retrieval_for(tmp_path, DESC_DIM)))
    slam = Mast3rSlam(source, options)
    for view in source.views():
        slam.push(view)
    assert isinstance(slam.database, AsmkKeyframeDatabase)
    assert len(slam.database) == len(slam.keyframes) >= 3


def test_slam_cli_runs_with_retrieval_weights_on_the_oracle(synth, tmp_path):
    pytest.importorskip("asmk")
    folder, scene = synth
    out = tmp_path / "run"
    weights = retrieval_for(tmp_path, DESC_DIM)
    assert main(["slam", "--method", "mast3r", "--oracle", str(folder), "--out", str(out),
                 "--retrieval-weights", str(weights), "--no-map-video"]) == 0
    gt = scene.poses_c2w
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    metrics = pose_metrics(out / "trajectory_tum.txt", folder / "trajectory_tum.txt")
    assert metrics["num_poses"] == 12 and metrics["ate"] < 0.02 * path
    doc = json.loads((out / "scene.json").read_text())
    assert doc["options"]["mast3r"]["retrieval_weights"] == str(weights)


def test_slam_cli_runs_with_retrieval_weights_on_the_tiny_checkpoint(tmp_path, capsys):
    # random weights: no frame tracks, so every frame after the first queries the database
    # (relocalisation) with the head run on the network's encoder tokens
    pytest.importorskip("asmk")
    from tests.test_slam_cli import write_frames

    frames = tmp_path / "frames"
    write_frames(frames, [(64, 48)] * 3)
    out = tmp_path / "run"
    code = main(["slam", str(frames), "--method", "mast3r", "--weights", str(MAST3R),
                 "--size", "64", "--out", str(out), "--no-map-video",
                 "--retrieval-weights", str(retrieval_for(tmp_path, 64))])
    assert code == 2 and "no frame after the first could be tracked" in capsys.readouterr().err
    assert len((out / "slam_frames.csv").read_text().splitlines()) == 4


def test_bad_retrieval_weights_fail_before_any_frame(synth, tmp_path, capsys, monkeypatch):
    folder, _ = synth
    out = tmp_path / "run"

    def run(weights: Path) -> str:
        code = main(["slam", "--method", "mast3r", "--oracle", str(folder), "--out", str(out),
                     "--retrieval-weights", str(weights)])
        assert code == 2 and not out.exists()
        return capsys.readouterr().err

    assert "missing_trainingfree.pth" in run(tmp_path / "missing_trainingfree.pth")
    weights = retrieval_for(tmp_path, 64)
    assert (f"{weights}: the retrieval head takes 64-d encoder tokens but the stream's "
            f"network gives {DESC_DIM}-d ones (it was made for tiny_mast3r_a.pth)") in run(weights)
    codebook_path_for(weights).unlink()
    assert "the retrieval codebook is missing" in run(weights)
    not_a_checkpoint = tmp_path / "junk_trainingfree.pth"
    torch.save({"weights": torch.zeros(2)}, not_a_checkpoint)
    assert "not a MASt3R retrieval checkpoint" in run(not_a_checkpoint)
    monkeypatch.setitem(sys.modules, "asmk", None)  # the extra is not installed
    assert "needs the asmk package" in run(retrieval_for(tmp_path, DESC_DIM))


def test_a_head_for_other_tokens_is_refused_in_python_too(tmp_path):
    pytest.importorskip("asmk")
    from recon4d.slam.mast3r_asmk import AsmkKeyframeDatabase

    database = AsmkKeyframeDatabase(load_retrieval(retrieval_for(tmp_path, 8)))
    with pytest.raises(CheckpointError, match="takes 8-d encoder tokens but the stream's "
                                              "network gives 5-d ones"):
        database.describe(Code(torch.zeros(1, 4, 5)), torch.empty(0))
