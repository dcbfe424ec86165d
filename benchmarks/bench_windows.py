"""Camera ATE of window-wise alignment against one-piece alignment, with and without the global
pose refinement over all pairs (issue 11 item 4: windowed within 1.2x the one-piece ATE).

Synthetic walks (`generate_scene`, no movers), oracle predictions with the default corruption,
graph `swin-5-noncyclic` as in `bench_long_video.py`; per seed and video: ATE of one piece
(`global_align`), of the windows chained by similarities only (`refine=False`) and with the
refinement (the default), the windowed / one-piece ratios, and the CPU seconds
(`time.process_time`, torch on one thread) of the windowed alignment and of the refinement (the
difference of the two windowed runs, which share their windows). With `--memory`, the first
video is also aligned with and without the refinement in fresh processes, for their peak RSS.

    python benchmarks/bench_windows.py [--seeds 0 1 2 3 4 5]
        [--videos 24x64x48:10 100x64x48:default] [--memory]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time

from process_memory import in_fresh_process, peak_rss_bytes

GRAPH = "swin-5-noncyclic"


def _video(spec: str) -> tuple[int, int, int, int | None]:
    """'FRAMESxWIDTHxHEIGHT:WINDOW' (WINDOW a number or 'default')."""
    size, _, window = spec.partition(":")
    frames, width, height = (int(v) for v in size.split("x"))
    return frames, width, height, None if window in ("", "default") else int(window)


def run_seed(spec: str, seed: int, modes: tuple[str, ...]) -> dict:
    """ATE and CPU seconds of each mode ('one-piece', 'chained', 'refined') on one video."""
    import numpy as np
    import torch

    from recon4d.align import global_align
    from recon4d.eval.poses import align_poses, ate_errors
    from recon4d.inference import infer_pairs, make_pairs
    from recon4d.inference.pair_store import PairStore
    from recon4d.pipeline.windows import aligned_in_windows
    from recon4d.synthetic import OracleModel, generate_scene

    torch.set_num_threads(1)  # CPU seconds that other processes' load does not inflate
    frames, width, height, window = _video(spec)
    truth = generate_scene(frames=frames, width=width, height=height, movers=0, seed=seed)
    oracle = OracleModel(truth)
    edges = make_pairs(frames, GRAPH)
    preds = infer_pairs(oracle, oracle.views(), edges, batch_size=8, device="cpu",
                        progress=False)
    result: dict = {"video": spec, "seed": seed}
    with tempfile.TemporaryDirectory() as tmp, PairStore(tmp, edges, frames, height,
                                                         width) as store:
        store.add(np.arange(len(edges)), preds.pred1, preds.pred2)
        store.add_images(preds.images)
        for mode in modes:
            start = time.process_time()
            if mode == "one-piece":
                scene = global_align(preds)
            else:
                scene = aligned_in_windows(store, window=window, refine=mode == "refined")
            aligned, _ = align_poses(scene.poses_c2w, truth.poses_c2w)
            result[mode] = {"ate": float(np.sqrt((ate_errors(aligned, truth.poses_c2w) ** 2
                                                  ).mean())),
                            "cpu_s": time.process_time() - start, "peak_gb": peak_rss_bytes() / 1e9}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4, 5])
    parser.add_argument("--videos", nargs="+", default=["24x64x48:10", "100x64x48:default"])
    parser.add_argument("--memory", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        spec, seed, mode = args.worker.split(",")
        print(json.dumps(run_seed(spec, int(seed), (mode,))))
        return
    print(f"graph {GRAPH}, oracle predictions (default corruption), CPU; ratio = windowed ATE /"
          " one-piece ATE; CPU s of the windows chained, refinement extra")
    print(f"{'video:window':>18} {'seed':>4} {'one piece':>9} {'chained':>8} {'refined':>8} "
          f"{'ratio ch.':>9} {'ratio ref.':>10} {'win CPU s':>9} {'refine s':>8}")
    for spec in args.videos:
        ratios: dict[str, list[float]] = {"chained": [], "refined": []}
        for seed in args.seeds:
            r = run_seed(spec, seed, ("one-piece", "chained", "refined"))
            one = r["one-piece"]["ate"]
            for mode in ratios:
                ratios[mode].append(r[mode]["ate"] / one)
            print(f"{spec:>18} {seed:>4} {one:>9.4f} {r['chained']['ate']:>8.4f} "
                  f"{r['refined']['ate']:>8.4f} {ratios['chained'][-1]:>9.2f} "
                  f"{ratios['refined'][-1]:>10.2f} {r['chained']['cpu_s']:>9.1f} "
                  f"{r['refined']['cpu_s'] - r['chained']['cpu_s']:>8.1f}", flush=True)
        print(f"{spec:>18} {'max':>4} {'':>9} {'':>8} {'':>8} {max(ratios['chained']):>9.2f} "
              f"{max(ratios['refined']):>10.2f}", flush=True)
    if args.memory:
        spec, seed = args.videos[0], args.seeds[0]
        for mode in ("chained", "refined"):
            r = in_fresh_process(__file__, f"{spec},{seed},{mode}", 1)
            print(f"{spec} seed {seed} {mode}: peak RSS {r[mode]['peak_gb']:.2f} GB", flush=True)


if __name__ == "__main__":
    main()
