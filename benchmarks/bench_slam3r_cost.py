"""Per-frame cost and memory of the SLAM3R stream over long streams (issue 13, item 4).

Streams `--frames` frames through `Slam3rStream` with random-weight networks, on CPU (or
`--device cuda`): `tiny` = the golden set's checkpoints (tests/data/golden-slam3r), `full` = the
published I2P / L2W architectures of the registry (`slam3r-i2p`, `slam3r-l2w`), random init, no
download. With random weights the content of the frames does not matter for the cost (every
frame runs the same network calls whatever it shows), so frames are a random texture panned by a
few pixels per frame, made on the fly (nothing accumulates). Emitted frames are counted and
dropped: what is measured is the stream itself, not the fused cloud a caller may collect.

One CSV row per pushed frame, written as it goes (a long run can be stopped and still be
reported with `--report CSV`): CPU seconds (`time.process_time`, all threads) and wall seconds
of that push, RSS and peak RSS of the process, the bytes of tensor storage the stream holds
(frames in flight, deduplicated by storage; on CUDA also `torch.cuda.memory_allocated`), frames
held, buffer size, and the views each kind of network call has processed so far (the work,
whatever the machine's speed). Every `--ref-every` frames a fixed reference workload (one
frame's encode, I2P window and camera fit on fixed data) is timed in the same process: on a
shared machine CPU time per operation drifts with contention, so "CPU/ref" (CPU per frame over
the reference) tells a stream that grows from a machine that slows down.

The table gives, around each of `--at` frames (and the last frame), frames per second and CPU
per frame over a window of `--window` pushes centred there, with the memory figures at that
frame. Pushes are bursty (a registration round completes every `(stride + 1) // 2` frames),
hence windows. Full-size CPU frames take tens of seconds: run it in the background with
`--frames` as far as the time allows and report what the CSV reached.

    python benchmarks/bench_slam3r_cost.py --arch tiny --frames 2100 --csv /tmp/bench13/tiny.csv
    nohup python benchmarks/bench_slam3r_cost.py --arch full --frames 2100 \
        --csv /tmp/bench13/full.csv > /tmp/bench13/full.log 2>&1 &
    python benchmarks/bench_slam3r_cost.py --report /tmp/bench13/full.csv
    [--size 224] [--keyframe-stride 3] [--window 50] [--at 100 1000 2000] [--threads 1]
        [--ref-every 50] [--device cpu]
"""

from __future__ import annotations

import argparse
import csv
import time
from collections.abc import Iterator
from pathlib import Path

from process_memory import peak_rss_bytes, rss_bytes

GOLDEN = Path(__file__).resolve().parents[1] / "tests" / "data" / "golden-slam3r" / "checkpoints"
CALLS = ("i2p", "l2w", "corr")
FIELDS = ("frame", "push_cpu_s", "ref_cpu_s", "wall_s", "emitted", "rss_mb", "peak_rss_mb",
          "held_mb", "cuda_mb", "held_frames", "buffer", *(f"{call}_views" for call in CALLS))
MB = 2**20
PAN = 3  # texture pixels per frame


def make_backend(arch: str, device: str):
    """`NetworkBackend` with the tiny golden checkpoints or full-size random-weight networks."""
    import torch

    from recon4d.models.registry import registry_config
    from recon4d.models.slam3r.network import build_slam3r
    from recon4d.slam.slam3r_backend import NetworkBackend, load_backend

    if arch == "tiny":
        return load_backend(str(GOLDEN / "tiny_slam3r_i2p.pth"),
                            str(GOLDEN / "tiny_slam3r_l2w_hf"), device)
    torch.manual_seed(0)
    return NetworkBackend(build_slam3r(registry_config("slam3r-i2p"), device),
                          build_slam3r(registry_config("slam3r-l2w"), device))


class CountingBackend:
    """A backend that counts the views each kind of network call processes (cumulative): the
    work per frame, whatever the machine's speed or load."""

    def __init__(self, backend) -> None:
        self.backend = backend
        self.views = dict.fromkeys(CALLS, 0)

    def encode(self, frame: dict):
        return self.backend.encode(frame)

    def i2p(self, windows: list, ref_id: int = 0):
        self.views["i2p"] += len(windows) * len(windows[0])
        return self.backend.i2p(windows, ref_id)

    def l2w(self, scene: list, scene_points, sources: list, source_points):
        self.views["l2w"] += len(scene) + len(sources)
        return self.backend.l2w(scene, scene_points, sources, source_points)

    def corr(self, sources: list, candidates: list):
        self.views["corr"] += len(sources) * (1 + len(candidates))
        return self.backend.corr(sources, candidates)


def frames(count: int, size: int, seed: int = 0) -> Iterator[dict]:
    """`count` view dicts (1 x 3 x size x size in [-1, 1]): a fixed random texture panned by
    PAN pixels per frame, generated one at a time."""
    import torch

    gen = torch.Generator().manual_seed(seed)
    texture = torch.rand(1, 3, size, 2 * size, generator=gen) * 2 - 1
    for i in range(count):
        shift = (i * PAN) % size
        yield {"img": texture[..., shift:shift + size].contiguous(), "label": f"frame {i}"}


def reference_cpu(backend, frame: dict, views: int, repeats: int = 3) -> float:
    """CPU seconds (median of `repeats`) of one frame's typical work on fixed data: an encode,
    an I2P window of `views` views and a camera fit. Measured through the run, it tells a
    stream that grows from a machine that slows down (contention inflates CPU time too)."""
    import statistics

    from recon4d.slam.slam3r_camera import fit_camera

    times = []
    for _ in range(repeats):
        start = time.process_time()
        code = backend.encode(frame)
        points, conf = backend.i2p([[code] * views])
        fit_camera(points[0, 0], points[1, 0], conf[0, 0] - 1)
        times.append(time.process_time() - start)
    return statistics.median(times)


def held_bytes(stream) -> int:
    """Bytes of tensor storage reachable from the stream's frames in flight, each storage
    counted once (views of one batched network output share it)."""
    import torch

    storages: dict[int, int] = {}

    def visit(value) -> None:
        if isinstance(value, torch.Tensor):
            storage = value.untyped_storage()
            storages[storage.data_ptr()] = storage.nbytes()
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item)
        elif hasattr(value, "__dict__"):
            for item in vars(value).values():
                visit(item)

    for state in stream.frames.values():
        visit(state)
    return sum(storages.values())


def run(args: argparse.Namespace) -> Path:
    """Stream the frames, one CSV row per push; returns the CSV path."""
    import torch

    from recon4d.options.slam import Slam3rOptions
    from recon4d.slam.slam3r import Slam3rStream

    torch.set_num_threads(args.threads)
    cuda = args.device.startswith("cuda")
    options = Slam3rOptions(keyframe_stride=args.keyframe_stride)
    backend = CountingBackend(make_backend(args.arch, args.device))
    stream = Slam3rStream(backend, options)
    fixed = next(frames(1, args.size, seed=1))
    ref_cpu = 0.0
    path = Path(args.csv)
    path.parent.mkdir(parents=True, exist_ok=True)
    wall = 0.0  # seconds inside push(), so the reference work and bookkeeping do not count
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, FIELDS)
        writer.writeheader()
        for i, view in enumerate(frames(args.frames, args.size)):
            if i % args.ref_every == 0:
                ref_cpu = reference_cpu(backend.backend, fixed, 2 * options.win_r + 1)
            cpu, start = time.process_time(), time.perf_counter()
            emitted = len(stream.push(view))
            if cuda:
                torch.cuda.synchronize()
            cpu, wall = time.process_time() - cpu, wall + time.perf_counter() - start
            writer.writerow({
                "frame": i, "push_cpu_s": f"{cpu:.4f}", "ref_cpu_s": f"{ref_cpu:.4f}",
                "wall_s": f"{wall:.3f}", "emitted": emitted,
                "rss_mb": f"{rss_bytes() / MB:.1f}", "peak_rss_mb": f"{peak_rss_bytes() / MB:.1f}",
                "held_mb": f"{held_bytes(stream) / MB:.2f}",
                "cuda_mb": f"{torch.cuda.memory_allocated() / MB:.1f}" if cuda else "",
                "held_frames": len(stream.frames),
                "buffer": len(stream.buffer.ids) if stream.buffer is not None else 0,
                **{f"{call}_views": n for call, n in backend.views.items()}})
            f.flush()
    return path


def report(path: Path, at: list[int], window: int) -> None:
    """The table of one CSV: per-window speed, CPU cost and network views per frame (I2P /
    L2W / correlation), memory at the frame."""
    with path.open() as f:
        rows = list(csv.DictReader(f))
    last = len(rows) - 1
    print(f"{path}: {len(rows)} frames pushed, {float(rows[-1]['wall_s']):.0f} s wall, "
          f"{sum(float(r['push_cpu_s']) for r in rows):.0f} s CPU in push()")
    print("FPS and CPU: over the window's pushes; CPU/ref: CPU per frame over the reference "
          "work measured in the window; views/fr: network views per frame")
    print(f"{'frame':>6} {'window':>11} {'FPS':>7} {'CPU ms/fr':>10} {'RSS MB':>8} "
          f"{'peak MB':>8} {'held MB':>8} {'CUDA MB':>8} {'frames':>6} {'buffer':>6} "
          f"{'CPU/ref':>7} {'views/fr i2p/l2w/corr':>22}")
    for frame in sorted({f for f in at if f <= last} | {last}):
        lo = max(0, min(frame - window // 2, last + 1 - window))
        hi = min(last, lo + window - 1)
        span = rows[lo:hi + 1]
        wall = float(rows[hi]["wall_s"]) - (float(rows[lo - 1]["wall_s"]) if lo else 0.0)
        cpu = sum(float(r["push_cpu_s"]) for r in span) / len(span)
        row = rows[frame]
        print(f"{frame:6d} {f'{lo}-{hi}':>11} {len(span) / wall:7.2f} {1000 * cpu:10.1f} "
              f"{float(row['rss_mb']):8.0f} {float(row['peak_rss_mb']):8.0f} "
              f"{float(row['held_mb']):8.1f} {row['cuda_mb'] or '-':>8} "
              f"{row['held_frames']:>6} {row['buffer']:>6} {_per_reference(span, cpu):>7} "
              f"{_views_per_frame(rows, lo, hi):>22}")


def _per_reference(span: list[dict], cpu: float) -> str:
    """Mean CPU per frame over the window's mean reference CPU ("-" in older CSVs)."""
    if "ref_cpu_s" not in span[0]:
        return "-"
    return f"{cpu / (sum(float(r['ref_cpu_s']) for r in span) / len(span)):.2f}"


def _views_per_frame(rows: list[dict], lo: int, hi: int) -> str:
    """Network views per pushed frame over rows lo..hi, per call kind ("-" in older CSVs)."""
    if f"{CALLS[0]}_views" not in rows[hi]:
        return "-"

    def views(i: int, call: str) -> int:
        return int(rows[i][f"{call}_views"]) if i >= 0 else 0

    return "/".join(f"{(views(hi, c) - views(lo - 1, c)) / (hi - lo + 1):.1f}" for c in CALLS)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", choices=("tiny", "full"), default="tiny")
    parser.add_argument("--frames", type=int, default=2100)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--keyframe-stride", type=int, default=3,
                        help="fixed stride (0 = automatic: random weights make its choice "
                             "arbitrary, and the probe's one-off cost would hide the first "
                             "frames)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--csv", default="/tmp/bench13/slam3r_cost.csv")
    parser.add_argument("--report", help="only print the table of this CSV")
    parser.add_argument("--at", type=int, nargs="+", default=[100, 1000, 2000])
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--ref-every", type=int, default=50,
                        help="frames between measurements of the reference work")
    args = parser.parse_args()
    path = Path(args.report) if args.report else run(args)
    report(path, args.at, args.window)


if __name__ == "__main__":
    main()
