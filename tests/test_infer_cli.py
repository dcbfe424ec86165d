"""`recon4d infer` end to end: folder or video in, predictions.npz + scene.json out, atomically."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

from recon4d import models
from recon4d.cli import main
from recon4d.inference import PairPredictions, infer_pairs
from recon4d.io import load_images
from tests.conftest import GOLDEN_DIR, load_manifest
from tests.test_inference import PixelPairModel


def write_images(folder, count: int = 4, size=(96, 64)) -> list[str]:
    """Small distinct RGB images named so that natural order differs from string order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(5)
    names = [f"frame_{k}.png" for k in (1, 2, 10, 11)][:count]
    for name in names:
        pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / name)
    return names


@pytest.fixture
def stand_in(monkeypatch):
    """Replace checkpoint loading by the stand-in network; records the requested specs."""
    requested = []

    def fake_load_model(spec, device="cpu"):
        requested.append((spec, str(device)))
        return PixelPairModel(descriptors=True)

    monkeypatch.setattr(models, "load_model", fake_load_model, raising=False)
    return requested


def leftovers(parent, out_name: str) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{out_name}."))


def test_infer_writes_predictions_and_scene_json(tmp_path, stand_in, capsys):
    names = write_images(tmp_path / "imgs")
    out = tmp_path / "run"
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(out), "--size", "64",
                 "--graph", "swin-1-noncyclic", "--batch-size", "2"]) == 0
    assert stand_in == [("DUSt3R_ViTLarge_BaseDecoder_512_dpt",
                         "cuda" if torch.cuda.is_available() else "cpu")]
    preds = PairPredictions.load_npz(out / "predictions.npz")
    assert {tuple(e) for e in preds.edges.tolist()} == {(0, 1), (1, 2), (2, 3), (1, 0), (2, 1),
                                                       (3, 2)}
    assert preds.image_names == names  # natural order: frame_2 before frame_10
    assert preds.timestamps is None
    views = load_images([tmp_path / "imgs" / n for n in names], size=64)
    assert preds.images.shape == (4, 32, 64, 3)
    for e, (i, j) in enumerate(preds.edges.tolist()):  # the network on exactly these views
        pred1, _ = PixelPairModel(descriptors=True)(
            {**views[i], "instance": [str(i)]}, {**views[j], "instance": [str(j)]})
        torch.testing.assert_close(preds[e]["pred1"]["pts3d"], pred1["pts3d"][0].detach(),
                                   rtol=0, atol=0)
    scene = json.loads((out / "scene.json").read_text())
    assert scene["command"] == "infer" and scene["files"] == ["predictions.npz", "scene.json"]
    network = scene["options"]["network"]
    assert network["graph"] == "swin-1-noncyclic" and network["size"] == 64
    assert scene["inputs"]["pairs"] == 6 and scene["inputs"]["frames"] == 4
    assert scene["model"]["weights"] == "DUSt3R_ViTLarge_BaseDecoder_512_dpt"
    assert "4 frames, 6 pairs" in capsys.readouterr().out
    assert leftovers(tmp_path, "run") == []


def test_infer_reads_a_video_with_timestamps(tmp_path, stand_in):
    av = pytest.importorskip("av")
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for k in range(5):
            frame = np.full((48, 64, 3), 40 * k, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "out"
    assert main(["infer", str(video), "--out", str(out), "--size", "64", "--num-frames", "3",
                 "--no-symmetrize"]) == 0
    preds = PairPredictions.load_npz(out / "predictions.npz")
    assert preds.edges.tolist() == [[1, 0], [2, 0], [2, 1]]  # auto graph: complete
    assert preds.image_names == ["frame_000000", "frame_000001", "frame_000002"]
    np.testing.assert_allclose(preds.timestamps, [0.0, 0.1, 0.2], atol=1e-6)


@pytest.mark.parametrize("content", [[], ["notes.txt"]])
def test_bad_input_folder_exits_2_and_leaves_no_output(tmp_path, stand_in, capsys, content):
    folder = tmp_path / "empty"
    folder.mkdir()
    for name in content:
        (folder / name).write_text("not an image")
    out = tmp_path / "out"
    assert main(["infer", str(folder), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "recon4d infer: error:" in err and str(folder) in err and "no images" in err
    assert not out.exists() and leftovers(tmp_path, "out") == []
    assert stand_in == []  # failed before loading any weights


def test_single_image_and_cpu_half_precision_are_refused_early(tmp_path, stand_in, capsys):
    write_images(tmp_path / "one", count=1)
    assert main(["infer", str(tmp_path / "one"), "--out", str(tmp_path / "o")]) == 2
    assert "1 frame(s)" in capsys.readouterr().err
    write_images(tmp_path / "imgs")
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(tmp_path / "o"),
                 "--device", "cpu", "--dtype", "fp16"]) == 2
    assert "dtype fp16 is only supported on CUDA" in capsys.readouterr().err
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(tmp_path / "o"),
                 "--graph", "ring-3"]) == 2
    assert "unknown pair graph 'ring-3'" in capsys.readouterr().err
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(tmp_path / "o"),
                 "--size", "100"]) == 2
    assert "--size must be a multiple of 16" in capsys.readouterr().err
    if not torch.cuda.is_available():
        assert main(["infer", str(tmp_path / "imgs"), "--out", str(tmp_path / "o"),
                     "--device", "cuda"]) == 2
        assert "no CUDA GPU" in capsys.readouterr().err
    assert stand_in == [] and not (tmp_path / "o").exists()


def test_output_folder_is_replaced_only_if_it_is_a_recon4d_output(tmp_path, stand_in, capsys):
    write_images(tmp_path / "imgs", count=2)
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("precious")
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(foreign), "--size", "64"]) == 2
    assert "not a recon4d output" in capsys.readouterr().err
    assert (foreign / "thesis.tex").read_text() == "precious"
    out = tmp_path / "run"
    for _ in range(2):  # the second run replaces the first
        assert main(["infer", str(tmp_path / "imgs"), "--out", str(out), "--size", "64"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["predictions.npz", "scene.json"]


def test_interrupted_write_leaves_the_previous_output_intact(tmp_path, stand_in, monkeypatch):
    write_images(tmp_path / "imgs", count=2)
    out = tmp_path / "run"
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(out), "--size", "64"]) == 0
    before = (out / "predictions.npz").read_bytes()

    def interrupted_save(self, path):
        path.write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(PairPredictions, "save_npz", interrupted_save)
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(out), "--size", "64"]) == 130
    assert (out / "predictions.npz").read_bytes() == before
    assert leftovers(tmp_path, "run") == []
    fresh = tmp_path / "fresh"
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(fresh), "--size", "64"]) == 130
    assert not fresh.exists() and leftovers(tmp_path, "fresh") == []


@pytest.mark.parametrize("checkpoint, descriptors", [("tiny_dust3r_dpt", False),
                                                     ("tiny_mast3r_b", True)])
def test_infer_with_tiny_official_checkpoints(tmp_path, checkpoint, descriptors):
    pytest.importorskip("recon4d.models.loading", reason="checkpoint loading not available")
    write_images(tmp_path / "imgs", count=2)
    out = tmp_path / "out"
    weights = GOLDEN_DIR / "checkpoints" / f"{checkpoint}.pth"
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(out), "--weights", str(weights),
                 "--size", "64", "--device", "cpu"]) == 0
    with np.load(out / "predictions.npz") as npz:
        assert ("pred1/desc" in npz.files) == descriptors
        assert ("pred2/desc_conf" in npz.files) == descriptors
        assert npz["pred2/pts3d_in_other_view"].shape == (2, 32, 64, 3)
        assert (npz["pred1/conf"] >= 1).all()
        if descriptors:
            np.testing.assert_allclose(np.linalg.norm(npz["pred1/desc"], axis=-1), 1, atol=1e-5)
    preds = PairPredictions.load_npz(out / "predictions.npz")
    scene = json.loads((out / "scene.json").read_text())
    assert scene["model"]["arch"] == ("AsymmetricMASt3R" if descriptors
                                      else "AsymmetricCroCo3DStereo")
    # the CLI's numbers (one symmetrized batch) are the network's on one pair of loader views,
    # within the golden tolerance of this checkpoint
    model = models.load_model(weights)
    views = load_images(tmp_path / "imgs", size=64)
    with torch.no_grad():
        pred1, pred2 = model({**views[1], "instance": ["1"]}, {**views[0], "instance": ["0"]})
    assert preds.edges[0].tolist() == [1, 0]
    atol, rtol = golden_tolerance(checkpoint)
    for name, value in pred1.items():
        np.testing.assert_allclose(preds[0]["pred1"][name], value[0], rtol=rtol, atol=atol)
    for name, value in pred2.items():
        np.testing.assert_allclose(preds[0]["pred2"][name], value[0], rtol=rtol, atol=atol)


def golden_tolerance(checkpoint: str) -> tuple[float, float]:
    """Largest (atol, rtol) of the golden forward cases of `checkpoint`."""
    cases = [c for c in load_manifest()["cases"] if c["kind"] == "model_forward"
             and c["files"]["checkpoint"].endswith(f"/{checkpoint}.pth")]
    return max(c["atol"] for c in cases), max(c["rtol"] for c in cases)


@pytest.mark.parametrize("argv, message", [
    (["infer", "in", "--out", "o", "--num-frames", "0"],
     "--num-frames must be an integer >= 1, got 0"),
    (["reconstruct", "--oracle", "s", "--out", "o", "--niter", "-3"],
     "--niter must be an integer >= 0, got -3"),
    (["eval", "p", "g", "--stride", "0"], "--stride: must be >= 1, got 0"),
    (["eval", "p", "g", "--start", "-1"], "--start: must be >= 0, got -1"),
])
def test_bad_counts_are_refused_before_any_work(argv, message, capsys):
    """By the option dataclasses (one line, status 2) or the parser (usage, status 2)."""
    try:
        status = main(argv)
    except SystemExit as exit_info:
        status = exit_info.code
    assert status == 2
    assert message in capsys.readouterr().err


def test_infer_probes_keeps_the_attention_maps(tmp_path):
    """`--probes` saves what `infer_pairs(..., probes=True)` gives on the same views, with the
    probe shapes the manifest's checkpoint implies (layers x heads channels, encoder width)."""
    case = next(c for c in load_manifest()["cases"] if c["kind"] == "easi3r_aggregation")
    checkpoint = str(GOLDEN_DIR / case["files"]["checkpoint"])
    names = write_images(tmp_path / "imgs", count=3, size=(96, 64))
    out = tmp_path / "run"
    assert main(["infer", str(tmp_path / "imgs"), "--out", str(out), "--weights", checkpoint,
                 "--size", "128", "--device", "cpu", "--probes"]) == 0
    preds = PairPredictions.load_npz(out / "predictions.npz")
    assert preds.has_probes
    model = models.load_model(checkpoint, device="cpu")
    views = load_images([tmp_path / "imgs" / n for n in names], size=128)
    expected = infer_pairs(model, views, preds.edges, probes=True, progress=False)
    arch = next(c for c in load_manifest()["cases"] if c["kind"] == "checkpoint"
                and c["files"]["pth"] == case["files"]["checkpoint"])["constructor"]
    dims = {key: int(re.search(rf"\b{key}=(\d+)", arch).group(1))
            for key in ("dec_depth", "dec_num_heads", "enc_embed_dim")}
    height, width = (int(v) // 16 for v in views[0]["true_shape"].reshape(2))
    assert tuple(preds.attn_maps1.shape) == (len(preds.edges), height, width,
                                             dims["dec_depth"] * dims["dec_num_heads"])
    assert tuple(preds.token_features.shape) == (3, height, width, dims["enc_embed_dim"])
    for name in ("attn_maps1", "attn_maps2", "token_features"):
        torch.testing.assert_close(getattr(preds, name), getattr(expected, name),
                                   rtol=1e-5, atol=1e-5)
