"""MASt3R retrieval head: a tiny checkpoint and codebook in the official formats (random
weights, structure only), strict and safe loading, ASMK scores and image similarity."""

from __future__ import annotations

import argparse
import os
import pickle

import numpy as np
import pytest
import torch

from recon4d.errors import CheckpointError, Recon4dError
from recon4d.inference import infer_pairs
from recon4d.inference.engine import EncoderCache
from recon4d.inference.graphs import make_pairs
from recon4d.inference.retrieval import asmk_similarity, image_similarity
from recon4d.models import load_model
from recon4d.models.retrieval import codebook_path_for, load_retrieval
from recon4d.synthetic import OracleModel, generate_scene
from tests.conftest import GOLDEN_DIR

TINY_MAST3R = GOLDEN_DIR / "checkpoints" / "tiny_mast3r_a.pth"
WIDTH = 64  # encoder width of the tiny MASt3R checkpoint
CLUSTERS = 16


def official_args(**changes) -> argparse.Namespace:
    """The retrieval training args the reference reads (trainingfree: pre-whitening only)."""
    args = dict(pretrained="tiny_mast3r_a.pth", freeze_backbone=1, prewhiten=1, hdims="",
                residual=False, postwhiten=None, featweights="l2norm", nfeat=300, imsize=512,
                nclusters=CLUSTERS)
    return argparse.Namespace(**{**args, **changes})


def whitening(seed: int, dim: int = WIDTH) -> dict[str, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return {"m": torch.randn(1, dim, generator=gen, dtype=torch.float64),
            "p": torch.randn(dim, dim, generator=gen, dtype=torch.float64) / dim ** 0.5}


def write_retrieval(folder, state=None, args=None, centroids=None,
                    name="tiny_retrieval_trainingfree.pth"):
    """Write a checkpoint and its codebook as the reference does; return the checkpoint path."""
    if state is None:
        state = {f"prewhiten.{k}": v for k, v in whitening(0).items()}
    path = folder / name
    torch.save({"model": state, "args": args or official_args()}, path)
    if centroids is None:
        centroids = np.random.default_rng(1).normal(size=(CLUSTERS, WIDTH)).astype(np.float32)
    with open(codebook_path_for(path), "wb") as handle:
        pickle.dump({"type": "Codebook", "params": {"size": CLUSTERS},
                     "state": {"centroids": centroids}}, handle)
    return path


def test_the_codebook_sits_next_to_the_checkpoint_under_the_reference_name(tmp_path):
    path = tmp_path / "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric_retrieval_trainingfree.pth"
    assert codebook_path_for(path).name == (
        "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric_retrieval_codebook.pkl")


def test_the_head_whitens_and_keeps_the_strongest_tokens(tmp_path):
    retriever = load_retrieval(write_retrieval(tmp_path, args=official_args(nfeat=5)))
    assert retriever.centroids.shape == (CLUSTERS, WIDTH)
    assert retriever.head.config.dim == WIDTH and not retriever.head.training
    tokens = torch.randn(2, 12, WIDTH, generator=torch.Generator().manual_seed(2))
    feat, strength = retriever.head(tokens)
    white = whitening(0)
    expected = ((tokens.double() - white["m"]) @ white["p"]).numpy()  # (2, 12, 64)
    norms = np.linalg.norm(expected, axis=-1)
    order = np.argsort(-norms, axis=1)[:, :5]
    np.testing.assert_allclose(strength.numpy(), np.take_along_axis(norms, order, 1), rtol=1e-5)
    np.testing.assert_allclose(feat.numpy(), np.take_along_axis(expected, order[..., None], 1),
                               rtol=1e-4, atol=1e-5)


def test_a_projector_and_post_whitening_load_strictly(tmp_path):
    state = {f"prewhiten.{k}": v for k, v in whitening(0).items()}
    state.update({"projector.0.weight": torch.randn(32, WIDTH), "projector.0.bias": torch.zeros(32),
                  "projector.1.weight": torch.ones(32), "projector.1.bias": torch.zeros(32),
                  "projector.3.weight": torch.randn(16, 32), "projector.3.bias": torch.zeros(16)})
    state.update({f"postwhiten.{k}": v for k, v in whitening(1, 16).items()})
    centroids = np.zeros((CLUSTERS, 16), np.float32)
    args = official_args(hdims="32_16", postwhiten=1, nfeat=-0.5)
    head = load_retrieval(write_retrieval(tmp_path, state, args, centroids)).head
    feat, _ = head(torch.randn(1, 12, WIDTH))
    assert feat.shape == (1, 6, 16)  # half of the 12 tokens, 16-d
    torch.testing.assert_close(head.projector[0].weight, state["projector.0.weight"])


def test_missing_unexpected_and_mis_shaped_weights_are_listed_with_the_file(tmp_path):
    state = {"prewhiten.m": torch.zeros(1, WIDTH, dtype=torch.float64),
             "prewhiten.p": torch.zeros(WIDTH, WIDTH + 1, dtype=torch.float64),
             "projector.0.weight": torch.zeros(3, WIDTH)}
    path = write_retrieval(tmp_path, state)
    with pytest.raises(CheckpointError) as info:
        load_retrieval(path)
    message = str(info.value)
    assert str(path) in message and "unexpected keys (1): projector.0.weight" in message
    assert "prewhiten.p (checkpoint (64, 65), head (64, 64))" in message
    del state["prewhiten.m"], state["projector.0.weight"]
    with pytest.raises(CheckpointError, match="neither prewhiten.m nor projector.0.weight"):
        load_retrieval(write_retrieval(tmp_path, state))


def test_codebook_problems_name_the_codebook(tmp_path):
    path = write_retrieval(tmp_path, centroids=np.zeros((CLUSTERS, 8), np.float32))
    with pytest.raises(CheckpointError, match="codebook of 16 8-d centroids.*64-d features"):
        load_retrieval(path)
    path = write_retrieval(tmp_path, args=official_args(nclusters="1k"))
    with pytest.raises(CheckpointError, match="codebook of 16 64-d.*for 1024 clusters"):
        load_retrieval(path)
    codebook_path_for(path).unlink()
    with pytest.raises(CheckpointError, match=r"_codebook\.pkl: the retrieval codebook is missing"):
        load_retrieval(path)


class Exploit:
    def __reduce__(self):
        return (os.getcwd, ())


def test_the_codebook_pickle_may_hold_numpy_arrays_only(tmp_path):
    path = write_retrieval(tmp_path)
    with open(codebook_path_for(path), "wb") as handle:
        pickle.dump({"type": "Codebook", "state": {"centroids": Exploit()}}, handle)
    with pytest.raises(CheckpointError, match="refused to unpickle posix.getcwd"):
        load_retrieval(path)


def test_hub_names_are_refused_with_the_download_address():
    with pytest.raises(CheckpointError, match="download https://download.europe.naverlabs.com"):
        load_retrieval("hf-hub:naver/some-retrieval")


def test_asmk_scores_rank_images_sharing_local_features_first():
    pytest.importorskip("asmk")
    rng = np.random.default_rng(3)
    centroids = rng.normal(size=(CLUSTERS, WIDTH)).astype(np.float32)
    shared = centroids[rng.integers(0, CLUSTERS, 40)] + rng.normal(0, 0.3, (40, WIDTH))
    other = centroids[rng.integers(0, CLUSTERS, 40)] + rng.normal(0, 0.3, (40, WIDTH))
    images = [shared, shared + rng.normal(0, 0.05, shared.shape), other]
    scores = asmk_similarity([x.astype(np.float32) for x in images], centroids)
    assert scores.shape == (3, 3)
    # measured: 0.067 and 0.064 between the two sharing images, <= 0.006 with the other
    assert min(scores[0, 1], scores[1, 0]) > 5 * max(scores[0, 2], scores[1, 2])


@pytest.fixture(scope="module")
def views():
    return OracleModel(generate_scene(frames=4, width=64, height=48, movers=0, seed=1)).views()


@pytest.fixture(scope="module")
def tiny():
    return load_model(TINY_MAST3R)


def test_pooled_similarity_from_the_tiny_encoder_has_the_right_structure(tiny, views):
    pooled = image_similarity(tiny, views)  # one encoder batch of 4
    assert pooled.shape == (4, 4) and np.allclose(pooled, pooled.T, atol=1e-6)
    np.testing.assert_allclose(np.diag(pooled), 1.0, atol=1e-5)
    in_twos = image_similarity(tiny, views, batch_size=2)
    np.testing.assert_allclose(pooled, in_twos, atol=1e-5)
    assert len(make_pairs(4, "retrieval-2-1", similarity=pooled)) >= 2 * 3  # connected


def test_the_pairs_reuse_the_tokens_encoded_for_retrieval(tiny, views, monkeypatch):
    encoded: list[int] = []
    encode = tiny.encode

    def counting(img, true_shape):
        encoded.append(len(img))
        return encode(img, true_shape)

    monkeypatch.setattr(tiny, "encode", counting)
    cache = EncoderCache()
    sim = image_similarity(tiny, views, encoder_cache=cache)
    assert sum(encoded) == 4
    edges = make_pairs(4, "retrieval-1-1", similarity=sim)
    preds = infer_pairs(tiny, views, edges, progress=False, encoder_cache=cache)
    assert sum(encoded) == 4 and len(preds.edges) == len(edges)


def test_asmk_similarity_from_the_tiny_encoder_and_head(tiny, views, tmp_path):
    pytest.importorskip("asmk")
    scores = image_similarity(tiny, views, load_retrieval(write_retrieval(tmp_path)))
    assert scores.shape == (4, 4) and np.isfinite(scores).all() and (scores >= 0).all()


def test_a_model_without_an_encoder_is_refused(views):
    with pytest.raises(Recon4dError, match="OracleModel has no encode"):
        image_similarity(OracleModel(generate_scene(frames=2, width=64, height=48)), views)
