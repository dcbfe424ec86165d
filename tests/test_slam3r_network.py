"""SLAM3R's networks beyond the golden cases: the DUSt3R pair network as a peer, the token cache,
batching of windows, retrieval and input errors.

Truth: spec facts checked with other code paths — I2P with one supporting view is the pair
network with renamed keys (spec §0), windows are independent rows, the correlation read at
`corr_depth` equals `get_corr_score` there (§5.3), and hand-computed retrieval scores.
"""

from __future__ import annotations

import pytest
import torch

from recon4d.errors import InputError
from recon4d.models.config import ModelConfig
from recon4d.models.network import build_model
from recon4d.models.slam3r import select_scene_frames
from recon4d.models.slam3r.config import I2P, L2W, Slam3rConfig, with_encoder
from recon4d.models.slam3r.network import build_slam3r

DIMS = dict(enc_embed_dim=32, enc_depth=1, enc_num_heads=2, dec_embed_dim=24, dec_depth=3,
            dec_num_heads=2)
H, W = 32, 48


def _random(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Every parameter drawn uniformly (LayerNorm weights around 1), reproducibly."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.rand(p.shape, generator=gen) * 0.6 - 0.3
            p.copy_(noise + 1 if "norm" in name and name.endswith("weight") else noise)
    return model


def _i2p(corr_depth: int = 2) -> torch.nn.Module:
    return _random(build_slam3r(Slam3rConfig(arch=I2P, corr_depth=corr_depth, **DIMS)), 0)


def _images(n: int, batch: int = 1, seed: int = 1) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.rand(batch, 3, H, W, generator=gen) * 2 - 1 for _ in range(n)]


def test_one_supporting_view_is_the_pair_network() -> None:
    pair = _random(build_model(ModelConfig(**DIMS)), 0)
    i2p = build_slam3r(Slam3rConfig(arch=I2P, **DIMS))
    renamed = {k.replace("dec_blocks2.", "mv_dec_blocks2.").replace("dec_blocks.",
                                                                     "mv_dec_blocks1."): v
               for k, v in pair.state_dict().items() if k != "mask_token"}
    missing = i2p.load_state_dict(renamed, strict=False).missing_keys
    assert all(k.startswith("corr_score") for k in missing)
    img1, img2 = _images(2)
    with torch.no_grad():
        pred1, pred2 = pair({"img": img1}, {"img": img2})
        for views, ref_id in (([img1, img2], 0), ([img2, img1], 1)):
            preds = i2p([{"img": img} for img in views], ref_id=ref_id)
            ref, sup = preds[ref_id], preds[1 - ref_id]
            for ours, theirs in ((ref["pts3d"], pred1["pts3d"]), (ref["conf"], pred1["conf"]),
                                 (sup["pts3d_in_other_view"], pred2["pts3d_in_other_view"]),
                                 (sup["conf"], pred2["conf"])):
                torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)


def test_supporting_views_order_does_not_matter() -> None:
    i2p = _i2p()
    ref, a, b, c = ({"img": img} for img in _images(4))
    with torch.no_grad():
        first = i2p([ref, a, b, c], ref_id=0)
        second = i2p([ref, c, a, b], ref_id=0)
    torch.testing.assert_close(first[0]["pts3d"], second[0]["pts3d"], atol=1e-6, rtol=1e-6)
    torch.testing.assert_close(first[1]["conf"], second[2]["conf"], atol=1e-6, rtol=1e-6)


def test_cached_tokens_windows_and_l2w_share_one_encoding() -> None:
    """Tokens encoded once per frame give the image path's results, window by window, and feed
    an L2W without encoder blocks."""
    i2p = _i2p()
    images = _images(3, batch=2)
    with torch.no_grad():
        direct = i2p([{"img": img} for img in images], ref_id=1)
        tokens, pos = i2p.encode_frames(torch.cat(images))
        tokens, pos = tokens.unflatten(0, (3, 2)), pos.unflatten(0, (3, 2))
        shape = torch.tensor([H, W]).expand(3, 2, 2)
        cached = i2p.predict(tokens, pos, shape, ref_id=1)
        alone = i2p.predict(tokens[:, 1:], pos[:, 1:], shape[:, 1:], ref_id=1)
    for k in range(3):
        for key, value in direct[k].items():
            torch.testing.assert_close(cached[k][key], value, atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(alone[k][key], value[1:], atol=1e-5, rtol=1e-5)
    l2w = _random(build_slam3r(Slam3rConfig(arch=L2W, need_encoder=False, **DIMS)), 2)
    points = torch.rand(3, 2, H, W, 3)
    with torch.no_grad():
        preds = l2w.predict(tokens, pos, shape, points, ref_ids=[2, 0])
        channels_first = l2w.predict(tokens, pos, shape, points.permute(0, 1, 4, 2, 3), [2, 0])
    assert set(preds[0]) == set(preds[2]) == {"pts3d", "conf"}
    assert preds[1]["pts3d_in_other_view"].shape == (2, H, W, 3)
    torch.testing.assert_close(preds[1]["conf"], channels_first[1]["conf"])


def test_retrieval_scores_read_the_forward_at_corr_depth() -> None:
    i2p = _i2p(corr_depth=2)
    views = [{"img": img} for img in _images(3, batch=2)]
    with torch.no_grad():
        preds = i2p(views, ref_id=0, return_corr_score=True)
        scores = i2p.get_corr_score(views, ref_id=0)
    for rank, k in enumerate((1, 2)):
        torch.testing.assert_close(scores[rank], 1 + preds[k]["pseudo_conf"].exp(),
                                   atol=1e-5, rtol=1e-5)


def test_scene_frames_are_chosen_by_normalised_mean_score() -> None:
    # candidate means 2, 5, 1.25 -> (c - 1)/c = 0.5, 0.8, 0.2
    scores = torch.tensor([[[1.0, 3.0]], [[4.0, 6.0]], [[1.0, 1.5]]])
    view_scores, sel = select_scene_frames(scores, 2)
    torch.testing.assert_close(view_scores, torch.tensor([0.5, 0.8, 0.2]))
    assert sel.tolist() == [1, 0]


def test_bad_inputs_are_named() -> None:
    i2p = _i2p()
    small, big = _images(1)[0], torch.zeros(1, 3, H, W + 16)
    with pytest.raises(InputError, match="same img shape"):
        i2p([{"img": small}, {"img": big}])
    with pytest.raises(InputError, match="reference ids \\[3\\]"):
        i2p([{"img": small}, {"img": small}], ref_id=3)
    with pytest.raises(InputError, match="at least 2 views"):
        i2p([{"img": small}])
    lean = build_slam3r(with_encoder(Slam3rConfig(arch=L2W, **DIMS), False))
    with pytest.raises(InputError, match="without encoder blocks"):
        lean([{"img": small, "pts3d_world": torch.zeros(1, H, W, 3)},
              {"img": small, "pts3d_cam": torch.zeros(1, H, W, 3)}], ref_ids=0)
    tokens, pos = i2p.encode_frames(small)
    view = {"img_tokens": tokens, "img_pos": pos, "true_shape": torch.tensor([[H, W]])}
    with pytest.raises(InputError, match="view 1 has no pts3d_cam"):
        lean([{**view, "pts3d_world": torch.zeros(1, H, W, 3)}, view], ref_ids=[0])
    with pytest.raises(InputError, match="lack img_tokens"):
        i2p([view, {"img": small}])
