"""recon4d.commands: per sub-command, a light module building its flags (`NAME.py`: `register`)
and the module doing its work (`NAME_run.py`: `run(args)`), imported only when the command runs;
`recon4d.cli` lists the commands."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable


def add_out(parser: argparse.ArgumentParser, command: str) -> None:
    """--out: the output folder, which only a previous output of the same command may replace."""
    parser.add_argument("--out", required=True, help="output folder (replaced atomically if it "
                        f"is a previous `recon4d {command}` output)")


def add_sources(parser: argparse.ArgumentParser, command: str, predictions_help: str,
                oracle_help: str) -> None:
    """INPUT, --out, --predictions and --oracle: the sources of a command that reads frames,
    a predictions file or a synthetic scene."""
    parser.add_argument("input", nargs="?", default=None,
                        help="a folder of images or a video file (or use --predictions / "
                             "--oracle)")
    add_out(parser, command)
    parser.add_argument("--predictions", default=None, help=predictions_help)
    parser.add_argument("--oracle", default=None, metavar="SCENE_DIR", help=oracle_help)


def runner(command: str) -> Callable[[argparse.Namespace], int]:
    """The `func` of a sub-parser: calls `recon4d.commands.<command>_run.run`, imported only then
    (so building the parser imports nothing heavy)."""
    def run(args: argparse.Namespace) -> int:
        return importlib.import_module(f"recon4d.commands.{command}_run").run(args)
    return run
