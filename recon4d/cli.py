"""The `recon4d` command line: a light parser, and each command's work imported only when it runs.

Only the chosen sub-command's flags are built (`recon4d.commands.NAME.register`, standard
library and `recon4d.options` only, so `--help` stays fast); `recon4d.commands.NAME_run.run(args)`
does the work.
Exit status: 0 success, 2 a user error (one line on stderr: bad option, input or output path),
130 interrupted by Ctrl-C (SIGINT), 143 terminated by SIGTERM; both interruptions unwind like
Ctrl-C, so no half-written output or staging folder stays behind.
"""

from __future__ import annotations

import argparse
import importlib
import signal
import sys

from recon4d import __version__
from recon4d.errors import Recon4dError
from recon4d.io.signals import Terminated, sigterm_as_interrupt

COMMANDS = {  # name: one line for `recon4d --help`
    "reconstruct": "images or video -> depth, cameras, point cloud in every format",
    "infer": "run the pair network on images or a video; writes predictions.npz",
    "masks": "per-frame motion masks (Easi3R attention or optical flow) of images or a video",
    "match": "MASt3R pixel matches between images, optionally inside masks",
    "slam": "stream images or a video through SLAM3R: cameras and a fused point cloud",
    "synth": "render a synthetic dynamic scene with ground truth",
    "eval": "evaluate outputs against a benchmark's ground truth (poses, depth, masks, clouds)",
    "view": "open an output folder (static or 4D) in a web viewer with a timeline",
    "batch": "run one job over many inputs as Ray tasks, locally or on a cluster; resumable",
    "app": "the web app: upload, run any job in a queue, view the result, download a zip",
}

DESCRIPTION = """\
Dense 3D reconstruction of images or a video with the DUSt3R model family (DUSt3R, MASt3R,
MonST3R): per-frame depth, camera intrinsics and poses, and a point cloud, written in common
formats (PLY, GLB, COLMAP, nerfstudio), plus evaluation against benchmark ground truth."""

DOCS = """\
Run `recon4d COMMAND --help` for a command's options.
Documentation: README.md and the docs/ folder of the recon4d repository."""


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser; of the sub-commands, only `command` gets its flags (the others stay empty, so
    their modules are not imported)."""
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {summary}" for name, summary in COMMANDS.items()]
    parser = argparse.ArgumentParser(
        prog="recon4d", description=DESCRIPTION, formatter_class=argparse.RawTextHelpFormatter,
        epilog="commands:\n" + "\n".join(lines) + "\n\n" + DOCS)
    parser.add_argument("--version", action="version", version=f"recon4d {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help="one of the commands below")
    for name in COMMANDS:
        if name == command:
            importlib.import_module(f"recon4d.commands.{name}").register(sub)
        else:
            sub.add_parser(name)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; see the module docstring for the exit status."""
    sigterm_as_interrupt()
    argv = sys.argv[1:] if argv is None else argv
    # top-level flags take no value, so the first word that is not a flag names the command
    command = next((word for word in argv if not word.startswith("-")), None)
    args = build_parser(command).parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Recon4dError as exc:
        print(f"recon4d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except Terminated as exc:
        print(f"recon4d {args.command}: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except KeyboardInterrupt:
        print(f"recon4d {args.command}: interrupted", file=sys.stderr)
        return 128 + signal.SIGINT


if __name__ == "__main__":
    raise SystemExit(main())
