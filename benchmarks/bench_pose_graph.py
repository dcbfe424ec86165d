"""Memory and time of one Levenberg-Marquardt step of the pose graph (`align/pose_graph.py`),
its camera system solved densely (LU of the 7N x 7N matrix) or block-banded (Cholesky over
chunks of frames in a band-narrowing order), on swin-style pair graphs.

Each (frames, graph, solver) runs in a fresh process: a synthetic problem (random cameras,
pairs of exact points with noise, 8 points per edge side: the pose step sees only their
moments), then one step of `solve_camera_similarities` (the windowed refinement's step, 7
unknowns per camera) with torch on one thread, after one small step (libraries loaded on
first use). Peak = the peak RSS during the step (the high-water mark reset before it) minus
the RSS just before it; the system size is that of the matrix the solver factors (dense: the
whole matrix; band: its chunk blocks).

    python benchmarks/bench_pose_graph.py [--frames 100 200 400 800]
        [--graphs swin-5-noncyclic swin-5]
"""

from __future__ import annotations

import argparse
import json

from process_memory import in_fresh_process, measured

SOLVERS = ("dense", "band")
POINTS = 8


def problem(n: int, graph: str):
    """(moments, edges, rot, trans, fixed) of a seeded pose graph over n cameras."""
    from recon4d.synthetic.pose_graph_problem import pose_graph_problem

    return pose_graph_problem(n, graph, points=POINTS).solver_args()


def system_mb(n: int, graph: str, solver: str) -> float:
    """MB of the matrix the solver factors (float64, 7 unknowns per camera)."""
    import torch

    from recon4d.align.block_system import MIN_CHUNK, band_order
    from recon4d.inference import make_pairs

    s = 7
    if solver == "dense":
        return (n * s) ** 2 * 8 / 1e6
    pairs = torch.as_tensor(make_pairs(n, graph)).sort(dim=1).values
    g = min(max(band_order(pairs, n)[1], MIN_CHUNK), n)
    return 2 * -(-n // g) * (g * s) ** 2 * 8 / 1e6


def run(n: int, graph: str, solver: str) -> dict:
    """Peak RSS growth and seconds of one step."""
    import torch

    from recon4d.align.block_system import MIN_CHUNK
    from recon4d.align.pose_graph import solve_camera_similarities

    torch.set_num_threads(1)
    # a small step first: libraries loaded on first use do not count
    solve_camera_similarities(*problem(2 * MIN_CHUNK, graph), iters=1, solver=solver)
    moments, edges, rot, trans, fixed = problem(n, graph)
    with measured() as stats:
        solve_camera_similarities(moments, edges, rot, trans, fixed, iters=1, scale_pull=0.1,
                                  solver=solver)
    return {"pairs": len(edges), "wall_s": stats["wall_s"], "cpu_s": stats["cpu_s"],
            "peak_mb": stats["peak_growth"] / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[100, 200, 400, 800])
    parser.add_argument("--graphs", nargs="+", default=["swin-5-noncyclic", "swin-5"])
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        n, graph, solver = args.worker.split(",")
        print(json.dumps(run(int(n), graph, solver)))
        return
    print("one LM step of solve_camera_similarities (7 unknowns per camera), torch on 1 thread;"
          " peak = peak RSS growth during the step")
    print(f"{'graph':>16} {'frames':>6} {'pairs':>6} {'solver':>6} {'system MB':>9} "
          f"{'peak MB':>8} {'wall s':>7} {'CPU s':>7}")
    for graph in args.graphs:
        for n in args.frames:
            for solver in SOLVERS:
                r = in_fresh_process(__file__, f"{n},{graph},{solver}", 1)
                print(f"{graph:>16} {n:>6} {r['pairs']:>6} {solver:>6} "
                      f"{system_mb(n, graph, solver):>9.1f} {r['peak_mb']:>8.1f} "
                      f"{r['wall_s']:>7.2f} {r['cpu_s']:>7.2f}", flush=True)


if __name__ == "__main__":
    main()
