"""`recon4d app` flags: the web app over every job (light: gradio is imported only to run it)."""

from __future__ import annotations

import argparse

from recon4d.commands import runner
from recon4d.options import add_options
from recon4d.options.app import AppOptions


def register(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the `app` sub-command."""
    p = subparsers.add_parser(
        "app",
        description="Serve the recon4d web app (Gradio, extra `app`): upload images or a video "
                    "or generate a synthetic example, choose a job (static or 4D "
                    "reconstruction, motion masks, matching, SLAM) and a model or the oracle, "
                    "follow its progress, view the scene, videos and metrics, and download the "
                    "output folder as a zip. Jobs queue with a concurrency limit, each in its own "
                    "folder under --runs-dir. Runs until Ctrl-C.")
    add_options(p, AppOptions)
    p.set_defaults(func=runner("app"))
    return p
