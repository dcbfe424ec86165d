"""`recon4d match`: images (+ masks) -> matches of every pair -> one npz and png per pair."""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

from recon4d import models
from recon4d.commands.match import MASK_SUFFIXES
from recon4d.errors import InputError
from recon4d.inference.engine import requested_device
from recon4d.inference.run import default_size
from recon4d.io import collect_frames
from recon4d.io.atomic import atomic_output_dir
from recon4d.io.layout import matches_stem
from recon4d.io.scene_json import check_output_folder, write_scene_json
from recon4d.matching.export import save_matches
from recon4d.matching.pipeline import match_graph
from recon4d.matching.visualize import match_picture, save_png
from recon4d.options import MatchNetworkOptions, MatchOptions, options_from_args


def run(args: argparse.Namespace) -> int:
    """Check the options and --out, match, write npz + png per pair and scene.json."""
    start = time.perf_counter()
    network = options_from_args(MatchNetworkOptions, args)
    options = options_from_args(MatchOptions, args)
    out = Path(args.out)
    check_output_folder(out, "match")
    source = collect_frames(args.images)
    source.require(2, "matching")
    masks = _masks(args, source.frames)
    device = requested_device(network.device)
    model = models.load_model(network.weights, device=device)
    size = network.size or default_size(getattr(model, "config", None))
    prepared, results = match_graph(model, source.frames, masks, network.graph, options, size,
                                    device)
    pairs = []
    with atomic_output_dir(out) as staging:
        for pm in results:
            stem = matches_stem(pm.i, pm.j)
            save_matches(staging / f"{stem}.npz", pm, prepared[pm.i], prepared[pm.j])
            if args.n_viz > 0:
                picture = match_picture(pm, prepared[pm.i], prepared[pm.j], args.n_viz)
                save_png(staging / f"{stem}.png", picture)
            pairs.append({"i": pm.i, "j": pm.j, "matches": len(pm)})
        mask_names = [None if m is None else str(m) for m in masks] if masks else None
        extra = {"model": {"weights": str(network.weights)},
                 "inputs": {"images": list(source.names), "masks": mask_names, "size": size,
                            "graph": network.graph},
                 "pairs": pairs}
        record = {"images": list(args.images), "n_viz": args.n_viz,
                  "network": dataclasses.asdict(network), "matching": dataclasses.asdict(options)}
        write_scene_json(staging, "match", record, extra)
    total = sum(p["matches"] for p in pairs)
    print(f"recon4d match: {len(source)} images, {len(pairs)} pairs, {total} matches, "
          f"{time.perf_counter() - start:.1f} s -> {out}")
    return 0


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
