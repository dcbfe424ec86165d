"""Bounded memory of the MASt3R-SLAM stream (recon4d.slam.mast3r_store): keyframes, edges and
the network's keyframe codes spilled to disk come back bit for bit, RAM holds at most the
stores' capacity, the temporary directory goes at the end and on errors, and a stream that
spills computes exactly the poses, edges and map of one that keeps everything in memory."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from recon4d.io.images import load_images
from recon4d.models import load_model
from recon4d.options import Mast3rSlamOptions
from recon4d.slam.mast3r import Mast3rSlam, stream_poses
from recon4d.slam.mast3r_graph import Edge
from recon4d.slam.mast3r_keyframe import Keyframe
from recon4d.slam.mast3r_network import NetworkPairSource
from recon4d.slam.mast3r_store import FrameLinks, SpillSpace, SpillStore
from recon4d.synthetic import generate_scene
from recon4d.synthetic.mast3r_slam_oracle import Mast3rSlamOracle
from tests.conftest import GOLDEN_DIR

pytestmark = pytest.mark.usefixtures("one_torch_thread")

H, W = 6, 8


def keyframe(index: int) -> Keyframe:
    """A keyframe of random maps of every dtype a keyframe holds."""
    gen = torch.Generator().manual_seed(index)
    image = np.random.default_rng(index).integers(0, 256, (H, W, 3), dtype=np.uint8)
    movers = torch.rand(H, W, generator=gen) > 0.7
    flags = torch.randint(0, 3, (H, W), generator=gen, dtype=torch.uint8)
    return Keyframe(index, image, torch.randn(H, W, 3, generator=gen),
                    1 + torch.rand(H, W, generator=gen), 1, movers,
                    torch.eye(4, dtype=torch.float64), flags)


def dense(kf: Keyframe) -> tuple:
    return (kf.image.copy(), kf.points.clone(), kf.conf_sum.clone(), kf.movers.clone(),
            kf.flags.clone())


def assert_same(kf: Keyframe, expected: tuple) -> None:
    image, points, conf, movers, flags = expected
    assert np.array_equal(kf.image, image) and kf.image.dtype == np.uint8
    for got, want in ((kf.points, points), (kf.conf_sum, conf), (kf.movers, movers),
                      (kf.flags, flags)):
        assert got.dtype == want.dtype and torch.equal(got, want)


@pytest.fixture
def space():
    space = SpillSpace()
    yield space
    space.close()


def test_spilled_keyframes_and_edges_come_back_bit_for_bit(space):
    store = SpillStore(space, "keyframe", capacity=1)
    first, second = keyframe(0), keyframe(1)
    expected = dense(first)
    store.add(first)
    assert space.directory is None  # nothing spilled yet
    store.add(second)
    assert not first.is_resident() and second.is_resident()
    assert len(list(space.directory.glob("keyframe0000000_*.npy"))) == 5
    assert_same(first, expected)  # paged in again, the second one out
    assert first.is_resident() and not second.is_resident()

    # a fusion into a paged-in keyframe is kept when it is spilled again: X = (C X + C' X')/(C+C')
    points, conf = torch.full((H, W, 3), 2.0), torch.full((H, W), 3.0)
    fused = (expected[2][..., None] * expected[1] + 3.0 * points) / (expected[2] + 3.0)[..., None]
    first.fuse(points, conf)
    assert_same(second, dense(keyframe(1)))  # spills the first one
    assert not first.is_resident() and first.count == 2
    assert torch.allclose(first.points, fused) and torch.equal(first.conf_sum, expected[2] + 3)

    edges = SpillStore(space, "edge", capacity=1)
    pix = torch.arange(5, dtype=torch.int32)
    target = torch.arange(15.0).reshape(5, 3)
    edge = Edge(0, 1, target, pix.flip(0), torch.linspace(0.5, 1.5, 5))
    edges.add(edge)
    edges.add(Edge(1, 0, target + 1, pix, torch.ones(5)))
    assert not edge.is_resident() and (edge.a, edge.b) == (0, 1)
    assert torch.equal(edge.pix_b, pix.flip(0)) and edge.pix_b.dtype == torch.int32
    assert torch.equal(edge.target, target)
    assert torch.equal(edge.weight, torch.linspace(0.5, 1.5, 5))


def test_ram_holds_at_most_capacity_least_recently_used_out_first(space):
    store = SpillStore(space, "keyframe", capacity=3)
    keyframes = [keyframe(i) for i in range(8)]
    expected = [dense(kf) for kf in keyframes]
    order: list[int] = []  # the LRU order, kept by hand
    rng = np.random.default_rng(0)
    for step in [*range(8), *rng.integers(0, 8, 40).tolist()]:
        if step < len(store):
            assert_same(keyframes[step], expected[step])
        else:
            store.add(keyframes[step])
        order = [k for k in order if k != step] + [step]
        resident = [k for k, kf in enumerate(keyframes[:len(store)]) if kf.is_resident()]
        assert sorted(resident) == sorted(order[-3:])
        assert store.resident_keys() == order[-3:]


def test_frame_links_read_as_the_pairs_appended():
    links, pairs = FrameLinks(), []
    for i in range(150):  # past the first growth
        pair = (i // 7, torch.randn(4, 4, dtype=torch.float64))
        links.append(pair)
        pairs.append(pair)
    assert len(links) == 150 and links[-1][0] == 21
    for (k, pose), (want_k, want) in zip(links, pairs, strict=True):
        assert k == want_k and torch.equal(pose, want)
    assert links.keyframe_ids().tolist() == [k for k, _ in pairs]
    links[-2] = (3, torch.eye(4, dtype=torch.float64))
    assert links[148][0] == 3 and torch.equal(links[148][1], torch.eye(4, dtype=torch.float64))
    assert torch.equal(links[149][1], pairs[149][1])


@pytest.fixture(scope="module")
def loop_scene():
    """Past a full turn at 8 degrees a frame: loop edges reach back to old keyframes."""
    return generate_scene(frames=56, width=48, height=32, movers=0, seed=0, fps=2.5)


OPTIONS = Mast3rSlamOptions(window=3, loop_gap=3, loop_keyframes=1, anchor_edges=2)


def run(scene, keyframes_in_ram: int, edges_in_ram: int) -> tuple[Mast3rSlam, list]:
    """The stream with the given store capacities; also the (keyframe, edge) files seen."""
    source = Mast3rSlamOracle(scene)
    views = source.views()
    slam = Mast3rSlam(source, OPTIONS)
    slam.keyframe_store.capacity = keyframes_in_ram
    slam.push(views[0])
    slam.graph.edge_store.capacity = edges_in_ram
    seen = []
    for view in views[1:]:
        slam.push(view)
        resident = sum(kf.is_resident() for kf in slam.keyframes)
        assert resident <= keyframes_in_ram
        assert sum(e.is_resident() for e in slam.graph.edges) <= edges_in_ram
        files = [] if slam.spill.directory is None else list(slam.spill.directory.iterdir())
        seen.append(len(files))
    return slam, seen


def test_a_spilling_stream_computes_what_the_in_memory_one_does(loop_scene):
    memory, files = run(loop_scene, 10**6, 10**6)
    assert max(files) == 0 and memory.spill.directory is None
    spilled, files = run(loop_scene, 2, 3)
    assert max(files) > 0
    loops = [e for e in spilled.graph.edges if abs(e.a - e.b) >= OPTIONS.loop_gap]
    assert loops  # the back end reached spilled keyframes
    assert np.array_equal(spilled.frame_poses(), memory.frame_poses())
    assert np.array_equal(spilled.keyframe_poses(), memory.keyframe_poses())
    assert [(e.a, e.b) for e in spilled.graph.edges] == [(e.a, e.b) for e in memory.graph.edges]
    for ours, theirs in zip(spilled.graph.edges, memory.graph.edges, strict=True):
        assert torch.equal(ours.weight, theirs.weight) and torch.equal(ours.target, theirs.target)
    for ours, theirs in zip(spilled.cloud(), memory.cloud(), strict=True):
        assert np.array_equal(ours, theirs)
    directory = spilled.spill.directory
    with spilled:
        assert directory.is_dir()
    assert not directory.exists()
    with pytest.raises(RuntimeError, match="read its results before closing"):
        spilled.cloud()
    memory.close()


def spill_dirs(parent: Path) -> list[Path]:
    return list(parent.glob("recon4d-slam-*"))


def test_the_spill_directory_goes_when_a_stream_ends_or_raises(loop_scene, tmp_path,
                                                               monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    source = Mast3rSlamOracle(loop_scene)
    views = source.views()
    options = Mast3rSlamOptions(window=2, loop_keyframes=0, anchor_edges=1, retrieval_k=1)
    during = []

    def frames(fail_at: int | None):
        for i, view in enumerate(views):
            if i == fail_at:
                raise RuntimeError("camera unplugged")
            during.append(len(spill_dirs(tmp_path)))
            yield view

    assert len(list(stream_poses(source, frames(None), options))) == len(views)
    assert max(during) == 1 and spill_dirs(tmp_path) == []  # spilled, then removed
    during.clear()
    with pytest.raises(RuntimeError, match="camera unplugged"):
        list(stream_poses(source, frames(40), options))
    assert max(during) == 1 and spill_dirs(tmp_path) == []


def test_spilled_network_codes_decode_as_before(space):
    model = load_model(GOLDEN_DIR / "checkpoints" / "tiny_mast3r_a.pth")
    source = NetworkPairSource(model)
    rng = np.random.default_rng(0)
    views = load_images([rng.integers(0, 255, (48, 64, 3), dtype=np.uint8) for _ in range(3)],
                        size=64)
    codes = [source.encode(v) for v in views]
    before = source.decode(codes[0], codes[1])
    store = SpillStore(space, "code", capacity=1)
    for code in codes:
        store.add(code)
    assert [c.is_resident() for c in codes] == [False, False, True]
    for ours, theirs in zip(source.decode(codes[0], codes[1]), before, strict=True):
        for key in theirs:
            assert torch.equal(ours[key], theirs[key])
