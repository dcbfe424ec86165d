"""SLAM3R stream vs offline global alignment on synthetic static sequences (issue 13, item 3).

For each seed: render a static scene, run the SLAM3R stream with the oracle networks
(`recon4d.synthetic.slam3r_oracle`, default corruption, default options: automatic stride,
window radius 5, reservoir 100, every confident point kept) and the offline baseline, the
fast `global_align` over `OracleModel` pair predictions of the same frames (same corruption,
`--graph`). Both trajectories are Sim(3)-aligned to the truth; that transform also maps each
point cloud, which is then compared with the ground-truth surface (both voxel-downsampled):
accuracy and completion (scene units), ATE RMSE and worst per-frame camera error (% of the
camera path), CPU seconds. Target: stream accuracy and completion within 1.5x the offline ones.

    python benchmarks/bench_slam3r.py [--frames 48] [--seeds 0 1 2] [--width 96 --height 64]
        [--trajectory orbit] [--graph swin-5] [--voxel 0.05] [--threads 1]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

TARGET_RATIO = 1.5


def _judge(poses: np.ndarray, points: np.ndarray, scene, truth: np.ndarray,
           voxel: float) -> dict[str, float]:
    """Trajectory and cloud metrics after the trajectory's Sim(3) alignment to the truth."""
    from recon4d.eval import cloud_metrics
    from recon4d.eval.clouds import voxel_downsample
    from recon4d.eval.poses import align_poses, ate_errors, rmse

    gt = scene.poses_c2w
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    aligned, sim = align_poses(poses, gt)
    errors = ate_errors(aligned, gt)
    cloud = cloud_metrics(voxel_downsample(sim.apply_points(points), voxel), truth, 2 * voxel)
    return {"accuracy": cloud["accuracy"], "completion": cloud["completion"],
            "ate_pct": 100 * rmse(errors) / path, "worst_pct": 100 * float(errors.max()) / path}


def _stream(scene, views) -> tuple[np.ndarray, np.ndarray, dict]:
    from recon4d.options.slam import Slam3rOptions
    from recon4d.slam.slam3r import run_slam3r
    from recon4d.synthetic.slam3r_oracle import Slam3rOracle

    height, width = scene.shape
    result = run_slam3r(Slam3rOracle(scene), views, Slam3rOptions(points_per_frame=height * width))
    return result.poses_c2w, result.points, {"stride": result.keyframe_stride,
                                             "failed": len(result.failed)}


def _offline(scene, views, graph: str, corruption=None) -> tuple[np.ndarray, np.ndarray, dict]:
    from recon4d.align import global_align
    from recon4d.eval.clouds import depth_to_world
    from recon4d.inference import infer_pairs, make_pairs
    from recon4d.synthetic import OracleModel

    preds = infer_pairs(OracleModel(scene, corruption), views, make_pairs(len(views), graph),
                        progress=False)
    aligned = global_align(preds)
    points = np.concatenate([depth_to_world(aligned.depths[i], aligned.intrinsics[i],
                                            aligned.poses_c2w[i], aligned.masks[i])
                             for i in range(len(views))])
    return aligned.poses_c2w, points, {"pairs": len(preds)}


def run_seed(seed: int, args: argparse.Namespace) -> list[dict]:
    """Both methods on one scene; one row each."""
    from recon4d.eval.clouds import voxel_downsample
    from recon4d.io.images import load_images
    from recon4d.synthetic import generate_scene

    scene = generate_scene(args.frames, args.width, args.height, movers=0, seed=seed,
                           trajectory=args.trajectory)
    views = load_images(list(scene.rgb), size=max(args.width, args.height))
    truth = voxel_downsample(np.concatenate([scene.world_points(i)[scene.depth[i] > 0]
                                             for i in range(scene.num_frames)]), args.voxel)
    rows = []
    for method, run in (("slam3r", lambda: _stream(scene, views)),
                        ("offline", lambda: _offline(scene, views, args.graph))):
        start = time.process_time()
        poses, points, extra = run()
        cpu = time.process_time() - start
        rows.append({"seed": seed, "method": method, "cpu_s": cpu, "points": len(points),
                     **_judge(poses, points, scene, truth, args.voxel), **extra})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--width", type=int, default=96)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--trajectory", default="orbit")
    parser.add_argument("--graph", default="swin-5")
    parser.add_argument("--voxel", type=float, default=0.05)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    rows = [row for seed in args.seeds for row in run_seed(seed, args)]
    print(f"{args.frames} frames {args.width}x{args.height}, {args.trajectory}, static, oracle "
          f"default corruption, offline graph {args.graph}, voxel {args.voxel}")
    print(f"{'seed':>4} {'method':8s} {'accuracy':>8} {'complet.':>8} {'ATE %path':>9} "
          f"{'worst %':>8} {'points':>7} {'CPU s':>6}  notes")
    for r in rows:
        notes = (f"stride {r['stride']}, {r['failed']} failed frames" if r["method"] == "slam3r"
                 else f"{r['pairs']} pairs")
        print(f"{r['seed']:4d} {r['method']:8s} {r['accuracy']:8.4f} {r['completion']:8.4f} "
              f"{r['ate_pct']:9.3f} {r['worst_pct']:8.3f} {r['points']:7d} {r['cpu_s']:6.1f}  "
              f"{notes}")
    ratios = {key: np.mean([s[key] / o[key] for s, o in zip(rows[::2], rows[1::2], strict=True)])
              for key in ("accuracy", "completion")}
    verdict = "PASS" if max(ratios.values()) <= TARGET_RATIO else "FAIL"
    print(f"stream / offline, mean over seeds: accuracy {ratios['accuracy']:.2f}x, completion "
          f"{ratios['completion']:.2f}x (target <= {TARGET_RATIO}x): {verdict}")


if __name__ == "__main__":
    main()
