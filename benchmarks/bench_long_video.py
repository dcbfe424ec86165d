"""Peak memory and time of long videos: windows with pairs on disk vs one-piece in memory.

Issue 11 item 4: 200 frames of 512x288 (swinstride-5 symmetrized graph, here `swin-5-noncyclic`,
~10 pairs per frame) within 8 GB peak RSS on CPU, and memory that stops growing once a window is
full. Each (mode, frames) runs in a fresh process (isolated peak RSS), all in one run:
- `windows`: pair predictions streamed to a `PairStore` on disk as they come out, then
  `aligned_in_windows` (default window, half overlap);
- `one-piece`: today's path, every pair in memory and one `global_align` (only up to
  `--one-piece-max` frames: it grows linearly and 100 frames already need ~9 GB).
The synthetic oracle (`OracleModel`, default corruption) stands in for the network: the
network's own memory is per batch and does not depend on the number of frames. Per run: peak
RSS, RSS once the inputs are ready (the rendered scene and the model input frames, which grow
with the video in any mode), the peak of each stage (pairs streamed to the store / inferred,
the windows, the refinement over all pairs) and its seconds, the seconds from the start of the
predictions (the oracle producing the pairs included) to the scene, and camera ATE. Printed
per stage too: the pipeline's peak, the stage's peak minus the RSS with the inputs ready (what
the benchmark itself holds grows with the video: the rendered scene with its flows, 4.1 MB a
frame at 512x288, and every model input frame, 1.8 MB), and the size of the output scene (its
per-frame arrays, which the pipeline fills and returns: the part of its memory that has to
grow with the video).
`--niter N` caps the fast solver's iterations (in each window): a memory-only run for sizes
whose full solve does not fit the time at hand. The peak does not depend on the count (every
iteration holds the same arrays), but the seconds and ATE of such a run are not the pipeline's.

    python benchmarks/bench_long_video.py [--frames 50 100 200 400] [--width 512 --height 288]
        [--modes windows one-piece] [--niter N] [--jsonl results.jsonl]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
from unittest import mock

from process_memory import in_fresh_process, peak_rss_bytes, rss_bytes

GRAPH = "swin-5-noncyclic"
GB = 1e9


class StagePeaks:
    """Peak RSS per named stage, sampled every 20 ms by a daemon thread, and each stage's
    seconds."""

    def __init__(self) -> None:
        self.stage, self.peaks, self.seconds = "inputs", {}, {}
        self.since = time.perf_counter()
        threading.Thread(target=self._sample, daemon=True).start()

    def _sample(self) -> None:
        while True:
            self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), rss_bytes())
            time.sleep(0.02)

    def enter(self, stage: str) -> None:
        self.peaks[self.stage] = max(self.peaks.get(self.stage, 0), rss_bytes())
        now = time.perf_counter()
        self.seconds[self.stage] = self.seconds.get(self.stage, 0) + now - self.since
        self.stage, self.since = stage, now

    def entering(self, stage: str, fn):
        """`fn`, entering `stage` when called."""
        def run(*args, **kwargs):
            self.enter(stage)
            return fn(*args, **kwargs)
        return run


def run_one(mode: str, frames: int, width: int, height: int, niter: int | None) -> dict:
    """Reconstruct one synthetic video in this process (`niter`: the solver's iteration cap,
    None for its default); returns a JSON-able dict."""
    import numpy as np

    from recon4d.align import global_align
    from recon4d.eval.poses import align_poses, ate_errors
    from recon4d.inference import infer_pairs, make_pairs
    from recon4d.inference.pair_store import PairStore
    from recon4d.pipeline import windows
    from recon4d.synthetic import OracleModel, generate_scene

    meter = StagePeaks()
    truth = generate_scene(frames=frames, width=width, height=height, movers=0, seed=0)
    oracle = OracleModel(truth)
    views = oracle.views()
    edges = make_pairs(frames, GRAPH)
    rss_inputs = rss_bytes()
    start = time.perf_counter()
    meter.enter("pairs")
    if mode == "windows":
        with tempfile.TemporaryDirectory() as tmp, PairStore(tmp, edges, frames, height,
                                                             width) as store, \
                mock.patch.object(windows, "refine_alignment",
                                  meter.entering("refine", windows.refine_alignment)):
            preds = infer_pairs(oracle, views, edges, batch_size=8, device="cpu",
                                progress=False, sink=store.add)
            store.add_images(preds.images)
            del preds
            meter.enter("windows")
            scene = windows.aligned_in_windows(store, align_kwargs={"niter": niter})
    else:
        preds = infer_pairs(oracle, views, edges, batch_size=8, device="cpu", progress=False)
        meter.enter("align")
        scene = global_align(preds, niter=niter)
    seconds = time.perf_counter() - start
    meter.enter("done")
    aligned, _ = align_poses(scene.poses_c2w, truth.poses_c2w)
    ate = float(np.sqrt((ate_errors(aligned, truth.poses_c2w) ** 2).mean()))
    return {"mode": mode, "frames": frames, "width": width, "height": height, "niter": niter,
            "pairs": len(edges), "seconds": seconds, "peak_gb": peak_rss_bytes() / GB,
            "inputs_gb": rss_inputs / GB, "ate": ate,
            "scene_gb": sum(getattr(scene, k).nbytes for k in ("images", "depths", "confs",
                                                                "masks")) / GB,
            "stage_peak_gb": {k: v / GB for k, v in meter.peaks.items() if k != "done"},
            "stage_seconds": meter.seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, nargs="+", default=[50, 100, 200, 400])
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=288)
    parser.add_argument("--one-piece-max", type=int, default=100)
    parser.add_argument("--modes", nargs="+", choices=("windows", "one-piece"),
                        default=["windows", "one-piece"])
    parser.add_argument("--niter", type=int, help="cap on the solver's iterations (memory-only "
                        "runs; default: the solver's own)")
    parser.add_argument("--jsonl", help="append each run's result to this file as it comes")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        mode, frames, width, height, niter = args.worker.split(":")
        print(json.dumps(run_one(mode, int(frames), int(width), int(height),
                                 int(niter) if niter else None)))
        return
    print(f"{args.width}x{args.height}, graph {GRAPH} symmetrized, oracle predictions, CPU"
          + ("" if args.niter is None else f", solver capped at {args.niter} iterations"))
    print(f"{'mode':>9} {'frames':>6} {'pairs':>5} {'peak GB':>8} {'inputs GB':>9} "
          f"{'seconds':>8} {'ATE':>8}")
    cap = "" if args.niter is None else args.niter
    for frames in args.frames:
        for mode in args.modes:
            if mode == "one-piece" and frames > args.one_piece_max:
                continue
            worker = f"{mode}:{frames}:{args.width}:{args.height}:{cap}"
            r = in_fresh_process(__file__, worker, 1)
            above = {k: v - r["inputs_gb"] for k, v in r["stage_peak_gb"].items()}
            print(f"{r['mode']:>9} {r['frames']:>6} {r['pairs']:>5} {r['peak_gb']:>8.2f} "
                  f"{r['inputs_gb']:>9.2f} {r['seconds']:>8.1f} {r['ate']:>8.4f}  stage peaks GB: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in r["stage_peak_gb"].items())
                  + "; pipeline peaks (stage peak - RSS with the inputs ready) GB: "
                  + ", ".join(f"{k} {v:.2f}" for k, v in above.items() if k != "inputs")
                  + f" (of which the output scene {r['scene_gb']:.2f})"
                  + "; stage seconds: "
                  + ", ".join(f"{k} {v:.0f}" for k, v in r["stage_seconds"].items()), flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as f:
                    f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
