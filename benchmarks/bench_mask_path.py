"""Time of the Easi3R motion-mask network passes against one plain inference pass.

Full-size DUSt3R 512 DPT with random weights (`bench_forward.random_model`), N random 512x384
frames, complete symmetrized graph (N(N-1) pairs), all through `infer_pairs`:
- `plain (per pair)`: one ordinary pass on today's path (the model called as a plain callable, so
  every batch runs its own encoder: 2E encoder runs, halved by symmetrized batches) with heads;
- `plain (cached)`: the same pass with each frame encoded once (`EncoderCache`);
- `mask path`: Easi3R's two passes as `recon4d masks` runs them: pass 1 with probes and no heads,
  pass 2 re-weighted by motion masks, no heads, decoding from pass 1's encoder tokens.
Target of issue 10: mask path <= 1.3x plain (per pair). Figures swing on shared machines.

    python benchmarks/bench_mask_path.py [--frames 6] [--batch-size 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import time

MODEL = "DUSt3R_ViTLarge_BaseDecoder_512_dpt"
HEIGHT, WIDTH = 384, 512
TARGET_RATIO = 1.3


def _views(frames: int) -> list[dict]:
    """`frames` random loader-style 512x384 views."""
    import torch

    gen = torch.Generator().manual_seed(1)
    return [{"img": torch.rand(1, 3, HEIGHT, WIDTH, generator=gen) * 2 - 1,
             "true_shape": torch.tensor([[HEIGHT, WIDTH]], dtype=torch.int32), "idx": i,
             "instance": str(i)} for i in range(frames)]


def _timed(fn) -> float:
    """Seconds `fn()` took, CUDA work included."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    import numpy as np
    import torch
    from bench_forward import random_model

    from recon4d.inference import infer_pairs, make_pairs
    from recon4d.inference.engine import EncoderCache

    model, _ = random_model(MODEL)
    model = model.to(args.device)
    views = _views(args.frames)
    edges = make_pairs(args.frames, "complete", symmetrize=True)
    masks = np.zeros((args.frames, HEIGHT, WIDTH), bool)
    masks[:, HEIGHT // 4: HEIGHT // 2, WIDTH // 3: WIDTH // 2] = True
    common = {"batch_size": args.batch_size, "device": args.device, "progress": False}

    def mask_path() -> None:
        cache = EncoderCache()
        infer_pairs(model, views, edges, probes=True, heads=False, encoder_cache=cache, **common)
        infer_pairs(model, views, edges, probes=True, heads=False, encoder_cache=cache,
                    motion_masks=masks, **common)

    runs = {
        "plain (per pair)": lambda: infer_pairs(lambda v1, v2: model(v1, v2), views, edges,
                                                **common),
        "plain (cached)": lambda: infer_pairs(model, views, edges, **common),
        "mask path": mask_path,
    }
    infer_pairs(model, views[:2], make_pairs(2, "complete"), **common)  # warm-up
    seconds = {name: _timed(fn) for name, fn in runs.items()}
    base = seconds["plain (per pair)"]
    print(f"{MODEL}, {args.frames} frames {WIDTH}x{HEIGHT}, {len(edges)} pairs, batch "
          f"{args.batch_size}, {args.device}, threads={torch.get_num_threads()}")
    for name, value in seconds.items():
        print(f"{name:18} {value:8.2f} s {value / base:6.3f}x plain (per pair)")
    print(f"target: mask path <= {TARGET_RATIO}x plain (per pair)")


if __name__ == "__main__":
    main()
