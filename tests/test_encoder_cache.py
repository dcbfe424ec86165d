"""Encoder once per image: the cached engine path equals the per-pair forward; heads optional."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from recon4d.errors import InputError
from recon4d.inference import infer_pairs, make_pairs
from recon4d.inference.engine import EncoderCache
from recon4d.models.loading import load_model
from tests.conftest import GOLDEN_DIR
from tests.golden_runners.compare import assert_matches
from tests.test_inference import PixelPairModel, forward_cases, make_views
from tests.test_probes import cases, golden_views


def uses_every_index(case: dict) -> bool:
    idx = set(case["views"]["view1"]["idx"]) | set(case["views"]["view2"]["idx"])
    return sorted(idx) == list(range(len(idx)))


def smallest_case_per_checkpoint() -> list[dict]:
    """One golden forward case per checkpoint, the one with the fewest pairs (keeps it fast;
    `test_inference` checks every case's engine output against the golden values)."""
    chosen: dict[str, dict] = {}
    for case in filter(uses_every_index, forward_cases()):
        best = chosen.get(case["files"]["checkpoint"])
        if best is None or len(case["views"]["view1"]["idx"]) < len(best["views"]["view1"]["idx"]):
            chosen[case["files"]["checkpoint"]] = case
    return list(chosen.values())


@contextlib.contextmanager
def encoded_images(model: torch.nn.Module) -> Iterator[list[int]]:
    """Counts the images that go through the encoder (rows leaving enc_norm) inside the block."""
    count = [0]
    handle = model.enc_norm.register_forward_hook(
        lambda _m, _i, out: count.__setitem__(0, count[0] + out.shape[0]))
    try:
        yield count
    finally:
        handle.remove()


def per_pair(model, views, i: int, j: int) -> tuple[dict, dict]:
    """The plain forward on one pair (batch of 1: every call runs the encoder on both images)."""
    def one(v):
        return {"img": v["img"], "true_shape": torch.as_tensor(v["true_shape"]),
                "idx": [v["idx"]], "instance": [v["instance"]]}
    with torch.no_grad():
        return model(one(views[i]), one(views[j]))


@pytest.mark.parametrize("case", smallest_case_per_checkpoint(), ids=lambda c: c["name"])
def test_cached_encoder_path_equals_the_per_pair_forward(case):
    model = load_model(GOLDEN_DIR / case["files"]["checkpoint"])
    views, edges, _ = golden_views(case)
    with encoded_images(model) as count:
        preds = infer_pairs(model, views, edges, batch_size=len(edges), progress=False)
    assert count[0] == len(views)
    for e, (i, j) in enumerate(edges):
        expected = per_pair(model, views, int(i), int(j))
        for side, pred in zip(("pred1", "pred2"), expected, strict=True):
            assert set(preds[e][side]) == set(pred)
            for key, value in pred.items():
                tol = case.get("tensor_tolerances", {}).get(f"{side}.{key}", case)
                assert_matches(f"{case['name']}:{side}.{key}:{e}", preds[e][side][key].numpy(),
                               value[0].numpy(), tol["atol"], tol["rtol"])


@pytest.fixture(scope="module")
def tiny():
    return load_model(GOLDEN_DIR / cases("easi3r_attention")[0]["files"]["checkpoint"])


@pytest.fixture(scope="module")
def probe_case():
    case = cases("easi3r_attention")[0]
    views, _, _ = golden_views(case)
    return case, views, make_pairs(len(views), "complete")


def test_the_encoder_runs_once_per_image_not_once_per_pair(tiny, probe_case):
    _, golden, _ = probe_case
    views, _ = make_views([tuple(np.asarray(golden[0]["true_shape"]).reshape(2))] * 4, seed=2)
    edges = make_pairs(len(views), "complete")
    with encoded_images(tiny) as cached:
        infer_pairs(tiny, views, edges, batch_size=2, progress=False)
    with encoded_images(tiny) as plain:  # a bare callable has no encode/decode: per-pair path
        infer_pairs(lambda v1, v2: tiny(v1, v2), views, edges, batch_size=2, progress=False)
    assert cached[0] == len(views)
    assert plain[0] == len(edges)  # symmetrized batches halve the 2E encoder runs
    with encoded_images(tiny) as one_pair:  # images in no edge are not encoded
        infer_pairs(tiny, views, make_pairs(2, "complete"), progress=False)
    assert one_pair[0] == 2


def test_mask_passes_skip_the_heads_and_reuse_the_tokens(tiny, probe_case):
    case, views, edges = probe_case
    full = infer_pairs(tiny, views, edges, batch_size=4, progress=False, probes=True)
    cache = EncoderCache()
    with encoded_images(tiny) as count:
        probes = infer_pairs(tiny, views, edges, batch_size=4, progress=False, probes=True,
                             heads=False, encoder_cache=cache)
        assert count[0] == len(views)
        height, width = (int(v) for v in np.asarray(views[0]["true_shape"]).reshape(2))
        masks = np.zeros((len(views), height, width), bool)
        masks[:, : height // 2] = True
        masked = infer_pairs(tiny, views, edges, batch_size=4, progress=False, probes=True,
                             heads=False, encoder_cache=cache, motion_masks=masks)
        assert count[0] == len(views)  # pass 2 decodes from pass 1's tokens
    assert all(not g.pred1 and not g.pred2 for g in probes.groups)
    for name in ("attn_maps1", "attn_maps2", "token_features"):
        assert_matches(f"{case['name']}:{name}", getattr(probes, name).numpy(),
                       getattr(full, name).numpy(), case["atol"], case["rtol"])
    fresh = infer_pairs(tiny, views, edges, batch_size=4, progress=False, probes=True,
                        motion_masks=masks)
    assert_matches("masked attn_maps1", masked.attn_maps1.numpy(), fresh.attn_maps1.numpy(),
                   case["atol"], case["rtol"])
    assert not np.allclose(masked.attn_maps1.numpy(), probes.attn_maps1.numpy())


def test_heads_off_and_caches_are_refused_where_they_cannot_apply(tiny, probe_case):
    _, views, edges = probe_case
    with pytest.raises(InputError, match="needs the DUSt3R/MASt3R network"):
        infer_pairs(PixelPairModel(), views, edges, progress=False, heads=False)
    with pytest.raises(InputError, match="without probes"):
        infer_pairs(tiny, views, edges, progress=False, heads=False)
    cache = EncoderCache()
    infer_pairs(tiny, views, edges, progress=False, encoder_cache=cache)
    height, width = (int(v) for v in np.asarray(views[0]["true_shape"]).reshape(2))
    other, _ = make_views([(height, width)] * (len(views) + 1), seed=1)
    with pytest.raises(InputError, match="encoder cache holds tokens"):
        infer_pairs(tiny, other, make_pairs(len(other), "complete"), progress=False,
                    encoder_cache=cache)


def test_predictions_without_heads_are_not_saved(tiny, probe_case, tmp_path):
    """A mask pass's predictions hold probes only: saving them would write an unreadable file."""
    _, views, edges = probe_case
    preds = infer_pairs(tiny, views, edges, probes=True, heads=False, progress=False)
    with pytest.raises(InputError, match="hold no pred1/pts3d"):
        preds.save_npz(tmp_path / "p.npz")
    assert not (tmp_path / "p.npz").exists()
