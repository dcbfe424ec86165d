"""PairStore: pair predictions on disk in float16, read back by window, fed by infer_pairs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recon4d.errors import InputError, Recon4dError
from recon4d.inference import infer_pairs, make_pairs
from recon4d.inference.pair_store import PairStore
from recon4d.synthetic import OracleModel, generate_scene

F16_REL = 2.0 ** -10  # twice float16's unit roundoff


def _preds(edges: np.ndarray, height: int, width: int, seed: int = 0) -> tuple[dict, dict]:
    """Random pointmaps far from unit scale and confidences in [1, 60]."""
    rng = np.random.default_rng(seed)
    shape = (len(edges), height, width)
    points = [torch.from_numpy(rng.normal(0, 300, shape + (3,)).astype(np.float32))
              for _ in range(2)]
    confs = [torch.from_numpy(rng.uniform(1, 60, shape).astype(np.float32)) for _ in range(2)]
    return ({"pts3d": points[0], "conf": confs[0]},
            {"pts3d_in_other_view": points[1], "conf": confs[1]})


def _close(read: torch.Tensor, truth: torch.Tensor, scale: torch.Tensor) -> bool:
    """Within float16 precision of the truth, relative to `scale` (per edge or per value)."""
    return bool(((read - truth).abs() <= F16_REL * scale).all())


def test_round_trip_within_float16_precision(tmp_path):
    edges = np.array([[0, 1], [1, 0], [1, 2], [2, 1], [0, 2]])
    pred1, pred2 = _preds(edges, 4, 6)
    images = np.random.default_rng(1).integers(0, 256, (3, 4, 6, 3), dtype=np.uint8)
    with PairStore(tmp_path, edges, 3, 4, 6) as store:
        order = np.array([3, 0, 4])  # batches arrive in any order
        store.add(order, *({k: v[order] for k, v in p.items()} for p in (pred1, pred2)))
        rest = np.array([1, 2])
        store.add(rest, *({k: v[rest] for k, v in p.items()} for p in (pred1, pred2)))
        store.add_images(images)
        got = store.read(np.arange(3))
    np.testing.assert_array_equal(got.edges, edges)
    np.testing.assert_array_equal(got.images, images)
    for side, truth in (("pred1", pred1), ("pred2", pred2)):
        read = getattr(got, side)
        for key, value in truth.items():
            if key == "conf":  # log stored: relative error of the confidence
                assert _close(read[key], value, value * np.log(60))
            else:  # the per-edge scale bounds the error
                edge_max = value.abs().amax(dim=(1, 2, 3))[:, None, None, None]
                assert _close(read[key], value, edge_max)


def test_read_selects_the_edges_inside_the_frames_and_renumbers(tmp_path):
    edges = make_pairs(6, "swin-2-noncyclic")
    pred1, pred2 = _preds(edges, 2, 3)
    with PairStore(tmp_path, edges, 6, 2, 3) as store:
        store.add(np.arange(len(edges)), pred1, pred2)
        got = store.read(np.array([2, 3, 4]))
    expected = [k for k, (i, j) in enumerate(edges) if {i, j} <= {2, 3, 4}]
    assert sorted(map(tuple, got.edges)) == sorted(map(tuple, edges[expected] - 2))
    assert len(got) == 6  # (2,3), (3,4), (2,4) both ways
    for row, k in enumerate(expected):
        assert _close(got.pred1["pts3d"][row], pred1["pts3d"][k], pred1["pts3d"][k].abs().max())


def test_infer_pairs_sink_streams_what_it_would_keep(tmp_path):
    scene = generate_scene(frames=3, width=48, height=32, movers=0, seed=0)
    oracle = OracleModel(scene)
    views = oracle.views()
    edges = make_pairs(3, "complete")
    kept = infer_pairs(oracle, views, edges, batch_size=2, device="cpu", progress=False)
    with PairStore(tmp_path, edges, 3, 32, 48) as store:
        streamed = infer_pairs(oracle, views, edges, batch_size=2, device="cpu", progress=False,
                               sink=store.add)
        got = store.read(np.arange(3))
    assert streamed.groups[0].pred1 == {} and streamed.groups[0].pred2 == {}
    np.testing.assert_array_equal(streamed.edges, edges)
    np.testing.assert_array_equal(got.edges, edges)
    points = kept.pred1["pts3d"]
    assert _close(got.pred1["pts3d"], points, points.abs().amax(dim=(1, 2, 3))[:, None, None, None])
    assert _close(got.pred2["conf"], kept.pred2["conf"], kept.pred2["conf"] * 4)


def test_refuses_unwritten_pairs_and_non_finite_predictions(tmp_path):
    edges = np.array([[0, 1], [1, 0]])
    pred1, pred2 = _preds(edges, 2, 2)
    with PairStore(tmp_path, edges, 2, 2, 2) as store:
        with pytest.raises(Recon4dError, match="pair 0-1 was never stored"):
            store.read(np.arange(2))
        pred1["pts3d"][1, 0, 0, 0] = float("nan")
        with pytest.raises(InputError, match="pair 1-0: the model predicted non-finite"):
            store.add(np.arange(2), pred1, pred2)


def test_folder_removed_on_close_and_on_error(tmp_path):
    edges = np.array([[0, 1]])
    with PairStore(tmp_path, edges, 2, 2, 2) as store:
        assert store.folder.parent == tmp_path and store.folder.is_dir()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError), PairStore(tmp_path, edges, 2, 2, 2):
        raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_read_of_long_runs_and_gaps_matches_record_by_record(tmp_path, monkeypatch):
    """Adjacent records are read in runs of at most _READ_RECORDS: runs longer than that, gaps
    and single records all decode as one record at a time would."""
    import recon4d.inference.pair_store as pair_store

    monkeypatch.setattr(pair_store, "_READ_RECORDS", 3)
    edges = make_pairs(9, "swin-2-noncyclic")
    pred1, pred2 = _preds(edges, 2, 3)
    with PairStore(tmp_path, edges, 9, 2, 3) as store:
        store.add(np.arange(len(edges)), pred1, pred2)
        frames = np.array([0, 1, 2, 3, 4, 6, 7, 8])  # frame 5 out: gaps in the positions
        got = store.read(frames)
        positions = store.edges_within(frames)
        assert np.diff(positions).max() > 1 and len(positions) > 2 * 3
        one_by_one = {name: torch.stack([store._read_field(name, np.array([e]))[0]
                                         for e in positions]) for name in pair_store._FIELDS}
    torch.testing.assert_close(got.pred1["pts3d"], one_by_one["pts_i"], rtol=0, atol=0)
    torch.testing.assert_close(got.pred2["pts3d_in_other_view"], one_by_one["pts_j"], rtol=0,
                               atol=0)
    torch.testing.assert_close(got.pred1["conf"], one_by_one["conf_i"], rtol=0, atol=0)
    torch.testing.assert_close(got.pred2["conf"], one_by_one["conf_j"], rtol=0, atol=0)
    truth = pred1["pts3d"][torch.from_numpy(positions)]
    assert _close(got.pred1["pts3d"], truth, truth.abs().amax(dim=(1, 2, 3))[:, None, None, None])
