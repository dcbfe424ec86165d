"""`recon4d match` flags: MASt3R matches between images, optionally inside foreground masks."""

from __future__ import annotations

import argparse

from recon4d.commands import add_out, runner
from recon4d.options import MatchNetworkOptions, MatchOptions, add_options

MASK_SUFFIXES = (".png", ".npy", ".jpg", ".jpeg")  # --mask-dir: a mask is IMAGE_STEM + suffix


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `match` sub-command."""
    p = subparsers.add_parser(
        "match",
        description="Find reciprocal MASt3R descriptor matches between two images (or every pair "
                    "of a pair graph over more images), optionally restricted to foreground "
                    "masks. Writes matches_I_J.npz (original-image pixels, confidences, relative "
                    "pose, 3D points), matches_I_J.png and scene.json into --out (atomically).")
    p.add_argument("images", nargs="+", help="two or more images, or one folder of images")
    add_out(p, "match")
    p.add_argument("--n-viz", type=int, default=20, help="matches drawn per PNG (default 20)")
    masks = p.add_argument_group("Masks: give them one way")
    masks.add_argument("--mask1", help="foreground mask of the first image (white = may match)")
    masks.add_argument("--mask2", help="foreground mask of the second image")
    masks.add_argument("--masks", nargs="+", help="one mask per image, in the order of the "
                       "images")
    masks.add_argument("--mask-dir", help="folder with a mask per image, named like the image "
                       f"with one of the suffixes {', '.join(MASK_SUFFIXES)}")
    add_options(p, MatchNetworkOptions)
    add_options(p, MatchOptions)
    p.set_defaults(func=runner("match"))
    return p
