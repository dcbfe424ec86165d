"""Sharded pair inference on a real local Ray instance: the same predictions, bit for bit, as a
single-process run with as many torch threads (tiny golden checkpoint through `recon4d infer
--workers 1` and `--workers 2`, and the synthetic oracle through the library), in edge order."""

from __future__ import annotations

import functools

import numpy as np
import pytest
import torch

from recon4d.cli import main
from recon4d.cluster.sharded import run_sharded, split_batches
from recon4d.errors import Recon4dError
from recon4d.inference import infer_pairs
from recon4d.inference.run import LoadedNetwork, load_network, pair_edges
from recon4d.io import FrameSource
from recon4d.options import NetworkOptions
from recon4d.options.batch import ShardOptions
from recon4d.synthetic import OracleModel, generate_scene, load_scene, write_scene
from tests.conftest import GOLDEN_DIR
from tests.test_batch import ray_local  # noqa: F401  (the shared Ray instance)

MAST3R = GOLDEN_DIR / "checkpoints" / "tiny_mast3r_a.pth"


@pytest.fixture(scope="module")
def scene_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sharded") / "scene"
    return write_scene(generate_scene(frames=5, width=64, height=48, movers=1, seed=2), folder)


@pytest.fixture
def one_thread():
    """Torch in this process with one thread, as each actor runs (`--worker-cpus 1`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def npz_arrays(path) -> dict[str, np.ndarray]:
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def test_sharded_infer_writes_the_single_process_file(ray_local, scene_dir, tmp_path,  # noqa: F811
                                                      one_thread):
    flags = [str(scene_dir / "rgb"), "--weights", str(MAST3R), "--size", "64", "--graph",
             "swin-2", "--batch-size", "3", "--device", "cpu"]
    assert main(["infer", *flags, "--out", str(tmp_path / "single")]) == 0
    single = npz_arrays(tmp_path / "single" / "predictions.npz")
    assert {"view1/idx", "view2/idx", "pred1/desc", "pred2/pts3d_in_other_view"} <= set(single)
    for workers in ("1", "2"):
        out = tmp_path / f"sharded-{workers}"
        assert main(["infer", *flags, "--out", str(out), "--workers", workers]) == 0
        sharded = npz_arrays(out / "predictions.npz")
        assert sorted(sharded) == sorted(single), workers
        for key, value in single.items():  # every array, the edges (view1/2 idx) included
            assert sharded[key].dtype == value.dtype, (workers, key)
            assert sharded[key].shape == value.shape, (workers, key)
            assert np.array_equal(sharded[key], value, equal_nan=value.dtype.kind == "f"), (
                workers, key)


def oracle_network(network: NetworkOptions, source: FrameSource) -> LoadedNetwork:
    """The synthetic oracle of the scene folder `source.input`, loaded as a network."""
    scene = load_scene(source.input)
    oracle = OracleModel(scene)
    edges, graph = pair_edges(scene.num_frames, network)
    return LoadedNetwork(oracle, oracle.config, max(scene.shape), oracle.views(), edges, graph,
                         source, network, torch.device("cpu"))


def test_sharded_oracle_predictions_equal_the_truth_in_edge_order(ray_local, scene_dir):  # noqa: F811
    network = NetworkOptions(graph="complete", batch_size=4)
    scene = load_scene(scene_dir)
    source = FrameSource(str(scene_dir), list(scene.rgb), [f"{i}.png" for i in range(5)])
    timings: dict[str, float] = {}
    run = run_sharded(source, functools.partial(oracle_network, network),
                      ShardOptions(workers=2), progress=False, timings=timings)
    assert sorted(timings) == ["pairs", "startup"]  # the benchmark's two phases
    oracle = OracleModel(scene)
    expected = infer_pairs(oracle, oracle.views(), run.predictions.edges, batch_size=4,
                           progress=False)
    assert len(run.predictions) == 20 and run.size == 64 and run.graph == "complete"
    assert np.array_equal(run.predictions.images, scene.rgb)
    for side in ("pred1", "pred2"):
        for key, value in getattr(expected, side).items():
            assert torch.equal(getattr(run.predictions, side)[key], value), (side, key)
    i, j = run.predictions.edges[7]  # one pair straight from the oracle, as a check on order
    assert np.array_equal(run.predictions.pred1["pts3d"][7].numpy(),
                          oracle.predict_pair(int(i), int(j))[0]["pts3d"])


def test_an_actors_error_reaches_the_user_as_it_was_raised(ray_local, scene_dir):  # noqa: F811
    source = FrameSource(str(scene_dir), [], [])
    loader = functools.partial(load_network, network=NetworkOptions())
    with pytest.raises(Recon4dError) as info:
        run_sharded(source, loader, ShardOptions(workers=1), progress=False)
    assert type(info.value).__module__ == "recon4d.errors"
    assert str(info.value).startswith(f"{scene_dir}: 0 frame(s) found")


def test_probes_are_refused_with_workers_before_any_work(scene_dir, tmp_path, capsys):
    argv = ["infer", str(scene_dir / "rgb"), "--out", str(tmp_path / "out"), "--probes",
            "--workers", "2"]
    assert main(argv) == 2
    assert "--probes cannot be combined with --workers" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batches_are_split_into_contiguous_runs_of_equal_pairs():
    batches = [np.arange(k, k + n) for k, n in ((0, 4), (4, 4), (8, 2), (10, 4), (14, 2))]
    parts = split_batches(batches, 2)
    assert [[int(b[0]) for b in part] for part in parts] == [[0, 4], [8, 10, 14]]
    assert [b for part in split_batches(batches, 3) for b in part] == batches
    assert split_batches(batches[:1], 2)[1] == []
