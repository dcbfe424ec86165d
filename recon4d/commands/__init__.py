"""recon4d.commands: per sub-command, a light module building its flags (`NAME.py`: `register`)
and the module doing its work (`NAME_run.py`: `run(args)`), imported only when the command runs;
`recon4d.cli` lists the commands."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Callable


def runner(command: str) -> Callable[[argparse.Namespace], int]:
    """The `func` of a sub-parser: calls `recon4d.commands.<command>_run.run`, imported only then
    (so building the parser imports nothing heavy)."""
    def run(args: argparse.Namespace) -> int:
        return importlib.import_module(f"recon4d.commands.{command}_run").run(args)
    return run
