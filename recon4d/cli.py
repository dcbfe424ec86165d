"""The `recon4d` command: one sub-command per module in `recon4d.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

from recon4d import __version__
from recon4d.errors import Recon4dError

# Each module defines `register(subparsers)` adding its sub-parser with `set_defaults(func=...)`.
COMMAND_MODULES = ("infer", "match", "synth", "eval", "reconstruct")


def build_parser() -> argparse.ArgumentParser:
    """Parser with every sub-command registered."""
    parser = argparse.ArgumentParser(prog="recon4d", description=__doc__)
    parser.add_argument("--version", action="version", version=f"recon4d {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name in COMMAND_MODULES:
        importlib.import_module(f"recon4d.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the command line; user errors print one message and exit with status 2."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except Recon4dError as exc:
        print(f"recon4d {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"recon4d {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
