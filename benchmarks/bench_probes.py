"""Memory and time of Easi3R's attention probes on the full-size DUSt3R 512 DPT network, on CPU.

One 512x384 pair, random weights (`bench_forward.random_model`). Each mode runs in a fresh
subprocess so that peak RSS figures do not mix:
- `plain`: the ordinary forward;
- `probed`: the same forward inside `probing(model)` (every decoder layer and head of both
  cross-attentions reduced to mean-over-queries logits, plus the encoder features);
- `masked`: probed, and both views carry an `atten_mask` (the re-weighted second pass; a
  rectangle of dynamic pixels in each view).
Per mode: peak RSS of the process after a warm-up and the timed forwards, the RSS before the
first forward (weights and libraries), and the best forward time of `--repeats`. The target of
issue 10: probed (and masked) peak RSS <= 1.15x plain. The probes keep one B x heads x N float32
vector per layer and side (no N x N tensor), so their memory grows by that much per probed layer.

    python benchmarks/bench_probes.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import time

from process_memory import in_fresh_process, peak_rss_bytes, rss_bytes

MODEL = "DUSt3R_ViTLarge_BaseDecoder_512_dpt"
MODES = ("plain", "probed", "masked")
HEIGHT, WIDTH = 384, 512
TARGET_RATIO = 1.15


def _views(masked: bool) -> list[dict]:
    """Two random 512x384 views; with `masked`, each carries a rectangle of dynamic pixels."""
    import torch

    gen = torch.Generator().manual_seed(1)
    views = []
    for i in range(2):
        view = {"img": torch.rand(1, 3, HEIGHT, WIDTH, generator=gen) * 2 - 1,
                "true_shape": torch.tensor([[HEIGHT, WIDTH]], dtype=torch.int32),
                "idx": [i], "instance": [str(i)]}
        if masked:
            mask = torch.zeros(1, HEIGHT, WIDTH, dtype=torch.bool)
            mask[:, HEIGHT // 4 + 10 * i: HEIGHT // 2, WIDTH // 3: WIDTH // 2 + 20 * i] = True
            view["atten_mask"] = mask
        views.append(view)
    return views


def run_one(mode: str, repeats: int) -> dict:
    """Measure one mode in this process; returns a JSON-able dict."""
    import torch
    from bench_forward import random_model

    from recon4d.models.probes import probing

    model, cfg = random_model(MODEL)
    views = _views(mode == "masked")
    rss_before = rss_bytes()
    probes = probing(model) if mode != "plain" else contextlib.nullcontext()
    times = []
    with torch.inference_mode(), probes:
        pred1, pred2 = model(*views)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            pred1, pred2 = model(*views)
            times.append(time.perf_counter() - start)
    peak = peak_rss_bytes()
    probe_bytes = sum(v.numel() * v.element_size() for pred in (pred1, pred2)
                      for k, v in pred.items() if k in ("cross_atten_maps_k", "match_feature"))
    return {"mode": mode, "peak_rss_gib": peak / 2**30, "rss_before_gib": rss_before / 2**30,
            "forward_s": min(times), "forward_all_s": times, "probe_output_kib": probe_bytes / 1024,
            "layers": cfg.dec_depth, "heads": cfg.dec_num_heads,
            "threads": torch.get_num_threads()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(run_one(args.worker, args.repeats)))
        return
    rows = {mode: in_fresh_process(__file__, mode, args.repeats) for mode in MODES}
    plain = rows["plain"]
    print(f"{MODEL}, one {WIDTH}x{HEIGHT} pair, {plain['layers']} layers x {plain['heads']} "
          f"heads probed per side, threads={plain['threads']}")
    print(f"{'mode':8} {'peak GiB':>9} {'x plain':>8} {'fwd GiB':>8} {'fwd s':>7} {'x plain':>8} "
          f"{'probes KiB':>11}")
    for mode, r in rows.items():
        forward_gib = r["peak_rss_gib"] - r["rss_before_gib"]
        rss_ratio = r["peak_rss_gib"] / plain["peak_rss_gib"]
        time_ratio = r["forward_s"] / plain["forward_s"]
        print(f"{mode:8} {r['peak_rss_gib']:9.2f} {rss_ratio:8.3f} {forward_gib:8.2f} "
              f"{r['forward_s']:7.2f} {time_ratio:8.3f} {r['probe_output_kib']:11.0f}")
        print(f"  forwards {', '.join(f'{t:.2f}' for t in r['forward_all_s'])} s")
    print(f"target: peak RSS <= {TARGET_RATIO}x plain; 'fwd GiB' = peak minus RSS before the "
          "first forward (weights, libraries)")


if __name__ == "__main__":
    main()
