"""`recon4d match`: MASt3R matches between two images (or every pair of a graph), optionally only
inside foreground masks; writes one .npz and one .png per pair and scene.json."""

from __future__ import annotations

import argparse
import time
from dataclasses import asdict
from pathlib import Path

from recon4d import models
from recon4d.commands.arguments import positive_int
from recon4d.errors import InputError
from recon4d.inference.engine import requested_device
from recon4d.inference.graphs import GRAPH_HELP
from recon4d.inference.run import default_size
from recon4d.io import collect_frames
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.scene_json import check_output_folder, write_scene_json
from recon4d.matching.export import save_matches
from recon4d.matching.masks import BACKGROUND_COLOURS
from recon4d.matching.pipeline import MASK_MODES, MatchOptions, match_graph
from recon4d.matching.visualize import match_picture, save_png

DEFAULT_WEIGHTS = "MASt3R_ViTLarge_BaseDecoder_512_catmlpdpt_metric"
MASK_SUFFIXES = (".png", ".npy", ".jpg", ".jpeg")


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `match` sub-command."""
    p = subparsers.add_parser(
        "match", help="MASt3R pixel matches between images, optionally inside masks",
        description="Find reciprocal MASt3R descriptor matches between two images (or every pair "
                    "of a pair graph over more images), optionally restricted to foreground "
                    "masks. Writes matches_I_J.npz (original-image pixels, confidences, relative "
                    "pose, 3D points), matches_I_J.png and scene.json into --out (atomically).")
    p.add_argument("images", nargs="+", help="two or more images, or one folder of images")
    p.add_argument("--out", required=True, help="output folder (replaced atomically if it is a "
                   "previous `recon4d match` output)")
    p.add_argument("--mask1", help="foreground mask of the first image (white = may match)")
    p.add_argument("--mask2", help="foreground mask of the second image")
    p.add_argument("--masks", nargs="+", help="one mask per image, in the order of the images")
    p.add_argument("--mask-dir", help="folder with a mask per image, named like the image with "
                   f"one of the suffixes {', '.join(MASK_SUFFIXES)}")
    p.add_argument("--mask-mode", choices=MASK_MODES, default="search",
                   help="search (default): masks restrict the search itself; post: match the "
                        "whole images, then drop matches outside the masks")
    p.add_argument("--mask-erode", type=int, default=0,
                   help="shrink the masks by this many model pixels first (default 0)")
    p.add_argument("--premask", choices=sorted(BACKGROUND_COLOURS), default=None,
                   help="also paint the background this colour before the network (out of "
                        "distribution for the network; see the documentation)")
    p.add_argument("--weights", default=DEFAULT_WEIGHTS,
                   help="MASt3R checkpoint: .pth file, Hugging Face folder or repo id, or "
                        f"registry name (default {DEFAULT_WEIGHTS})")
    p.add_argument("--size", type=positive_int, default=None,
                   help="model input size (default: from the checkpoint, 512)")
    p.add_argument("--graph", default="complete", help=f"pairs to match: {GRAPH_HELP}")
    p.add_argument("--device", choices=("cpu", "cuda"), default=None,
                   help="default: cuda when available, else cpu")
    defaults = MatchOptions()
    p.add_argument("--subsample", type=positive_int, default=defaults.subsample,
                   help=f"seed grid step in pixels (default {defaults.subsample})")
    p.add_argument("--border", type=int, default=defaults.border,
                   help=f"drop matches this close to an image edge (default {defaults.border})")
    p.add_argument("--conf-thr", type=float, default=defaults.conf_thr,
                   help="drop matches whose descriptor confidence is below this (default 0)")
    p.add_argument("--min-similarity", type=float, default=None,
                   help="drop matches whose descriptors' dot product is below this (-1..1)")
    p.add_argument("--max-3d-error", type=_off_or_float, default=defaults.max_3d_error,
                   help="drop matches whose two predicted 3D points differ by more than this "
                        f"fraction of their depth (default {defaults.max_3d_error}; 'off' keeps "
                        "all)")
    p.add_argument("--no-symmetric", action="store_true",
                   help="use only the i->j pass's descriptors (default: average both orders)")
    p.add_argument("--n-viz", type=int, default=20, help="matches drawn per PNG (default 20)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Images (+ masks) -> matches of every pair -> npz + png per pair, scene.json."""
    start = time.perf_counter()
    out = Path(args.out)
    check_output_folder(out, "match")
    source = collect_frames(args.images)
    source.require(2, "matching")
    masks = _masks(args, source.frames)
    options = MatchOptions(subsample=args.subsample, border=args.border, conf_thr=args.conf_thr,
                           min_similarity=args.min_similarity, max_3d_error=args.max_3d_error,
                           mask_mode=args.mask_mode, mask_erode=args.mask_erode,
                           premask=args.premask, symmetric=not args.no_symmetric)
    device = requested_device(args.device)
    model = models.load_model(args.weights, device=device)
    size = args.size or default_size(getattr(model, "config", None))
    prepared, results = match_graph(model, source.frames, masks, args.graph, options, size,
                                    device)
    pairs = []
    with atomic_output_dir(out) as staging:
        for pm in results:
            stem = f"matches_{pm.i}_{pm.j}"
            save_matches(staging / f"{stem}.npz", pm, prepared[pm.i], prepared[pm.j])
            if args.n_viz > 0:
                picture = match_picture(pm, prepared[pm.i], prepared[pm.j], args.n_viz)
                save_png(staging / f"{stem}.png", picture)
            pairs.append({"i": pm.i, "j": pm.j, "matches": len(pm)})
        mask_names = [None if m is None else str(m) for m in masks] if masks else None
        extra = {"model": {"weights": str(args.weights)},
                 "inputs": {"images": list(source.names), "masks": mask_names, "size": size,
                            "graph": args.graph},
                 "match_options": asdict(options), "pairs": pairs}
        cli_options = {k: v for k, v in vars(args).items() if k not in ("func", "command")}
        write_scene_json(staging, "match", cli_options, extra)
    total = sum(p["matches"] for p in pairs)
    print(f"recon4d match: {len(source)} images, {len(pairs)} pairs, {total} matches, "
          f"{time.perf_counter() - start:.1f} s -> {out}")
    return 0


def _off_or_float(text: str) -> float | None:
    """argparse type: a number, or 'off' for None."""
    return None if text.lower() in ("off", "none") else float(text)


def _masks(args: argparse.Namespace, frames: list) -> list | None:
    """One mask path (or None) per image from --mask1/--mask2, --masks or --mask-dir."""
    given = [name for name, value in (("--mask1/--mask2", args.mask1 or args.mask2),
                                      ("--masks", args.masks), ("--mask-dir", args.mask_dir))
             if value]
    if len(given) > 1:
        raise InputError(f"give masks one way only, not {' and '.join(given)}")
    if args.mask1 or args.mask2:
        if len(frames) != 2:
            raise InputError(f"--mask1/--mask2 are for two images, got {len(frames)}; use "
                             "--masks or --mask-dir")
        return [args.mask1, args.mask2]
    if args.masks:
        if len(args.masks) != len(frames):
            raise InputError(f"--masks lists {len(args.masks)} masks for {len(frames)} images")
        return list(args.masks)
    if args.mask_dir:
        return [_mask_in_dir(Path(args.mask_dir), frame) for frame in frames]
    return None


def _mask_in_dir(folder: Path, frame: object) -> Path:
    """The mask of image `frame` in `folder`: same name stem, a mask suffix."""
    if not isinstance(frame, Path):
        raise InputError("--mask-dir needs image files (video frames have no file names)")
    for suffix in MASK_SUFFIXES:
        candidate = folder / (frame.stem + suffix)
        if candidate.is_file():
            return candidate
    raise InputError(f"{folder}: no mask for {frame.name} (looked for {frame.stem}"
                     f"{{{','.join(MASK_SUFFIXES)}}})")

