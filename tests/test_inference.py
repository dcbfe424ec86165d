"""Batched pair inference and the predictions format (PairPredictions, predictions.npz)."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from recon4d.errors import InputError, Recon4dError
from recon4d.inference import PairPredictions, infer_pairs, make_pairs, memory
from recon4d.models.config import ModelConfig
from tests.conftest import GOLDEN_DIR, load_manifest
from tests.golden_runners.compare import assert_matches


def make_views(shapes: list[tuple[int, int]], seed: int = 0) -> tuple[list[dict], list]:
    """Loader-style views of random images, and the uint8 images themselves."""
    rng = np.random.default_rng(seed)
    views, images = [], []
    for i, (h, w) in enumerate(shapes):
        u8 = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
        img = (torch.from_numpy(u8).permute(2, 0, 1)[None].float() / 255 - 0.5) / 0.5
        views.append({"img": img, "true_shape": np.array([[h, w]], dtype=np.int32), "idx": i,
                      "instance": str(i)})
        images.append(u8)
    return views, images


def is_symmetrized(view1: dict, view2: dict) -> bool:
    """Symmetrized batch of the reference: pairs (a,b),(b,a),(c,d),(d,c)... by instance labels,
    more than one pair."""
    a, b = view1["instance"], view2["instance"]
    return len(a) > 1 and len(a) % 2 == 0 and all(
        a[k] == b[k + 1] and a[k + 1] == b[k] for k in range(0, len(a), 2))


class PixelPairModel(torch.nn.Module):
    """Stand-in network: per-pair, elementwise (so batching cannot change a bit); records calls."""

    def __init__(self, descriptors: bool = False):
        super().__init__()
        self.scale = torch.nn.Parameter(torch.tensor(0.75))
        self.descriptors = descriptors
        self.calls: list[tuple[dict, dict]] = []

    def forward(self, view1: dict, view2: dict) -> tuple[dict, dict]:
        self.calls.append((view1, view2))
        a = view1["img"].permute(0, 2, 3, 1)
        b = view2["img"].permute(0, 2, 3, 1)
        a0, b0 = a[:, :1, :1, :], b[:, :1, :1, :]  # top-left pixel of each image: pair-specific
        pred1 = {"pts3d": a * self.scale + b0, "conf": 1 + (a[..., 0] - b0[..., 1]) ** 2}
        pred2 = {"pts3d_in_other_view": b * self.scale - a0, "conf": 2 + b[..., 2] * a0[..., 0]}
        if self.descriptors:
            for pred, x, y in ((pred1, a, b0), (pred2, b, a0)):
                desc = torch.cat([x, y.expand_as(x)], dim=-1)
                pred["desc"] = desc / desc.norm(dim=-1, keepdim=True)
                pred["desc_conf"] = x[..., 1].exp()
        return pred1, pred2


def single_pair(model, views, i, j):
    """The stand-in run on one pair, as a reference batch of 1 (independent of the engine)."""
    def one(v):
        return {"img": v["img"], "true_shape": torch.from_numpy(v["true_shape"]),
                "idx": [v["idx"]], "instance": [v["instance"]]}
    pred1, pred2 = model(one(views[i]), one(views[j]))
    return {k: v[0] for k, v in pred1.items()}, {k: v[0] for k, v in pred2.items()}


def assert_pred_equal(actual: dict, expected: dict) -> None:
    assert set(actual) == set(expected)
    for name in expected:
        torch.testing.assert_close(actual[name], expected[name], rtol=0, atol=0)


# ----------------------------------------------------------------------------- batching


def test_mixed_shapes_never_share_a_batch_and_results_come_back_in_edge_order():
    views, _ = make_views([(32, 48), (48, 32), (32, 48), (48, 32), (32, 48)])
    edges = make_pairs(5, "complete")
    model = PixelPairModel()
    preds = infer_pairs(model, views, edges, batch_size=3, progress=False)
    for view1, view2 in model.calls:
        shapes1 = {tuple(views[i]["true_shape"][0]) for i in view1["idx"]}
        shapes2 = {tuple(views[i]["true_shape"][0]) for i in view2["idx"]}
        assert len(shapes1) == 1 and len(shapes2) == 1
        assert view1["img"].shape[0] <= 3
        assert view1["true_shape"].dtype == torch.int32 and view1["true_shape"].shape == (
            len(view1["idx"]), 2)
    assert sum(len(v1["idx"]) for v1, _ in model.calls) == len(edges)
    assert len(preds) == len(edges) and not preds.uniform and len(preds.groups) == 4
    np.testing.assert_array_equal(preds.edges, edges)
    model.calls.clear()
    for e, (i, j) in enumerate(edges.tolist()):
        pred1, pred2 = single_pair(model, views, i, j)
        item = preds[e]
        assert (item["view1"]["idx"], item["view2"]["idx"]) == (i, j)
        np.testing.assert_array_equal(item["view2"]["true_shape"], views[j]["true_shape"][0])
        assert_pred_equal(item["pred1"], pred1)
        assert_pred_equal(item["pred2"], pred2)
    with pytest.raises(Recon4dError, match="mix 4 image-shape groups"):
        _ = preds.pred1


def test_symmetric_couples_are_batched_together_so_the_half_encoder_path_applies():
    views, _ = make_views([(32, 32)] * 5)
    edges = make_pairs(5, "swin-2")  # 10 pairs, then their 10 swapped copies at the end
    model = PixelPairModel()
    preds = infer_pairs(model, views, edges, batch_size=4, progress=False)
    assert [len(v1["idx"]) for v1, _ in model.calls] == [4] * 5
    assert all(is_symmetrized(v1, v2) for v1, v2 in model.calls)
    for e, (i, j) in enumerate(edges.tolist()):
        assert_pred_equal(preds[e]["pred1"], single_pair(model, views, i, j)[0])
    # an odd size never splits a couple; size 1 has to
    model.calls.clear()
    infer_pairs(model, views, edges, batch_size=3, progress=False)
    assert all(len(v1["idx"]) == 2 and is_symmetrized(v1, v2) for v1, v2 in model.calls)
    model.calls.clear()
    infer_pairs(model, views, edges, batch_size=1, progress=False)
    assert len(model.calls) == len(edges)


def test_uniform_predictions_are_stacked_in_edge_order_with_the_inputs_kept():
    views, images = make_views([(32, 48)] * 4, seed=3)
    edges = make_pairs(4, "oneref-1")
    model = PixelPairModel(descriptors=True)
    preds = infer_pairs(model, views, edges, batch_size=2, progress=False)
    assert preds.uniform and preds.has_descriptors
    assert preds.pred1["pts3d"].shape == (6, 32, 48, 3)
    assert preds.pred2["desc"].shape == (6, 32, 48, 6)
    assert preds.pred2["desc"].dtype == torch.float32
    for e, (i, j) in enumerate(edges.tolist()):
        _, pred2 = single_pair(model, views, i, j)
        torch.testing.assert_close(preds.pred2["pts3d_in_other_view"][e],
                                   pred2["pts3d_in_other_view"], rtol=0, atol=0)
    np.testing.assert_array_equal(preds.images, np.stack(images))
    np.testing.assert_array_equal(preds[-1]["pred1"]["conf"], preds.pred1["conf"][5])


def test_a_parameter_free_callable_works_as_the_model():
    views, _ = make_views([(16, 32)] * 3)
    stand_in = PixelPairModel()

    def oracle(view1, view2):  # no .parameters(): must run on the CPU by default
        with torch.no_grad():
            return stand_in(view1, view2)

    preds = infer_pairs(oracle, views, make_pairs(3, "complete"), progress=False,
                        keep_images=False)
    assert len(preds) == 6 and preds.images is None


def test_reduced_precision_is_refused_on_cpu_and_bad_arguments_are_clear():
    views, _ = make_views([(16, 16)] * 2)
    edges = make_pairs(2, "complete")
    model = PixelPairModel()
    for dtype in ("fp16",):  # bf16 on CPUs: tests/test_bf16.py
        with pytest.raises(Recon4dError, match=f"dtype {dtype} is only supported on CUDA"):
            infer_pairs(model, views, edges, device="cpu", dtype=dtype, progress=False)
    with pytest.raises(Recon4dError, match="unknown dtype 'fp64'"):
        infer_pairs(model, views, edges, dtype="fp64", progress=False)
    with pytest.raises(Recon4dError, match=r"pair indices must lie in 0\.\.1"):
        infer_pairs(model, views, np.array([[0, 2]]), progress=False)
    with pytest.raises(Recon4dError, match="no pairs"):
        infer_pairs(model, views, make_pairs(2, "complete", prefilter="seq0"), progress=False)
    if not torch.cuda.is_available():
        with pytest.raises(Recon4dError, match="no CUDA GPU"):
            infer_pairs(model, views, edges, device="cuda", progress=False)


def test_pair_activation_estimate_follows_the_documented_formula():
    cfg = ModelConfig(enc_embed_dim=48, enc_num_heads=4, dec_embed_dim=32, dec_depth=2,
                      head_type="linear")
    # 32x48 image: 6 tokens, 1536 pixels (hand-evaluated terms of docs/algorithms.md,
    # "Automatic batch size")
    encoder = 2 * 6 * (48 * 6 + 4 * 6)
    decoder = 2 * 6 * (32 * 6 + 4 * 6)
    head_inputs = 2 * 6 * (48 + 2 * 32)
    assert decoder < encoder  # the trunk peak is the encoder's
    total = ((head_inputs + encoder) * 4 + (head_inputs + 8 * 1536) * 4 + 2 * 1536 * 4 * 4)
    assert memory.pair_activation_bytes(32, 48, cfg) == int(1.5 * total)
    big = memory.pair_activation_bytes(384, 512)
    assert memory.pair_activation_bytes(384, 512, trunk_bytes=2) < big
    assert memory.pair_activation_bytes(288, 512) < big


def test_automatic_batch_size_divides_the_free_memory(monkeypatch):
    cfg = ModelConfig(enc_embed_dim=48, enc_num_heads=4, dec_embed_dim=32, dec_depth=2,
                      head_type="linear")
    per_pair = memory.pair_activation_bytes(32, 48, cfg)
    monkeypatch.setattr(memory, "free_memory_bytes", lambda device: 10 * per_pair)
    assert memory.auto_batch_size(32, 48, cfg, torch.device("cpu")) == 5  # half the free RAM
    monkeypatch.setattr(memory, "free_memory_bytes", lambda device: per_pair // 10)
    assert memory.auto_batch_size(32, 48, cfg, torch.device("cpu")) == 1
    monkeypatch.setattr(memory, "free_memory_bytes", lambda device: 10**6 * per_pair)
    assert memory.auto_batch_size(32, 48, cfg, torch.device("cpu")) == memory.MAX_BATCH["cpu"]
    # the engine sizes batches with it when no batch size is given
    model = PixelPairModel()
    model.config = cfg
    monkeypatch.setattr(memory, "free_memory_bytes", lambda device: 8 * per_pair)
    views, _ = make_views([(32, 48)] * 5)
    infer_pairs(model, views, make_pairs(5, "complete"), progress=False)
    assert [len(v1["idx"]) for v1, _ in model.calls] == [4] * 5
    assert memory.free_memory_bytes(torch.device("cpu")) > 0


# ----------------------------------------------------------------------------- format


def small_predictions(mixed: bool, descriptors: bool = True) -> tuple[PairPredictions, list]:
    shapes = [(32, 48), (48, 32), (32, 48)] if mixed else [(32, 48)] * 3
    views, images = make_views(shapes, seed=7)
    preds = infer_pairs(PixelPairModel(descriptors), views, make_pairs(3, "complete"),
                        batch_size=2, progress=False)
    preds.image_names = ["a.png", "b.png", "c.png"]
    preds.timestamps = np.array([0.0, 0.5, 1.0])
    return preds, images


def assert_same_predictions(a: PairPredictions, b: PairPredictions) -> None:
    np.testing.assert_array_equal(a.edges, b.edges)
    np.testing.assert_array_equal(a.true_shape1, b.true_shape1)
    np.testing.assert_array_equal(a.true_shape2, b.true_shape2)
    for e in range(len(a)):
        for side in ("pred1", "pred2"):
            assert_pred_equal(b[e][side], a[e][side])


@pytest.mark.parametrize("mixed", [False, True])
def test_npz_round_trip(tmp_path, mixed):
    preds, images = small_predictions(mixed)
    path = tmp_path / "predictions.npz"
    preds.save_npz(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["predictions.npz"]  # no temp left
    loaded = PairPredictions.load_npz(path)
    assert_same_predictions(preds, loaded)
    assert loaded.image_names == preds.image_names
    np.testing.assert_array_equal(loaded.timestamps, preds.timestamps)
    for got, want in zip(loaded.images, images, strict=True):
        np.testing.assert_array_equal(got, want)
    with np.load(path) as npz:
        expected_names = {"format_version", "view1/idx", "view2/idx", "view1/true_shape",
                          "view2/true_shape", "pred1/pts3d", "pred1/conf",
                          "pred2/pts3d_in_other_view", "pred2/conf", "pred1/desc",
                          "pred1/desc_conf", "pred2/desc", "pred2/desc_conf", "images",
                          "image_shapes", "image_names", "timestamps"}
        assert set(npz.files) == expected_names
        np.testing.assert_array_equal(npz["view1/idx"], [1, 2, 2, 0, 0, 1])
        if mixed:  # documented encoding: NaN-padded canvas of the largest H and W
            assert npz["pred1/pts3d"].shape == (6, 48, 48, 3)
            e = 0  # edge (1, 0): view1 is image 1, 48x32
            assert np.isnan(npz["pred1/pts3d"][e, :, 32:]).all()
            assert not np.isnan(npz["pred1/pts3d"][e, :, :32]).any()
            assert npz["images"].shape == (3, 48, 48, 3)


def test_npz_without_images_or_descriptors_loads(tmp_path):
    preds, _ = small_predictions(mixed=False, descriptors=False)
    preds.images = preds.image_names = preds.timestamps = None
    preds.save_npz(tmp_path / "p.npz")
    loaded = PairPredictions.load_npz(tmp_path / "p.npz")
    assert loaded.images is None and not loaded.has_descriptors and loaded.num_images == 3
    assert_same_predictions(preds, loaded)


def rewrite(path, **changes):
    """Copy of the npz at `path` with arrays replaced (None deletes)."""
    with np.load(path) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for key, value in changes.items():
        key = key.replace("__", "/")
        if value is None:
            arrays.pop(key)
        else:
            arrays[key] = value
    out = path.with_name("bad.npz")
    np.savez(out, **arrays)
    return out


@pytest.mark.parametrize("changes, message", [
    (dict(pred2__conf=None), "missing arrays pred2/conf"),
    (dict(view2__idx=np.array([0, 1, 2])), "view1/idx has 6 pairs but view2/idx has 3"),
    (dict(pred1__pts3d=np.zeros((5, 32, 48, 3), np.float32)), r"pred1/pts3d has shape \(5,"),
    (dict(pred1__pts3d=np.zeros((6, 32, 48, 2), np.float32)), "must end with 3 coordinates"),
    (dict(pred1__conf=np.zeros((6, 32, 40), np.float32)), "maps are 32x40 but the true shapes"),
    (dict(pred2__desc=None), "pred1/desc is present but its counterpart"),
    (dict(view1__true_shape=np.ones((6, 3), np.int32)), "view1/true_shape must be positive"),
    (dict(images=np.zeros((2, 32, 48, 3), np.uint8), image_shapes=None),
     "pairs refer to image 2 but images holds 2"),
    (dict(images=np.zeros((3, 30, 48, 3), np.uint8), image_shapes=None),
     r"view1/true_shape of pair 0 is \[32, 48\] but image 1 is \[30, 48\]"),
    (dict(format_version=np.array(9)), "format 9 is newer"),
])
def test_npz_validation_names_the_file_and_the_problem(tmp_path, changes, message):
    preds, _ = small_predictions(mixed=False)
    preds.save_npz(tmp_path / "p.npz")
    bad = rewrite(tmp_path / "p.npz", **changes)
    with pytest.raises(InputError, match=message) as info:
        PairPredictions.load_npz(bad)
    assert str(bad) in str(info.value)


def test_unreadable_npz_is_a_clear_error(tmp_path):
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="junk.npz: not a readable .npz file"):
        PairPredictions.load_npz(tmp_path / "junk.npz")
    with pytest.raises(InputError, match="missing.npz: predictions file not found"):
        PairPredictions.load_npz(tmp_path / "missing.npz")
    with zipfile.ZipFile(tmp_path / "other.npz", "w") as z:
        z.writestr("x.npy", b"")
    with pytest.raises(InputError, match="other.npz"):
        PairPredictions.load_npz(tmp_path / "other.npz")


def test_pickled_npz_is_refused_without_advice_to_unpickle(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, **{"view1/idx": np.array([{"a": 1}], dtype=object)})
    with pytest.raises(InputError) as info:
        PairPredictions.load_npz(path)
    message = str(info.value)
    assert message.startswith(f"{path}: it holds Python objects (pickles)")
    assert "could run arbitrary code" in message and "np.savez(" in message
    assert "allow_pickle" not in message and "unsafe" not in message


@pytest.mark.parametrize("mixed", [False, True])
def test_reference_dict_round_trip(mixed):
    preds, images = small_predictions(mixed)
    ref = preds.to_reference_dict()
    assert ref["loss"] is None and ref["view2"]["idx"] == [0, 0, 1, 1, 2, 2]
    assert ref["view1"]["instance"] == ["1", "2", "2", "0", "0", "1"]
    if mixed:  # reference convention: per-edge tensors without batch dim
        assert isinstance(ref["pred1"]["pts3d"], list) and ref["pred1"]["pts3d"][0].ndim == 3
        assert ref["view1"]["img"][0].shape == (3, 48, 32)
    else:
        assert ref["pred2"]["desc"].shape == (6, 32, 48, 6)
        assert ref["view1"]["true_shape"].dtype == torch.int32
        # img is the loader's float32 normalisation of the kept uint8 image, bit for bit
        expected = (torch.from_numpy(images[1]).permute(2, 0, 1).float() / 255 - 0.5) / 0.5
        torch.testing.assert_close(ref["view1"]["img"][0], expected, rtol=0, atol=0)
    back = PairPredictions.from_reference_dict(ref)
    assert_same_predictions(preds, back)
    for got, want in zip(back.images, images, strict=True):
        np.testing.assert_array_equal(got, want)


# ----------------------------------------------------------------------------- tiny network


def tiny_model(name: str):
    loading = pytest.importorskip("recon4d.models.loading",
                                  reason="checkpoint loading not available")
    return loading.load_model(GOLDEN_DIR / "checkpoints" / f"{name}.pth")


def forward_cases() -> list[dict]:
    return [c for c in load_manifest()["cases"] if c["kind"] == "model_forward"
            and c["call"] == "inference" and c["model"]["build"] == "load_model"]


@pytest.mark.parametrize("case", forward_cases(), ids=lambda c: c["name"])
def test_engine_reproduces_the_reference_batch_inference(case):
    """The golden pairs run through infer_pairs (one batch, as the reference did)."""
    loading = pytest.importorskip("recon4d.models.loading",
                                  reason="checkpoint loading not available")
    model = loading.load_model(GOLDEN_DIR / case["files"]["checkpoint"])
    inputs = load_file(str(GOLDEN_DIR / case["files"]["inputs"]))
    idx1, idx2 = case["views"]["view1"]["idx"], case["views"]["view2"]["idx"]
    found = {}
    for side, idx in (("view1", idx1), ("view2", idx2)):
        for k, i in enumerate(idx):
            found.setdefault(i, (torch.from_numpy(inputs[f"{side}.img"][k:k + 1]),
                                 inputs[f"{side}.true_shape"][k:k + 1]))
    if sorted(found) != list(range(len(found))):
        pytest.skip("case does not use every image index")
    views = [{"img": found[i][0], "true_shape": found[i][1], "idx": i, "instance": str(i)}
             for i in range(len(found))]
    preds = infer_pairs(model, views, np.stack([idx1, idx2], axis=1), batch_size=len(idx1),
                        progress=False)
    expected = load_file(str(GOLDEN_DIR / case["files"]["expected"]))
    for name, exp in expected.items():
        side, key = name.split(".", 1)
        actual = torch.stack([preds[e][side][key] for e in range(len(preds))]).numpy()
        tol = case.get("tensor_tolerances", {}).get(name, case)
        assert_matches(f"{case['name']}:{name}", actual, exp, tol["atol"], tol["rtol"])


def test_tiny_network_batched_equals_unbatched_with_mixed_shapes():
    model = tiny_model("tiny_dust3r_dpt")
    views, _ = make_views([(32, 48), (48, 32), (32, 48)], seed=11)
    edges = make_pairs(3, "complete")
    batched = infer_pairs(model, views, edges, batch_size=4, progress=False)
    single = infer_pairs(model, views, edges, batch_size=1, progress=False)
    # tolerance of the golden symmetrized DPT case (same network, same half-encoder path)
    tol = max((c for c in forward_cases() if c["symmetrized"] and "dpt" in c["name"]),
              key=lambda c: c["rtol"])
    for e in range(len(edges)):
        for side in ("pred1", "pred2"):
            for name, value in single[e][side].items():
                np.testing.assert_allclose(batched[e][side][name], value, rtol=tol["rtol"],
                                           atol=tol["atol"])


def test_repr_is_one_short_line_without_array_contents():
    preds, _ = small_predictions(mixed=True)
    text = repr(preds)
    assert "\n" not in text and len(text) < 300
    assert f"{len(preds)} edges" in text and "desc" in text and "tensor(" not in text
