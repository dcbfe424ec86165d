"""Forward-pass benchmark of the full-size networks on one 512x384 pair, on CPU.

For each model (DUSt3R 512 DPT, MASt3R 512 catmlp+dpt; random weights built from the registry
config), in a fresh subprocess so memory figures do not mix: wall time of a forward (best of
`--repeats` after a warm-up), peak RSS (read after the first timed forward, before anything else
is allocated), the FLOPs of the forward (torch's FLOP counter, taught the CPU flash-attention
kernel it does not know) and the achieved FLOP/s as a fraction of a large plain fp32 matmul
(4096^3) run in the same process:
- `% paired`: each timed forward is followed by back-to-back matmuls for as long as the forward
  took; the fraction is forward FLOP/s over that window's FLOP/s, median over the repeats.
  Shared machines swing between fast and slow phases lasting seconds; pairing equal windows
  makes both sides see the same mix of phases.
- `% peak`: best forward FLOP/s over the best single matmul seen in any window; conservative
  (a forward spanning a slow phase is compared with the fastest moment).
Targets: >= 70% of matmul throughput (paired), peak RSS < 1.3x the fp32 weights.

    python benchmarks/bench_forward.py [--models dust3r-512-dpt mast3r] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from process_memory import in_fresh_process, peak_rss_bytes

MODELS = {
    "dust3r-512-dpt": "DUSt3R_ViTLarge_BaseDecoder_512_dpt",
    "mast3r": "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric",
}



class MatmulBaseline:
    """n x n fp32 matmuls run back to back: sustained FLOP/s per window, best single product."""

    def __init__(self, n: int = 4096) -> None:
        import torch

        self.n = n
        self.a, self.b = torch.randn(n, n), torch.randn(n, n)
        self.out = torch.empty(n, n)
        self.best_s = float("inf")

    def window(self, seconds: float) -> float:
        """FLOP/s sustained over at least `seconds` of products (at least two)."""
        import torch

        count, start = 0, time.perf_counter()
        while count < 2 or time.perf_counter() - start < seconds:
            self.best_s = min(self.best_s, _timed(lambda: torch.mm(self.a, self.b, out=self.out)))
            count += 1
        return count * self.flops_per_product / (time.perf_counter() - start)

    @property
    def flops_per_product(self) -> int:
        return 2 * self.n**3

    @property
    def peak_flops_per_s(self) -> float:
        return self.flops_per_product / self.best_s


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def attention_flops(query, key, value, *args, out_shape=None, **kwargs) -> int:
    """q k^T and (softmax) v products of one attention call, 2 FLOPs per multiply-add.

    torch's counter knows this formula for the GPU kernels only; without it the CPU forward's
    attention (about 16% of a 512x384 pair's work) would count as free.
    """
    b, h, s_q, d = query
    s_k, d_v = key[-2], value[-1]
    return 2 * b * h * s_q * s_k * (d + d_v)


def flop_counter():
    """torch's FLOP counter, with the CPU flash-attention kernel counted like the GPU ones."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode, flop_registry

    op = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    extra = {} if op in flop_registry else {op: attention_flops}
    return FlopCounterMode(display=False, custom_mapping=extra)


def random_model(registry_name: str):
    """Full-size model with random weights, allocated once (meta -> empty -> in-place fill)."""
    import torch

    from recon4d.models.network import build_model
    from recon4d.models.registry import registry_config

    cfg = registry_config(registry_name)
    model = build_model(cfg, device="meta").to_empty(device="cpu")
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, tensor in model.state_dict(keep_vars=True).items():
            if tensor.dim() > 1:
                tensor.normal_(0.0, 0.02, generator=gen)
            elif "norm" in name and name.endswith("weight"):
                tensor.fill_(1.0)
            else:
                tensor.zero_()
    return model.eval(), cfg


def run_one(key: str, repeats: int) -> dict:
    """Measure one model in this process; returns a JSON-able dict."""
    import torch

    rss_start = peak_rss_bytes()
    model, cfg = random_model(MODELS[key])
    n_params = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    weights_bytes = 4 * n_params
    h, w = 384, 512
    gen = torch.Generator().manual_seed(1)
    views = [
        {"img": torch.rand(1, 3, h, w, generator=gen) * 2 - 1,
         "true_shape": torch.tensor([[h, w]], dtype=torch.int32), "idx": [i], "instance": [str(i)]}
        for i in range(2)
    ]
    with torch.inference_mode():
        model(*views)  # warm-up
        times = [_timed(lambda: model(*views))]
        peak = peak_rss_bytes()  # the forward's high-water mark, before the matmul buffers
        baseline = MatmulBaseline()
        windows = [baseline.window(times[0])]
        for _ in range(repeats - 1):
            times.append(_timed(lambda: model(*views)))
            windows.append(baseline.window(times[-1]))
        with flop_counter() as counter:
            model(*views)
        flops = counter.get_total_flops()
    best = min(times)
    paired = statistics.median(flops / t / m for t, m in zip(times, windows, strict=True))
    return {
        "model": key, "params": n_params, "weights_gib": weights_bytes / 2**30,
        "forward_s": best, "forward_all_s": times, "gflop": flops / 1e9,
        "gflop_per_s": flops / best / 1e9, "peak_rss_gib": peak / 2**30,
        "rss_over_weights": peak / weights_bytes, "rss_before_model_gib": rss_start / 2**30,
        "threads": torch.get_num_threads(), "window_gflop_per_s": [m / 1e9 for m in windows],
        "matmul_peak_gflop_per_s": baseline.peak_flops_per_s / 1e9,
        "fraction_paired": paired, "fraction_of_peak": flops / best / baseline.peak_flops_per_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_one(args.worker, args.repeats)))
        return
    rows = [in_fresh_process(__file__, key, args.repeats) for key in args.models]
    header = (f"{'model':16} {'params':>11} {'fwd s':>7} {'GFLOP':>7} {'GFLOP/s':>8} "
              f"{'mm peak':>8} {'% paired':>9} {'% peak':>7} {'RSS GiB':>8} {'RSS/wts':>8}")
    print(header)
    for r in rows:
        print(f"{r['model']:16} {r['params']:>11,} {r['forward_s']:7.2f} {r['gflop']:7.0f} "
              f"{r['gflop_per_s']:8.1f} {r['matmul_peak_gflop_per_s']:8.1f} "
              f"{100 * r['fraction_paired']:8.1f}% {100 * r['fraction_of_peak']:6.1f}% "
              f"{r['peak_rss_gib']:8.2f} {r['rss_over_weights']:8.2f}")
        windows = ", ".join(f"{m:.0f}" for m in r["window_gflop_per_s"])
        forwards = ", ".join(f"{t:.2f}" for t in r["forward_all_s"])
        print(f"  forwards {forwards} s; matmul windows {windows} GFLOP/s")
    print(f"targets: >= 70% paired, RSS/weights < 1.3 (threads={rows[0]['threads']})")


if __name__ == "__main__":
    main()
