"""Recall of truly overlapping frame pairs by `retrieval-Na-k` pair graphs (issue 14 item 4),
against the complete graph and random graphs of the same size.

Synthetic static scenes (`generate_scene`, no movers, 2 frames per second so that an orbit
goes once around the room and far-apart frames share little). Truth: frames i and j overlap when, on
average over both directions, at least `--overlap` of one frame's pixels are seen by the other
(projected inside it, in front of the camera, depth within 5 % of its rendered depth).
Similarity: the oracle's MASt3R-style 24-d descriptors (random Fourier features of the surface
point, `recon4d.synthetic.descriptors`, default corruption) stand in for encoder tokens, which
the oracle does not produce; `pooled`: the weight-free fallback (`pooled_descriptors` of every
pixel's descriptor, cosine similarity); `asmk`: ASMK (`asmk_similarity`) over 300 random pixel
descriptors per frame with a 256-word codebook clustered from the frames themselves. Random
weights are never a result, so the network's encoder is not measured here.

Per scene: pairs of each graph, recall and precision of the true pairs, the mean recall of 20
random graphs of the same size, and CPU seconds of similarity + graph.

    python benchmarks/bench_retrieval.py [--frames 40] [--size 96x64] [--seeds 0 1 2]
        [--fps 2] [--trajectories orbit rotation]
        [--graphs retrieval-0-5 retrieval-10-5 retrieval-20-10]
        [--overlap 0.5]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def overlap_matrix(scene) -> np.ndarray:
    """(N, N) fraction of frame i's surface pixels that frame j sees (depth test at 5 %)."""
    from recon4d.geometry.cameras import depth_to_world, project
    from recon4d.geometry.transforms import apply_transform, invert_rigid

    n = scene.num_frames
    height, width = scene.shape
    world = depth_to_world(scene.depth, scene.intrinsics, scene.poses_c2w)
    frac = np.eye(n)
    for i in range(n):
        has = scene.depth[i] > 0
        for j in range(n):
            if i == j:
                continue
            cam = apply_transform(invert_rigid(scene.poses_c2w[j]), world[i][has])
            uv, z = project(cam, scene.intrinsics[j])
            col, row = np.round(uv[:, 0]), np.round(uv[:, 1])
            inside = (z > 0) & (col >= 0) & (col < width) & (row >= 0) & (row < height)
            seen = np.zeros(len(z), bool)
            d = scene.depth[j][row[inside].astype(int), col[inside].astype(int)]
            seen[inside] = np.abs(d - z[inside]) < 0.05 * z[inside]
            frac[i, j] = seen.mean() if len(seen) else 0.0
    return frac


def similarities(scene, seed: int) -> dict:
    """{'pooled': (N, N), 'asmk': (N, N)} from the oracle's descriptors, with CPU seconds."""
    import torch
    from asmk import index

    from recon4d.inference.retrieval import asmk_similarity, pooled_descriptors, similarity
    from recon4d.synthetic import OracleModel

    oracle = OracleModel(scene, desc_dim=24, seed=seed)
    rng = np.random.default_rng(seed)
    desc = [oracle.predict_view(i, i, rng)["desc"].reshape(-1, 24)
            for i in range(scene.num_frames)]
    out = {}
    start = time.process_time()
    pooled = pooled_descriptors(torch.from_numpy(np.stack(desc)))
    out["pooled"] = (similarity(pooled, pooled).double().numpy(), time.process_time() - start)
    start = time.process_time()
    picks = [d[rng.choice(len(d), 300, replace=False)] for d in desc]
    centroids = index.FaissL2Index().cluster(np.concatenate(picks), 256)
    out["asmk"] = (asmk_similarity(picks, centroids), time.process_time() - start)
    return out


def run_scene(frames: int, width: int, height: int, fps: float, trajectory: str, seed: int,
              graphs: list[str], threshold: float) -> dict:
    """Recall / precision / size of every graph and similarity on one scene."""
    from recon4d.inference import make_pairs
    from recon4d.synthetic import generate_scene

    scene = generate_scene(frames=frames, width=width, height=height, movers=0, seed=seed,
                           trajectory=trajectory, fps=fps)
    frac = overlap_matrix(scene)
    sym = (frac + frac.T) / 2
    truth = {(i, j) for i in range(frames) for j in range(i + 1, frames) if sym[i, j] >= threshold}
    total = frames * (frames - 1) // 2
    result = {"scene": f"{trajectory} seed {seed}", "true_pairs": len(truth), "all_pairs": total}
    rng = np.random.default_rng(seed)
    every = [(i, j) for i in range(frames) for j in range(i + 1, frames)]
    for name, (sim, cpu) in similarities(scene, seed).items():
        for graph in graphs:
            start = time.process_time()
            edges = {tuple(sorted(e)) for e in make_pairs(frames, graph, symmetrize=False,
                                                          similarity=sim).tolist()}
            seconds = cpu + time.process_time() - start
            hits = len(edges & truth)
            random_recall = np.mean([
                len({every[k] for k in rng.choice(total, len(edges), replace=False)} & truth)
                for _ in range(20)]) / max(len(truth), 1)
            result[f"{name} {graph}"] = {
                "pairs": len(edges), "recall": hits / max(len(truth), 1),
                "precision": hits / max(len(edges), 1), "random_recall": float(random_recall),
                "cpu_s": round(seconds, 3)}
    result["complete"] = {"pairs": total, "recall": 1.0, "precision": len(truth) / total}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--size", default="96x64")
    parser.add_argument("--fps", type=float, default=2.0, help="frames per second of the "
                        "camera path (2: a 40-frame orbit goes once around the room)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--trajectories", nargs="+", default=["orbit", "rotation"])
    parser.add_argument("--graphs", nargs="+",
                        default=["retrieval-0-5", "retrieval-10-5", "retrieval-20-10"])
    parser.add_argument("--overlap", type=float, default=0.5)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    for trajectory in args.trajectories:
        for seed in args.seeds:
            print(json.dumps(run_scene(args.frames, width, height, args.fps, trajectory, seed,
                                       args.graphs, args.overlap)), flush=True)


if __name__ == "__main__":
    main()
