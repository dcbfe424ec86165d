"""MASt3R-SLAM stream on synthetic oracle sequences (issue 12): accuracy against offline global
alignment, loop closure, movers, and the cost per frame over long streams.

Every table uses the MASt3R-SLAM oracle (`recon4d.synthetic.mast3r_slam_oracle`, default
corruption) and default stream options unless a flag says otherwise; ATE is the RMS camera-centre
error after Sim(3) alignment to the truth, in % of the camera path.

- `accuracy`: per seed, the stream's per-frame ATE and cloud accuracy / completion against the
  fast `global_align` of `OracleModel` pair predictions of the same frames (`--graph`), as
  `bench_slam3r.py` judges them. Target: stream ATE within 2x the offline one.
- `loop`: an orbit run past its start (`--frames` >= 1 full turn); the end-to-start drift (error
  of the last frame's camera centre relative to the first, % of the path) with retrieval and loop
  edges, and without (retrieval switched off); per `--depth-stretch` (the oracle's pointmaps
  stretched along the optical axis, a misjudged focal, so odometry drifts; 0 = the plain
  oracle, whose chain barely drifts).
- `movers`: a scene with moving boxes: ATE without masks, with the oracle's true masks, with
  flow masks, and on the same scene with frozen movers. Target: masks <= 1.5x frozen and below
  no masks.
- `cost`: a long low-resolution orbit; resident memory, the bytes the stream's map holds
  (keyframe tensors, back-end edges, per-frame relative poses), CPU seconds per frame (mean over
  the 100 frames before each checkpoint), the wall-clock split per stage (network, tracking
  including matching, back end including edge matching) and the largest back-end solve so far
  (free keyframes / edges, `PoseGraph.solve_set`) at frames 100, 500, 1000, 2000...

    python benchmarks/bench_mast3r_slam.py accuracy [--seeds 0 1 2] [--frames 24]
    python benchmarks/bench_mast3r_slam.py loop [--frames 200] [--fps 10] [--depth-stretch 0 0.05]
    python benchmarks/bench_mast3r_slam.py movers [--movers 6] [--trajectory walk]
    python benchmarks/bench_mast3r_slam.py cost [--frames 2100] [--width 48 --height 32]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_slam3r import _judge, _offline
from process_memory import rss_bytes

CHECKPOINTS = (100, 500, 1000, 2000)
COST_WINDOW = 100  # frames averaged before each checkpoint (about 7 keyframes on the orbit)


def _stream(scene, options=None, movers=None, views=None, depth_stretch=0.0):
    """Run the stream over the scene's frames (or `views`) on the oracle (pointmaps stretched
    by 1 + `depth_stretch` along the optical axis); returns the finished `Mast3rSlam` and the
    per-frame `FramePose`s."""
    from recon4d.slam.mast3r import Mast3rSlam
    from recon4d.synthetic.mast3r_slam_oracle import Mast3rSlamOracle

    source = Mast3rSlamOracle(scene, depth_stretch=depth_stretch)
    slam = Mast3rSlam(source, options, movers=movers)
    frames = [slam.push(view) for view in (source.views() if views is None else views)]
    return slam, frames


def _ate_pct(poses: np.ndarray, gt: np.ndarray) -> float:
    from recon4d.eval.poses import align_poses, ate_errors, rmse

    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    return 100 * rmse(ate_errors(align_poses(poses, gt)[0], gt)) / path


def accuracy(args: argparse.Namespace) -> None:
    from recon4d.eval.clouds import voxel_downsample
    from recon4d.io.images import load_images
    from recon4d.synthetic import generate_scene

    print("| seed | method | ATE % path | accuracy | completion | keyframes | CPU s |")
    print("|---|---|---|---|---|---|---|")
    for seed in args.seeds:
        scene = generate_scene(args.frames, args.width, args.height, movers=0, seed=seed,
                               trajectory=args.trajectory, fps=args.fps)
        views = load_images(list(scene.rgb), size=max(args.width, args.height))
        truth = voxel_downsample(np.concatenate([scene.world_points(i)[scene.depth[i] > 0]
                                                 for i in range(scene.num_frames)]), args.voxel)
        start = time.process_time()
        slam, _ = _stream(scene)
        stream_cpu = time.process_time() - start
        rows = [("mast3r-slam", slam.frame_poses(), slam.cloud()[0], stream_cpu,
                 len(slam.keyframes))]
        start = time.process_time()
        poses, points, _ = _offline(scene, views, args.graph)
        rows.append(("offline", poses, points, time.process_time() - start, "-"))
        for method, poses, points, cpu, keyframes in rows:
            judged = _judge(poses, points, scene, truth, args.voxel)
            print(f"| {seed} | {method} | {judged['ate_pct']:.3f} | {judged['accuracy']:.4f} | "
                  f"{judged['completion']:.4f} | {keyframes} | {cpu:.1f} |")


def loop(args: argparse.Namespace) -> None:
    from recon4d.options.slam import Mast3rSlamOptions
    from recon4d.synthetic import generate_scene

    scene = generate_scene(args.frames, args.width, args.height, movers=0, seed=args.seed,
                           trajectory="orbit", fps=args.fps)
    gt = scene.poses_c2w
    path = float(np.linalg.norm(np.diff(gt[:, :3, 3], axis=0), axis=1).sum())
    from recon4d.eval.poses import align_poses

    print("| depth stretch | retrieval | ATE % path | end-to-start drift % path | keyframes "
          "| loop edges |")
    print("|---|---|---|---|---|---|")
    for stretch in args.depth_stretch:
        for label, options in (("on", Mast3rSlamOptions()),
                               ("off", Mast3rSlamOptions(retrieval_min_score=2.0))):
            slam, _ = _stream(scene, options, depth_stretch=stretch)
            poses = slam.frame_poses()
            aligned, _ = align_poses(poses, gt)
            est = aligned[-1, :3, 3] - aligned[0, :3, 3]
            true = gt[-1, :3, 3] - gt[0, :3, 3]
            drift = 100 * float(np.linalg.norm(est - true)) / path
            loops = sum(abs(e.a - e.b) >= options.loop_gap for e in slam.graph.edges) // 2
            print(f"| {stretch:g} | {label} | {_ate_pct(poses, gt):.3f} | {drift:.3f} | "
                  f"{len(slam.keyframes)} | {loops} |", flush=True)


def movers(args: argparse.Namespace) -> None:
    from recon4d.slam.mast3r_movers import FlowMovers
    from recon4d.synthetic import generate_scene

    print("| seed | no masks | true masks | flow masks | frozen movers | true / frozen |")
    print("|---|---|---|---|---|---|")
    for seed in args.seeds:
        scene, frozen = (generate_scene(args.frames, args.width, args.height, movers=args.movers,
                                        seed=seed, trajectory=args.trajectory, fps=args.fps,
                                        freeze_movers=freeze) for freeze in (False, True))
        def truth(view, *_, masks=scene.dynamic_mask):
            return torch.from_numpy(masks[int(view["idx"])])

        gt = scene.poses_c2w
        ates = [_ate_pct(_stream(s, movers=m)[0].frame_poses(), gt)
                for s, m in ((scene, None), (scene, truth), (scene, FlowMovers()), (frozen, None))]
        print(f"| {seed} | " + " | ".join(f"{a:.3f}" for a in ates)
              + f" | {ates[1] / ates[3]:.2f} |")


def cost(args: argparse.Namespace) -> None:
    from recon4d.slam.mast3r import Mast3rSlam
    from recon4d.synthetic import generate_scene
    from recon4d.synthetic.mast3r_slam_oracle import Mast3rSlamOracle

    scene = generate_scene(args.frames, args.width, args.height, movers=0, seed=args.seed,
                           trajectory="orbit", fps=args.fps)
    source = Mast3rSlamOracle(scene)
    views = source.views()
    slam = Mast3rSlam(source)
    cpu, stages, solves = [], [], [(0, 0)]
    print("| frame | RSS MiB | map MiB | CPU ms / frame | network ms | tracking ms | back end ms | "
          "keyframes | edges | largest solve |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for index, view in enumerate(views, start=1):
        start = time.process_time()
        frame = slam.push(view)
        cpu.append(time.process_time() - start)
        stages.append(frame.seconds)
        if index == 1:
            _count_solves(slam.graph, solves)
        if index in CHECKPOINTS or index == len(views):
            recent = stages[-COST_WINDOW:]
            split = [1000 * sum(s.get(k, 0.0) for s in recent) / len(recent)
                     for k in ("network", "tracking", "backend")]
            print(f"| {index} | {rss_bytes() / 2**20:.0f} | {_map_bytes(slam) / 2**20:.1f} | "
                  f"{1000 * np.mean(cpu[-COST_WINDOW:]):.1f} | "
                  + " | ".join(f"{v:.1f}" for v in split)
                  + f" | {len(slam.keyframes)} | {len(slam.graph.edges)} | "
                  f"{max(f for f, _ in solves)} / {max(e for _, e in solves)} |", flush=True)


def _count_solves(graph, solves: list) -> None:
    """Record (free keyframes, edges) of every later `graph.optimise` in `solves`."""
    optimise = graph.optimise

    def counted(points):
        free, edges = graph.solve_set()
        solves.append((len(free), len(edges)))
        return optimise(points)

    graph.optimise = counted


def _map_bytes(slam) -> int:
    """Bytes of the tensors and arrays the stream keeps: per keyframe, per edge, per frame."""
    def size(value) -> int:
        return value.nbytes if isinstance(value, (torch.Tensor, np.ndarray)) else 0

    keyframes = sum(size(v) for k in slam.keyframes for v in vars(k).values())
    edges = sum(size(v) for e in slam.graph.edges for v in vars(e).values())
    frames = sum(size(rel) for _, rel in slam.relative)
    return keyframes + edges + frames + sum(size(p) for p in slam.graph.poses)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="table", required=True)
    for name, frames, size in (("accuracy", 24, (96, 64)), ("loop", 200, (64, 48)),
                               ("movers", 10, (64, 48)), ("cost", 2100, (48, 32))):
        p = sub.add_parser(name)
        p.add_argument("--frames", type=int, default=frames)
        p.add_argument("--width", type=int, default=size[0])
        p.add_argument("--height", type=int, default=size[1])
        p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--fps", type=float, default=5.0 if name != "loop" else 10.0)
        p.add_argument("--trajectory", default="walk" if name == "movers" else "orbit")
        p.add_argument("--movers", type=int, default=6)
        p.add_argument("--graph", default="swin-5")
        p.add_argument("--voxel", type=float, default=0.05)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--depth-stretch", type=float, nargs="+", default=[0.0, 0.05])
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    {"accuracy": accuracy, "loop": loop, "movers": movers, "cost": cost}[args.table](args)


if __name__ == "__main__":
    main()
