"""Flow motion masks on synthetic dynamic scenes: J and F per seed against the true masks.

Oracle predictions (default corruption) over MonST3R's swinstride-5 graph (offsets 1, 3, ..., 9,
symmetrized); DIS flow. Each row compares the published procedure (min-max maps, every pixel,
DIS "medium" from zero), recon4d's previous default (robust maps, reliable pixels, seeded DIS
"medium") and today's default (seeded DIS "fine", noise-scaled maps, reliable pixels, smoothed
frame maps); `--ablation` adds the default with DIS "medium" and the default without smoothing.
The movers pause once unless `--no-stops` (a paused mover still counts as moving).

    python benchmarks/bench_flow_masks.py --seeds 8 --size 512x384 --frames 16 [--no-stops]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from recon4d.dynamics.flow import flow_masks
from recon4d.eval.masks import mask_metrics
from recon4d.inference.engine import infer_pairs
from recon4d.synthetic import OracleModel, generate_scene

VARIANTS = {
    "published": {"normalisation": "minmax", "reliable_only": False, "seed_dis": False,
                  "dis_preset": "medium", "smoothing": 0.0},
    "previous": {"normalisation": "robust", "dis_preset": "medium", "smoothing": 0.0},
    "default": {},
}
ABLATION = {
    "medium DIS": {"dis_preset": "medium"},
    "unsmoothed": {"smoothing": 0.0},
}


def swinstride_edges(num_frames: int, window: int = 5) -> np.ndarray:
    """MonST3R's swinstride-W-noncyclic pairs (offsets 1, 3, ..., 2W-1), symmetrized."""
    pairs = [(i, i + off) for i in range(num_frames) for off in range(1, 2 * window, 2)
             if i + off < num_frames]
    return np.array(pairs + [(j, i) for i, j in pairs], dtype=np.int64)


def main() -> None:
    """Print one line per seed and variant, then the means."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--size", default="512x384", help="WIDTHxHEIGHT")
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--no-stops", action="store_true", help="movers never pause")
    parser.add_argument("--ablation", action="store_true", help="also the default with DIS "
                        "'medium' and without smoothing")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    variants = {**VARIANTS, **(ABLATION if args.ablation else {})}
    scores: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    print(f"{args.size}, {args.frames} frames, 2 movers, stops={not args.no_stops}")
    for seed in range(args.seeds):
        scene = generate_scene(frames=args.frames, width=width, height=height, movers=2,
                               seed=seed, stops=not args.no_stops)
        oracle = OracleModel(scene)
        preds = infer_pairs(oracle, oracle.views(), swinstride_edges(args.frames),
                            batch_size=8, progress=False)
        for name, options in variants.items():
            start = time.process_time()
            masks = flow_masks(preds, scene.rgb, **options)
            seconds = time.process_time() - start
            m = mask_metrics(masks.masks, scene.dynamic_mask)
            scores[name].append((m["J_mean"], m["F_mean"]))
            print(f"seed {seed}  {name:10s}  J {m['J_mean']:.3f}  F {m['F_mean']:.3f}  "
                  f"({seconds:.1f} CPU s, {len(preds)} edges)", flush=True)
    for name, values in scores.items():
        j_values = [j for j, _ in values]
        j_mean, f_mean = np.mean(values, axis=0)
        print(f"mean      {name:10s}  J {j_mean:.3f}  F {f_mean:.3f}  (J min {min(j_values):.3f})")


if __name__ == "__main__":
    main()
