"""`recon4d masks` end to end: images (attention, two passes), a video (flow), a predictions file
(attention from saved probes), a synthetic scene (oracle flow, scored against its true masks),
and the clear errors for inputs the estimators cannot use."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from recon4d import models
from recon4d.cli import main
from recon4d.eval.masks import mask_metrics
from recon4d.io.layout import (
    DYNAMIC_MAPS_DIR,
    DYNAMIC_MASK_DIR,
    MOTION_OVERLAY_GIF,
    MOTION_OVERLAY_VIDEO,
    RGB_DIR,
    SCENE_JSON,
    frame_file,
)
from recon4d.options import MotionOptions
from recon4d.pipeline.motion import resolve_method
from tests.conftest import GOLDEN_DIR, load_manifest
from tests.test_layout import undocumented

SIZE = "128"  # model input size: 8 x 5 tokens per 96 x 64 frame, >= 64 tokens in all
FRAME_W, FRAME_H = 96, 64


def checkpoint() -> str:
    """The tiny network the manifest's Easi3R aggregation case runs."""
    case = next(c for c in load_manifest()["cases"] if c["kind"] == "easi3r_aggregation")
    return str(GOLDEN_DIR / case["files"]["checkpoint"])


def moving_square_frames(count: int) -> list[np.ndarray]:
    """(H, W, 3) uint8 frames: a fixed noise background with a white square moving right."""
    background = np.random.default_rng(0).integers(0, 256, (FRAME_H, FRAME_W, 3), np.uint8)
    frames = []
    for k in range(count):
        frame = background.copy()
        frame[20:40, 10 + 15 * k:30 + 15 * k] = 255
        frames.append(frame)
    return frames


def image_folder(tmp_path, count: int = 4):
    folder = tmp_path / f"imgs{count}"
    folder.mkdir()
    for k, frame in enumerate(moving_square_frames(count)):
        Image.fromarray(frame).save(folder / f"f{k}.png")
    return folder


def masks_cli(*argv: str) -> int:
    return main(["masks", *map(str, argv), "--device", "cpu"])


def network(*argv: str) -> tuple[str, ...]:
    return (*argv, "--weights", checkpoint(), "--size", SIZE)


def read_pngs(out, count: int) -> np.ndarray:
    return np.stack([np.asarray(Image.open(out / frame_file(DYNAMIC_MASK_DIR, i, ".png")))
                     for i in range(count)])


def read_maps(out, count: int) -> np.ndarray:
    return np.stack([np.load(out / frame_file(DYNAMIC_MAPS_DIR, i, ".npy"))
                     for i in range(count)])


@pytest.fixture
def no_network(monkeypatch):
    """Loading weights fails the test: the error must come before any slow work."""
    def refuse(*args, **kwargs):
        raise AssertionError("the network was loaded")
    monkeypatch.setattr(models, "load_model", refuse, raising=False)


def test_attention_two_passes_on_an_image_folder(tmp_path, capsys):
    images = image_folder(tmp_path)
    out, one = tmp_path / "out", tmp_path / "one"
    assert masks_cli(images, "--out", out, *network()) == 0
    assert masks_cli(images, "--out", one, "--passes", "1", *network()) == 0
    assert "4 frames, easi3r" in capsys.readouterr().out
    scene = json.loads((out / SCENE_JSON).read_text())
    assert scene["command"] == "masks" and scene["masks"]["method"] == "easi3r"
    assert scene["masks"]["passes"] == 2 and scene["options"]["motion"]["passes"] == 2
    assert {MOTION_OVERLAY_GIF, MOTION_OVERLAY_VIDEO} <= set(scene["files"])
    assert undocumented(scene["files"]) == []  # every name is in recon4d/io/layout.py
    pngs, maps = read_pngs(out, 4), read_maps(out, 4)
    assert pngs.shape == (4, FRAME_H, FRAME_W)  # the input images' size
    assert set(np.unique(pngs)) <= {0, 255}
    assert maps.dtype == np.float32 and maps.shape[1:] == tuple(scene["masks"]["model_size"])
    assert maps.min() >= 0 and maps.max() <= 1
    threshold = scene["masks"]["threshold"]
    assert 0 < threshold < 1
    # the PNGs are the thresholded maps drawn on the original grid: same moving fraction
    assert abs((pngs > 0).mean() - (maps > threshold).mean()) < 0.03
    # the second pass re-weights the attention with the first pass's (non-empty) masks
    assert not np.allclose(maps, read_maps(one, 4), atol=1e-3)
    with Image.open(out / MOTION_OVERLAY_GIF) as gif:
        assert gif.n_frames == 4 and gif.size == (maps.shape[2], maps.shape[1])


def test_predictions_with_probes_give_the_first_pass_masks(tmp_path):
    images = image_folder(tmp_path)
    assert main(["infer", str(images), "--out", str(tmp_path / "inf"), "--probes",
                 "--device", "cpu", *network()]) == 0
    assert masks_cli("--predictions", tmp_path / "inf" / "predictions.npz",
                     "--out", tmp_path / "saved") == 0
    assert masks_cli(images, "--out", tmp_path / "net", "--passes", "1", *network()) == 0
    saved, net = (json.loads((tmp_path / d / SCENE_JSON).read_text()) for d in ("saved", "net"))
    assert saved["model"]["weights"] is None and saved["inputs"]["probes"] is True
    maps, expected = read_maps(tmp_path / "saved", 4), read_maps(tmp_path / "net", 4)
    np.testing.assert_allclose(maps, expected, atol=1e-5)
    threshold = net["masks"]["threshold"]
    assert saved["masks"]["threshold"] == pytest.approx(threshold, abs=1e-5)
    clear = np.abs(expected - threshold) > 1e-4  # pixels not at the threshold's rounding edge
    # no original sizes in a predictions file: PNGs at the model resolution
    pngs = read_pngs(tmp_path / "saved", 4)
    assert pngs.shape == expected.shape
    np.testing.assert_array_equal((pngs > 0)[clear], (expected > threshold)[clear])


def test_flow_masks_of_a_video(tmp_path):
    av = pytest.importorskip("av")
    video = tmp_path / "clip.mp4"
    with av.open(str(video), "w") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = FRAME_W, FRAME_H, "yuv420p"
        for frame in moving_square_frames(4):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    out = tmp_path / "out"
    assert masks_cli(video, "--out", out, "--motion", "flow", *network()) == 0
    scene = json.loads((out / SCENE_JSON).read_text())
    assert scene["masks"]["method"] == "flow:dis" and scene["masks"]["threshold"] == 0.35
    assert scene["masks"]["passes"] == 1
    assert read_pngs(out, 4).shape == (4, FRAME_H, FRAME_W)
    maps = read_maps(out, 4)
    assert maps.min() >= 0 and maps.max() <= 1
    with av.open(str(out / MOTION_OVERLAY_VIDEO)) as overlay:
        assert sum(1 for _ in overlay.decode(video=0)) == 4


def test_oracle_flow_masks_find_the_movers(tmp_path, capsys, no_network):
    scene_dir = tmp_path / "scene"
    assert main(["synth", str(scene_dir), "--frames", "8", "--width", "192", "--height", "144",
                 "--movers", "2", "--seed", "1", "--no-stops"]) == 0
    out = tmp_path / "out"
    assert masks_cli("--oracle", scene_dir, "--out", out, "--motion", "flow",
                     "--graph", "swin-2-noncyclic") == 0
    truth = np.stack([np.asarray(Image.open(scene_dir / frame_file(DYNAMIC_MASK_DIR, i, ".png")))
                      for i in range(8)]) > 0
    pngs = read_pngs(out, 8)
    assert pngs.shape == truth.shape  # the scene's resolution
    assert np.asarray(Image.open(scene_dir / frame_file(RGB_DIR, 0, ".png"))).shape[:2] == \
        truth.shape[1:]
    metrics = mask_metrics(pngs > 0, truth)
    print(f"oracle flow masks: J {metrics['J_mean']:.3f}, F {metrics['F_mean']:.3f}")
    assert metrics["J_mean"] > 0.3


@pytest.mark.parametrize(("frames", "extra", "message"), [
    (2, (), "at least 3 frames"),
    (4, ("--graph", "oneref-0"), "'oneref' leaves frames on one side"),
])
def test_unusable_graphs_are_refused_before_loading(tmp_path, capsys, no_network, frames, extra,
                                                    message):
    images = image_folder(tmp_path, frames)
    assert masks_cli(images, "--out", tmp_path / "out", *network(*extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_predictions_without_probes_are_refused_for_attention(tmp_path, capsys):
    images = image_folder(tmp_path, 3)
    assert main(["infer", str(images), "--out", str(tmp_path / "inf"), "--device", "cpu",
                 *network()]) == 0
    assert masks_cli("--predictions", tmp_path / "inf" / "predictions.npz",
                     "--out", tmp_path / "out", "--motion", "attention") == 2
    err = capsys.readouterr().err
    assert "no attention probes" in err and "--probes" in err
    assert not (tmp_path / "out").exists()


def test_oracle_with_attention_is_refused(tmp_path, capsys, no_network):
    # the folder need not exist: the option check comes before reading the scene
    assert masks_cli("--oracle", tmp_path / "no_scene", "--out", tmp_path / "out",
                     "--motion", "attention") == 2
    assert "--oracle gives no attention" in capsys.readouterr().err


def test_a_foreign_out_folder_is_refused_before_any_work(tmp_path, capsys, no_network):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    assert masks_cli(image_folder(tmp_path), "--out", out, *network()) == 2
    assert "output folder is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]


@pytest.mark.parametrize(("motion", "source", "probes", "expected"), [
    ("auto", "input", False, "attention"),
    ("auto", "predictions", True, "attention"),
    ("auto", "predictions", False, "flow"),
    ("auto", "oracle", False, "flow"),
    ("flow", "input", False, "flow"),
    ("attention", "predictions", False, "attention"),  # refused later, naming --probes
])
def test_auto_picks_the_estimator_the_source_allows(motion, source, probes, expected):
    assert resolve_method(MotionOptions(motion=motion), source, probes) == expected
