"""Optical flow of pair edges: DIS recovers known shifts, RAFT loads only local weights."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from recon4d.dynamics.optical_flow import optical_flow
from recon4d.errors import InputError, OptionError, Recon4dError
from recon4d.synthetic import generate_scene

pytest.importorskip("cv2", reason="DIS flow needs opencv-python-headless (extra 'flow')")
HAS_TORCHVISION = importlib.util.find_spec("torchvision") is not None


def textured(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random RGB texture (blurred noise), periodic so shifts by np.roll are exact."""
    rng = np.random.default_rng(seed)
    spectrum = np.fft.fft2(rng.standard_normal((3, height, width)))
    fy, fx = np.fft.fftfreq(height)[:, None], np.fft.fftfreq(width)[None, :]
    smooth = np.fft.ifft2(spectrum * np.exp(-(fx**2 + fy**2) / (2 * 0.08**2))).real
    smooth = (smooth - smooth.min()) / (smooth.max() - smooth.min())
    return (smooth.transpose(1, 2, 0) * 255).astype(np.uint8)


def shifted_pair(dx: int, dy: int, height: int = 96, width: int = 128) -> np.ndarray:
    """Frames 0 and 1 where frame 1 is frame 0 moved by (dx, dy): the flow 0 -> 1 is (dx, dy)."""
    first = textured(height, width)
    return np.stack([first, np.roll(first, (dy, dx), axis=(0, 1))])


def interior(flow: np.ndarray, margin: int = 16) -> np.ndarray:
    """Flow vectors away from the borders (where content wraps around)."""
    return flow[margin:-margin, margin:-margin].reshape(-1, 2)


def test_dis_recovers_a_translation_both_ways() -> None:
    images = shifted_pair(3, -2)
    flow = optical_flow(images, np.array([[0, 1], [1, 0]]))
    assert flow.shape == (2, 96, 128, 2) and flow.dtype == np.float32
    np.testing.assert_allclose(np.median(interior(flow[0]), axis=0), [3, -2], atol=0.2)
    np.testing.assert_allclose(np.median(interior(flow[1]), axis=0), [-3, 2], atol=0.2)


def test_dis_follows_a_large_shift_from_an_initial_guess() -> None:
    images = shifted_pair(40, 10)
    guess = np.broadcast_to(np.array([37.0, 12.0], np.float32), (1, 96, 128, 2)).copy()
    guess[0, :8] = np.nan  # no guess there: taken as zero
    flow = optical_flow(images, np.array([[0, 1]]), initial=guess)
    np.testing.assert_allclose(np.median(interior(flow[0]), axis=0), [40, 10], atol=0.3)


def test_fine_dis_follows_the_true_flow_more_closely() -> None:
    scene = generate_scene(frames=4, width=128, height=96, movers=2, seed=0)
    edges = np.array([[0, 1], [1, 2], [2, 3]])
    p50, p90 = {}, {}
    for preset in ("medium", "fine"):
        flow = optical_flow(scene.rgb, edges, dis_preset=preset)
        error = np.linalg.norm(flow - scene.flow_fwd, axis=-1)[scene.flow_valid]
        p50[preset], p90[preset] = np.percentile(error, [50, 90])
    # measured: p50 0.27 -> 0.16 px, p90 1.03 -> 0.58 px
    assert p50["fine"] < 0.75 * p50["medium"] and p90["fine"] < 0.75 * p90["medium"]


def test_bad_requests_are_refused() -> None:
    images = shifted_pair(1, 1)
    edges = np.array([[0, 1]])
    with pytest.raises(OptionError, match="method must be one of"):
        optical_flow(images, edges, "farneback")
    with pytest.raises(OptionError, match="DIS preset"):
        optical_flow(images, edges, dis_preset="slow")
    with pytest.raises(OptionError, match="local weights file"):
        optical_flow(images, edges, "raft")
    with pytest.raises(InputError, match="uint8"):
        optical_flow(images.astype(np.float32), edges)
    with pytest.raises(InputError, match="outside"):
        optical_flow(images, np.array([[0, 2]]))
    with pytest.raises(InputError, match="initial flow must be"):
        optical_flow(images, edges, initial=np.zeros((1, 4, 4, 2), np.float32))


@pytest.mark.skipif(HAS_TORCHVISION, reason="torchvision is installed: the RAFT run is tested")
def test_raft_without_torchvision_names_the_package(tmp_path) -> None:
    weights = tmp_path / "raft.pth"
    weights.write_bytes(b"")
    with pytest.raises(Recon4dError, match="needs the package 'torchvision'"):
        optical_flow(shifted_pair(1, 1), np.array([[0, 1]]), "raft", raft_weights=weights)


@pytest.mark.skipif(not HAS_TORCHVISION, reason="torchvision does not import here")
def test_raft_runs_from_a_local_state_dict(tmp_path) -> None:
    import torch
    from torchvision.models.optical_flow import raft_small

    weights = tmp_path / "raft_small.pth"
    torch.save(raft_small(weights=None).state_dict(), weights)
    images = shifted_pair(2, 1, height=60, width=76)  # not multiples of 8: padded inside
    flow = optical_flow(images, np.array([[0, 1], [1, 0]]), "raft", raft_weights=weights)
    assert flow.shape == (2, 60, 76, 2) and np.isfinite(flow).all()
    with pytest.raises(InputError, match="no such file"):
        optical_flow(images, np.array([[0, 1]]), "raft", raft_weights=tmp_path / "none.pth")
