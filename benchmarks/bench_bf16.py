"""bf16 against fp32 on the CPU: speed-up and drift, for the network and end to end.

Network: DUSt3R 512 DPT (the registry architecture, random weights), one 512x384 pair through
`infer_pairs`: best wall time of `--repeats` forwards in fp32 and under bf16 autocast (the two
alternate, so both see the same phases of a shared machine), and the drift of bf16 against fp32:
per-pixel relative error of pts3d (Euclidean norm) and of conf, median and 99th percentile over
both views.
Reconstruct: `--frames` random 512x384 frames, complete symmetrized graph, `infer_pairs` then
`global_align` (default solver, every point kept), in fp32 and in bf16: wall time of each stage,
and the drift against fp32 of the depths (per-pixel relative error) and of the cameras (rotation
angle in degrees; camera-centre distance over the median distance of the fp32 centres from their
mean), for bf16 and for a control: the fp32 predictions with every 3D point scaled by
1 + 2^-8 N(0, 1) (one bf16 rounding step). Where the control drifts as much as bf16, the
alignment of these random-weight predictions is ill-conditioned and its drift says nothing of bf16.
Random weights: the outputs are never results, only speed and drift. Needs a CPU with native
bf16 (AMX-BF16, AVX512-BF16 or Arm BF16).

    python benchmarks/bench_bf16.py [--repeats 3] [--frames 4] [--weights CKPT --images DIR]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from bench_forward import random_model

from recon4d.align import global_align
from recon4d.geometry.rotations import rotation_angle
from recon4d.inference import infer_pairs, make_pairs
from recon4d.io import load_images
from recon4d.models import load_model
from recon4d.models.precision import autocast_context, cpu_bf16_features

MODEL = "DUSt3R_ViTLarge_BaseDecoder_512_dpt"
HEIGHT, WIDTH = 384, 512
DTYPES = ("fp32", "bf16")
POINT_KEYS = {"pred1": "pts3d", "pred2": "pts3d_in_other_view"}
CONTROL_NOISE = 2.0**-8  # relative noise of the control run: one bf16 rounding step


def random_views(count: int, seed: int) -> list[dict]:
    """Loader-style views of `count` random HEIGHT x WIDTH images."""
    gen = torch.Generator().manual_seed(seed)
    return [{"img": torch.rand(1, 3, HEIGHT, WIDTH, generator=gen) * 2 - 1,
             "true_shape": np.array([[HEIGHT, WIDTH]], dtype=np.int32), "idx": i,
             "instance": str(i)} for i in range(count)]


def relative_errors(actual: np.ndarray, reference: np.ndarray, vectors: bool) -> np.ndarray:
    """|actual - reference| / |reference| per element (per vector of the last axis if `vectors`)."""
    if vectors:
        return (np.linalg.norm(actual - reference, axis=-1)
                / np.linalg.norm(reference, axis=-1)).ravel()
    return (np.abs(actual - reference) / np.abs(reference)).ravel()


def rotation_angles_deg(rot_a: np.ndarray, rot_b: np.ndarray) -> np.ndarray:
    """Angle in degrees of the rotation between each pair of (..., 3, 3) rotation matrices."""
    return np.degrees(rotation_angle(np.swapaxes(rot_a, -1, -2) @ rot_b))


def quantiles(errors: np.ndarray) -> tuple[float, float]:
    """Median and 99th percentile."""
    return float(np.median(errors)), float(np.percentile(errors, 99))


def _timed(fn, *args, **kwargs):
    """(result, seconds) of `fn(*args, **kwargs)`."""
    start = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - start


def network(model: torch.nn.Module, repeats: int) -> dict:
    """Forward times of one pair in each dtype, and bf16's drift of points and confidences."""
    views, edges = random_views(2, seed=1), np.array([[0, 1]])

    def run(dtype: str):
        return infer_pairs(model, views, edges, batch_size=1, device="cpu", dtype=dtype,
                           progress=False)[0]

    outputs = {dtype: run(dtype) for dtype in DTYPES}  # warm-up
    times: dict[str, list[float]] = {dtype: [] for dtype in DTYPES}
    for _ in range(repeats):
        for dtype in DTYPES:
            times[dtype].append(_timed(run, dtype)[1])
    fp32, bf16 = outputs["fp32"], outputs["bf16"]
    points = np.concatenate([relative_errors(bf16[s][k].numpy(), fp32[s][k].numpy(), True)
                             for s, k in POINT_KEYS.items()])
    confs = np.concatenate([relative_errors(bf16[s]["conf"].numpy(), fp32[s]["conf"].numpy(),
                                            False) for s in POINT_KEYS])
    return {"times": times, "pts3d": quantiles(points), "conf": quantiles(confs)}


def perturbed(preds, noise: float, seed: int = 0) -> dict:
    """The predictions as a reference dict, every 3D point scaled by 1 + noise * N(0, 1)."""
    control = preds.to_reference_dict()
    gen = torch.Generator().manual_seed(seed)
    for side, key in POINT_KEYS.items():
        points = control[side][key]
        control[side][key] = points * (1 + noise * torch.randn(points.shape[:-1] + (1,),
                                                               generator=gen))
    return control


def scene_drift(scene, reference) -> dict:
    """Depth and camera drift of `scene` against `reference` (median, 99th percentile)."""
    centres, centres_ref = scene.poses_c2w[:, :3, 3], reference.poses_c2w[:, :3, 3]
    spread = np.median(np.linalg.norm(centres_ref - centres_ref.mean(axis=0), axis=-1))
    return {"depth": quantiles(relative_errors(scene.depths, reference.depths, False)),
            "rotation_deg": quantiles(rotation_angles_deg(reference.poses_c2w[:, :3, :3],
                                                          scene.poses_c2w[:, :3, :3])),
            "centre": quantiles(np.linalg.norm(centres - centres_ref, axis=-1) / spread)}


def reconstruct(model: torch.nn.Module, frames: int, images: str | None) -> dict:
    """Network and alignment times of `frames` frames (the first of the `images` folder, else
    random ones) in each dtype, and the scene drift of bf16 and of the control (fp32
    predictions with CONTROL_NOISE) against fp32."""
    views = (load_images(images, size=WIDTH)[:frames] if images
             else random_views(frames, seed=2))
    edges = make_pairs(frames, "complete", symmetrize=True)
    times, preds, scenes = {}, {}, {}
    for dtype in DTYPES:
        preds[dtype], infer_s = _timed(infer_pairs, model, views, edges, device="cpu",
                                       dtype=dtype, progress=False)
        scenes[dtype], align_s = _timed(global_align, preds[dtype], conf_threshold=1.0)
        times[dtype] = (infer_s, align_s)
    control = global_align(perturbed(preds["fp32"], CONTROL_NOISE), conf_threshold=1.0)
    return {"pairs": len(edges), "times": times, "bf16": scene_drift(scenes["bf16"],
                                                                     scenes["fp32"]),
            "control": scene_drift(control, scenes["fp32"])}


def print_network(net: dict, name: str) -> None:
    """The network table: forward times, speed-up and drift."""
    print(f"\nnetwork: {name}, one {WIDTH}x{HEIGHT} pair")
    print(f"{'dtype':6} {'best s':>7}  all forwards (s)")
    for dtype in DTYPES:
        print(f"{dtype:6} {min(net['times'][dtype]):7.2f}  "
              f"{', '.join(f'{t:.2f}' for t in net['times'][dtype])}")
    print(f"speed-up bf16/fp32: {min(net['times']['fp32']) / min(net['times']['bf16']):.2f}x")
    print("drift of bf16 (relative error):  median     p99")
    for key in ("pts3d", "conf"):
        print(f"  {key:30} {net[key][0]:8.2e} {net[key][1]:8.2e}", flush=True)


def print_reconstruct(e2e: dict, frames: int) -> None:
    """The end-to-end table: stage times, speed-up and scene drift."""
    print(f"\nreconstruct: {frames} frames {WIDTH}x{HEIGHT}, {e2e['pairs']} pairs "
          "(complete, symmetrized), global_align default solver")
    print(f"{'dtype':6} {'network s':>9} {'align s':>8} {'total s':>8}")
    totals = {}
    for dtype in DTYPES:
        infer_s, align_s = e2e["times"][dtype]
        totals[dtype] = infer_s + align_s
        print(f"{dtype:6} {infer_s:9.2f} {align_s:8.2f} {totals[dtype]:8.2f}")
    print(f"speed-up bf16/fp32: {totals['fp32'] / totals['bf16']:.2f}x total")
    print(f"drift against fp32 (control: fp32 points x (1 + {CONTROL_NOISE:.4f} N(0,1))):")
    print(f"  {'':32} {'bf16 median':>11} {'p99':>9} {'control median':>14} {'p99':>9}")
    for key, label in (("depth", "depth (relative error)"),
                       ("rotation_deg", "camera rotation (degrees)"),
                       ("centre", "camera centre (/ centre spread)")):
        bf16, control = e2e["bf16"][key], e2e["control"][key]
        print(f"  {label:32} {bf16[0]:11.2e} {bf16[1]:9.2e} {control[0]:14.2e} {control[1]:9.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--weights", default=None,
                        help="a real checkpoint spec (default: random full-size weights)")
    parser.add_argument("--images", default=None,
                        help="folder of real frames for the end-to-end part (default: random)")
    args = parser.parse_args()
    autocast_context("bf16", torch.device("cpu"))  # refuses a CPU without native bf16
    what = (f"weights {args.weights}" if args.weights
            else "random weights (speed and drift only)")
    print(f"CPU bf16 features: {', '.join(cpu_bf16_features())}; threads "
          f"{torch.get_num_threads()}; {what}", flush=True)
    model = load_model(args.weights) if args.weights else random_model(MODEL)[0]
    print_network(network(model, args.repeats), args.weights or MODEL)
    print_reconstruct(reconstruct(model, args.frames, args.images), args.frames)


if __name__ == "__main__":
    main()
