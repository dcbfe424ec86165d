"""Easi3R attention probes and the re-weighted pass: kernels, network, engine and npz format."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from recon4d.errors import InputError
from recon4d.inference import PairPredictions, infer_pairs, make_pairs
from recon4d.models.attention import mean_query_logits, reweighted_attention
from recon4d.models.loading import load_model
from recon4d.models.probes import PROBE_KEYS, probing
from tests.conftest import GOLDEN_DIR, load_manifest
from tests.golden_runners.compare import assert_matches
from tests.test_inference import PixelPairModel, make_views


def cases(kind: str) -> list[dict]:
    return [c for c in load_manifest()["cases"] if c["kind"] == kind]


def random_qkv(seed: int, b: int = 2, h: int = 3, nq: int = 7, nk: int = 5, d: int = 4):
    gen = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(b, h, n, d, generator=gen, dtype=torch.float64)
                 for n in (nq, nk, nk))


def test_mean_query_logits_is_the_mean_of_the_full_logit_matrix():
    q, k, _ = random_qkv(0)
    explicit = (q @ k.transpose(-1, -2) * 0.5).mean(dim=2)  # B x h x Nk
    got = mean_query_logits(q, k, 0.5)
    assert got.dtype == torch.float32 and got.shape == explicit.shape
    torch.testing.assert_close(got.double(), explicit, rtol=1e-5, atol=1e-6)


def test_reweighted_attention_zeroes_static_to_dynamic_weights_without_renormalising():
    q, k, v = random_qkv(1)
    static_query = torch.tensor([[1, 0, 1, 1, 0, 1, 1], [1, 1, 1, 1, 1, 1, 0]], dtype=torch.bool)
    dynamic_key = torch.tensor([[0, 1, 1, 0, 0], [1, 0, 0, 0, 1]], dtype=torch.bool)
    weights = torch.softmax(q @ k.transpose(-1, -2) * 0.5, dim=-1)
    cut = static_query[:, None, :, None] & dynamic_key[:, None, None, :]
    expected = weights.masked_fill(cut, 0.0) @ v
    got = reweighted_attention(q, k, v, 0.5, static_query, dynamic_key)
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(got, weights @ v)
    none_dynamic = torch.zeros_like(dynamic_key)
    torch.testing.assert_close(reweighted_attention(q, k, v, 0.5, static_query, none_dynamic),
                               weights @ v)


@pytest.fixture(scope="module")
def tiny():
    return load_model(GOLDEN_DIR / cases("easi3r_attention")[0]["files"]["checkpoint"])


def test_probes_are_off_by_default_and_do_not_change_the_outputs(tiny):
    views, _ = make_views([(32, 48), (32, 48)], seed=3)
    view1 = dict(views[0], idx=[0], instance=["0"])
    view2 = dict(views[1], idx=[1], instance=["1"])
    with torch.no_grad():
        plain1, plain2 = tiny(view1, view2)
        with probing(tiny):
            probed1, probed2 = tiny(view1, view2)
    assert not tiny.record_probes
    assert not set(PROBE_KEYS) & (set(plain1) | set(plain2))
    for plain, probed in ((plain1, probed1), (plain2, probed2)):
        assert set(probed) == set(plain) | set(PROBE_KEYS)
        for key, value in plain.items():
            assert torch.equal(probed[key], value), key
    cfg = tiny.config
    grid = (32 // cfg.patch_size, 48 // cfg.patch_size)
    assert probed1["cross_atten_maps_k"].shape == (1, *grid, cfg.dec_depth * cfg.dec_num_heads)
    assert probed2["match_feature"].shape == (1, *grid, cfg.enc_embed_dim)
    with pytest.raises(InputError, match="no attention probes"), probing(PixelPairModel()):
        pass


def golden_views(case: dict) -> tuple[list[dict], np.ndarray, dict[int, np.ndarray]]:
    """One view per image index of the case, its edges, and each image's atten_mask if stored."""
    inputs = load_file(str(GOLDEN_DIR / case["files"]["inputs"]))
    idx = {side: case["views"][side]["idx"] for side in ("view1", "view2")}
    frames, masks = {}, {}
    for side in ("view1", "view2"):
        for k, i in enumerate(idx[side]):
            frames.setdefault(i, (torch.from_numpy(inputs[f"{side}.img"][k:k + 1]),
                                  inputs[f"{side}.true_shape"][k:k + 1]))
            if f"{side}.atten_mask" in inputs:
                masks.setdefault(i, inputs[f"{side}.atten_mask"][k])
    assert sorted(frames) == list(range(len(frames))), "case does not use every image index"
    views = [{"img": frames[i][0], "true_shape": frames[i][1], "idx": i, "instance": str(i)}
             for i in range(len(frames))]
    return views, np.stack([idx["view1"], idx["view2"]], axis=1), masks


def assert_case_tensor(case: dict, name: str, actual, expected: dict) -> None:
    tol = case.get("tensor_tolerances", {}).get(name, case)
    assert_matches(f"{case['name']}:{name}", np.asarray(actual), expected[name], tol["atol"],
                   tol["rtol"])


@pytest.mark.parametrize("case", cases("easi3r_attention"), ids=lambda c: c["name"])
def test_batched_probed_inference_gives_the_golden_maps(tiny, case):
    """All pairs in one batch (the reference needs batch size 1): the maps must not change."""
    views, edges, _ = golden_views(case)
    assert len(edges) > 1, "the case needs several pairs to test batching"
    preds = infer_pairs(tiny, views, edges, batch_size=len(edges), progress=False, probes=True)
    expected = load_file(str(GOLDEN_DIR / case["files"]["expected"]))
    assert_case_tensor(case, "pred1.cross_atten_maps_k", preds.attn_maps1, expected)
    assert_case_tensor(case, "pred2.cross_atten_maps_k", preds.attn_maps2, expected)
    assert_case_tensor(case, "pred1.match_feature", preds.token_features[edges[:, 0]], expected)


@pytest.mark.parametrize("case", cases("easi3r_masked_forward"), ids=lambda c: c["name"])
def test_motion_masks_run_the_golden_reweighted_pass_in_a_batch(tiny, case):
    """The case's pair, batched with its swap, with the case masks as per-image motion masks."""
    views, edges, masks = golden_views(case)
    assert len(edges) == 1
    motion = np.stack([masks[i] for i in range(len(views))])
    both = np.concatenate([edges, edges[:, ::-1]])
    expected = load_file(str(GOLDEN_DIR / case["files"]["expected"]))
    masked = infer_pairs(tiny, views, both, batch_size=2, progress=False, probes=True,
                         motion_masks=motion)
    pred = {"pred1": masked[0]["pred1"], "pred2": masked[0]["pred2"]}
    pred["pred1"].update(cross_atten_maps_k=masked.attn_maps1[0],
                         match_feature=masked.token_features[edges[0, 0]])
    pred["pred2"]["cross_atten_maps_k"] = masked.attn_maps2[0]
    for name in expected:
        side, key = name.split(".", 1)
        assert_case_tensor(case, name, pred[side][key][None], expected)
    plain = infer_pairs(tiny, views, edges, progress=False)
    with pytest.raises(AssertionError, match="outside"):  # the masks do change the result
        assert_case_tensor(case, "pred1.pts3d", plain.pred1["pts3d"], expected)


def probed_predictions(tiny) -> PairPredictions:
    views, _ = make_views([(32, 48)] * 3, seed=5)
    return infer_pairs(tiny, views, make_pairs(3, "complete"), batch_size=4, progress=False,
                       probes=True)


def test_probes_round_trip_through_npz_and_reference_dicts(tiny, tmp_path):
    preds = probed_predictions(tiny)
    path = tmp_path / "predictions.npz"
    preds.save_npz(path)
    loaded = PairPredictions.load_npz(path)
    rebuilt = PairPredictions.from_reference_dict(preds.to_reference_dict())
    for other in (loaded, rebuilt):
        assert other.has_probes
        for name in ("attn_maps1", "attn_maps2", "token_features"):
            assert torch.equal(getattr(other, name), getattr(preds, name)), name
        assert set(other.pred1) == {"pts3d", "conf"}


def test_token_features_of_an_image_seen_only_as_view2_are_its_encoder_output(tiny):
    """Each row of token_features is that image's own encoder output on its token grid, whether
    the image appears as view 1 (image 0) or only as view 2 (images 1 and 2)."""
    views, _ = make_views([(32, 48)] * 3, seed=9)
    preds = infer_pairs(tiny, views, np.array([[0, 1], [0, 2]]), progress=False, probes=True)
    for index, view in enumerate(views):
        with torch.no_grad():
            feat, _ = tiny.encode(view["img"], torch.as_tensor(view["true_shape"]))
        patch = tiny.config.patch_size
        expected = feat.reshape(32 // patch, 48 // patch, -1)
        torch.testing.assert_close(preds.token_features[index], expected, atol=1e-5, rtol=1e-5)


def rewrite(path, **changes) -> None:
    with np.load(path) as npz:
        arrays = {name: npz[name] for name in npz.files}
    arrays.update(changes)
    for name in [n for n, v in changes.items() if v is None]:
        del arrays[name]
    np.savez(path, **arrays)


@pytest.mark.parametrize("change, message", [
    ({"attn_maps2": None}, "attn_maps2 missing"),
    ({"token_features": np.zeros((3, 3, 2, 4), np.float32)}, "token grid"),
    ({"attn_maps1": np.zeros((6, 3, 2, 8), np.float32),
      "attn_maps2": np.zeros((6, 3, 2, 8), np.float32),
      "token_features": np.zeros((3, 3, 2, 4), np.float32)}, "one patch size"),
    ({"attn_maps1": np.zeros((5, 2, 3, 8), np.float32)}, r"must both be \(6, NH, NW, C\)"),
])
def test_npz_probe_validation_names_the_problem(tiny, tmp_path, change, message):
    path = tmp_path / "predictions.npz"
    probed_predictions(tiny).save_npz(path)
    rewrite(path, **change)
    with pytest.raises(InputError, match=message):
        PairPredictions.load_npz(path)


def test_probe_requests_the_engine_cannot_serve_are_clear_errors(tiny):
    views, _ = make_views([(32, 48)] * 2, seed=1)
    edges = make_pairs(2, "complete")
    with pytest.raises(InputError, match="need the DUSt3R/MASt3R network, not PixelPairModel"):
        infer_pairs(PixelPairModel(), views, edges, progress=False, probes=True)
    mixed, _ = make_views([(32, 48), (48, 32)], seed=1)
    with pytest.raises(InputError, match="one size"):
        infer_pairs(tiny, mixed, edges, progress=False, probes=True)
    with pytest.raises(InputError, match=r"bool \(N, H, W\) = \(2, 32, 48\)"):
        infer_pairs(tiny, views, edges, progress=False, motion_masks=np.zeros((2, 32, 47), bool))
