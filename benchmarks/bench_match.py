"""Matching benchmark on 512x384 descriptor maps, CPU: fast reciprocal search vs exhaustive NN.

Inputs: 24-d unit descriptors of a smooth random field (Gaussian-blurred noise, so neighbouring
pixels look alike as real descriptors do); image 2 is image 1 shifted by (17, -9) px plus noise.
Each method runs in a fresh subprocess (isolated peak RSS) and reports wall time (best of
`--repeats`), peak RSS above the inputs, the number of matches and the fraction on the true shift:

* `fast`: `reciprocal_nn` (8-px seed grid, block 8192), the default matcher;
* `fast-mask25`: the same restricted to a centred mask covering 25 % of each image;
* `exhaustive`: nearest neighbour of every pixel in both directions (blocked, so it fits in
  memory), mutual pairs kept; a one-shot dense similarity matrix would need the printed
  `dense matrix` bytes. `--exhaustive-rows N` times N query rows per direction and scales the
  time up (marked `extrapolated`).

    python benchmarks/bench_match.py [--repeats 2] [--exhaustive-rows 16384]

`--premask-study` instead measures what painting the background before the network changes
(tiny random-weight MASt3R checkpoint: structure and cost only, not match quality), and
`--oracle-study` the precision and number of matches of the masking and filtering options on a
synthetic scene with the oracle predictor (ground-truth correctness within 2 px).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

from process_memory import peak_rss_bytes, rss_bytes

HEIGHT, WIDTH, DIM = 384, 512, 24
SHIFT = (17, -9)
TINY = Path(__file__).resolve().parents[1].parent / "shared" / "golden" / "checkpoints" / \
    "tiny_mast3r_a.pth"




def descriptor_pair(seed: int = 0):
    """(desc1, desc2, mask): smooth unit descriptors; desc2 = desc1 shifted by SHIFT + noise."""
    import torch
    import torch.nn.functional as F

    gen = torch.Generator().manual_seed(seed)
    pad = 32
    noise = torch.randn(1, DIM, HEIGHT + 2 * pad, WIDTH + 2 * pad, generator=gen)
    kernel = torch.exp(-torch.arange(-6, 7.0) ** 2 / (2 * 2.0**2))
    kernel = kernel / kernel.sum()
    field = F.conv2d(noise, kernel.view(1, 1, 1, -1).repeat(DIM, 1, 1, 1), groups=DIM,
                     padding=(0, 6))
    field = F.conv2d(field, kernel.view(1, 1, -1, 1).repeat(DIM, 1, 1, 1), groups=DIM,
                     padding=(6, 0))[0].permute(1, 2, 0)
    dx, dy = SHIFT
    desc1 = field[pad:pad + HEIGHT, pad:pad + WIDTH]
    desc2 = field[pad - dy:pad - dy + HEIGHT, pad - dx:pad - dx + WIDTH]
    desc2 = desc2 + 0.05 * desc2.std() * torch.randn(desc2.shape, generator=gen)
    desc1, desc2 = F.normalize(desc1, dim=-1), F.normalize(desc2, dim=-1)
    mask = torch.zeros(HEIGHT, WIDTH, dtype=torch.bool)
    mask[HEIGHT // 4:3 * HEIGHT // 4, WIDTH // 4:3 * WIDTH // 4] = True
    return desc1.contiguous(), desc2.contiguous(), mask


def exhaustive(desc1, desc2, rows: int | None):
    """Mutual nearest neighbours over all pixels (idx1, idx2); with `rows`, only the nearest
    neighbours of the first `rows` pixels of each image are computed (timing only, None)."""
    import torch

    from recon4d.matching.reciprocal import nearest_neighbours

    f1, f2 = desc1.reshape(-1, DIM), desc2.reshape(-1, DIM)
    if rows is not None:
        nearest_neighbours(f1[:rows], f2), nearest_neighbours(f2[:rows], f1)
        return None
    nn12, nn21 = nearest_neighbours(f1, f2), nearest_neighbours(f2, f1)
    idx1 = torch.arange(len(f1))
    mutual = nn21[nn12] == idx1
    return idx1[mutual], nn12[mutual]


def run_method(method: str, repeats: int, exhaustive_rows: int | None) -> dict:
    """Measure one method in this process."""
    import torch

    from recon4d.matching.reciprocal import reciprocal_nn

    desc1, desc2, mask = descriptor_pair()
    base = rss_bytes()
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        if method == "fast":
            res = reciprocal_nn(desc1, desc2)
            result = (res.idx1, res.idx2)
        elif method == "fast-mask25":
            res = reciprocal_nn(desc1, desc2, mask1=mask, mask2=mask)
            result = (res.idx1, res.idx2)
        else:
            result = exhaustive(desc1, desc2, exhaustive_rows)
        times.append(time.perf_counter() - start)
    row = {"method": method, "seconds": min(times), "threads": torch.get_num_threads(),
           "peak_rss_mib": (peak_rss_bytes() - base) / 2**20, "extrapolated": False}
    n = HEIGHT * WIDTH
    if method == "exhaustive" and exhaustive_rows is not None:
        row.update(seconds=row["seconds"] * n / exhaustive_rows, extrapolated=True,
                   matches=None, on_shift=None)
        return row
    idx1, idx2 = result
    dx, dy = SHIFT
    x1, y1, x2, y2 = idx1 % WIDTH, idx1 // WIDTH, idx2 % WIDTH, idx2 // WIDTH
    on_shift = ((x2 - x1 == dx) & (y2 - y1 == dy)).float().mean().item() if len(idx1) else 0.0
    row.update(matches=len(idx1), on_shift=on_shift)
    return row


def premask_study() -> list[dict]:
    """Tiny random MASt3R on a synthetic pair: effect of painting the background before the
    network, against masking after it (same masks, search restricted in every variant)."""
    import numpy as np

    from recon4d.inference import infer_pairs
    from recon4d.matching.pipeline import MatchOptions, match_descriptors, prepare_images
    from recon4d.models import load_model
    from recon4d.synthetic.scene import generate_scene

    scene = generate_scene(frames=2, width=256, height=192, movers=2, seed=3)
    masks = [scene.instance[k] > 0 for k in range(2)]
    model = load_model(TINY)
    rows, reference = [], None
    for premask in (None, "black", "grey", "white"):
        prepared = prepare_images(list(scene.rgb), masks, size=256, premask=premask)
        start = time.perf_counter()
        preds = infer_pairs(model, [p.view for p in prepared], np.array([[0, 1]]),
                            progress=False, keep_images=False)[0]
        forward = time.perf_counter() - start
        xy1, _, _, _ = match_descriptors(preds["pred1"], preds["pred2"], prepared[0].mask,
                                         prepared[1].mask, MatchOptions(max_3d_error=None))
        fg = prepared[0].mask
        desc, pts = preds["pred1"]["desc"][fg], preds["pred1"]["pts3d"][fg]
        row = {"premask": premask or "none (after network)", "forward_s": forward,
               "matches": len(xy1)}
        if reference is None:
            reference = (desc, pts, {tuple(p) for p in xy1.tolist()})
        else:
            same = len(reference[2] & {tuple(p) for p in xy1.tolist()})
            row.update(fg_desc_cos=float((desc * reference[0]).sum(-1).mean()),
                       fg_pts3d_rel_change=float((pts - reference[1]).norm(dim=-1).median()
                                                 / reference[1].norm(dim=-1).median()),
                       matches_shared=same)
        rows.append(row)
    return rows


def oracle_study() -> list[dict]:
    """Precision (ground truth, 2 px) and count of matches for frame 0 against frames 1..9 of a
    256x192 synthetic scene (oracle descriptors = surface identity + noise), per option set."""
    import numpy as np

    from recon4d.matching.pipeline import MatchOptions, match_graph
    from recon4d.synthetic import OracleModel, generate_scene
    from recon4d.synthetic.matches import correct_matches

    scene = generate_scene(frames=10, width=256, height=192, movers=2, seed=0)
    oracle = OracleModel(scene, desc_dim=24)
    movers = [scene.instance[k] > 0 for k in range(10)]
    variants = [("no mask", None, {}), ("no mask, no 3D check", None, {"max_3d_error": None}),
                ("no mask, one pass", None, {"symmetric": False}),
                ("movers, search", movers, {}), ("movers, post", movers, {"mask_mode": "post"}),
                ("movers, search, one pass", movers, {"symmetric": False}),
                ("movers, search, no 3D check", movers, {"max_3d_error": None})]
    rows = []
    for name, masks, changes in variants:
        start = time.perf_counter()
        _, results = match_graph(oracle, list(scene.rgb), masks, "oneref-0",
                                 MatchOptions(**changes), size=256, progress=False)
        seconds = time.perf_counter() - start
        hits = np.concatenate([correct_matches(scene, pm.i, pm.j, pm.xy1.numpy(),
                                               pm.xy2.numpy()) for pm in results])
        rows.append({"variant": name, "matches_per_pair": len(hits) / len(results),
                     "precision_2px": float(hits.mean()), "seconds_9_pairs": seconds})
    return rows


def _worker(method: str, repeats: int, rows: int | None) -> dict:
    cmd = [sys.executable, __file__, "--worker", method, "--repeats", str(repeats)]
    if rows is not None:
        cmd += ["--exhaustive-rows", str(rows)]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--exhaustive-rows", type=int, default=None,
                        help="time only this many exhaustive query rows and extrapolate")
    parser.add_argument("--premask-study", action="store_true")
    parser.add_argument("--oracle-study", action="store_true")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_method(args.worker, args.repeats, args.exhaustive_rows)))
        return
    if args.premask_study or args.oracle_study:
        for row in premask_study() if args.premask_study else oracle_study():
            print(json.dumps(row))
        return
    rows = [_worker("fast", args.repeats, None), _worker("fast-mask25", args.repeats, None),
            _worker("exhaustive", 1, args.exhaustive_rows)]
    n = HEIGHT * WIDTH
    print(f"{WIDTH}x{HEIGHT} maps, D={DIM}, threads={rows[0]['threads']}; dense similarity "
          f"matrix would be {n * n * 4 / 2**30:.0f} GiB")
    base = rows[-1]["seconds"]
    print(f"{'method':12} {'seconds':>9} {'speedup':>8} {'peak MiB':>9} {'matches':>8} "
          f"{'on shift':>9}")
    for r in rows:
        note = " (extrapolated)" if r["extrapolated"] else ""
        matches = "-" if r["matches"] is None else str(r["matches"])
        shift = "-" if r["on_shift"] is None else f"{100 * r['on_shift']:.1f}%"
        print(f"{r['method']:12} {r['seconds']:9.2f} {base / r['seconds']:7.1f}x "
              f"{r['peak_rss_mib']:9.0f} {matches:>8} "
              f"{shift:>9}{note}")


if __name__ == "__main__":
    main()
