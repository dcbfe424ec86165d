"""`recon4d app`: build the web app from the options and serve it until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse

from recon4d.app.server import serve
from recon4d.options import options_from_args
from recon4d.options.app import AppOptions


def run(args: argparse.Namespace) -> int:
    """Serve the app; returns when the server stops."""
    serve(options_from_args(AppOptions, args))
    return 0
