"""`recon4d view`: read the folder, serve the viewer until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import threading

from recon4d.io.output_folder import read_output_folder
from recon4d.options import ViewOptions, options_from_args
from recon4d.viz.viewer import Viewer, load_viser


def run(args: argparse.Namespace) -> int:
    """Serve the folder; returns only through an interruption (the CLI gives its exit status),
    after shutting the server down."""
    options = options_from_args(ViewOptions, args)
    load_viser()  # a missing extra is reported before the folder is read
    folder = read_output_folder(args.folder, options.max_points)
    viewer = Viewer(folder.static, folder.moving, folder.poses_c2w, folder.intrinsics,
                    folder.image_size, host=options.host, port=options.port)
    try:
        kind = "4D" if folder.moving else "static"
        print(f"recon4d view: {kind} scene, {len(folder)} frames, {len(folder.static)} static "
              f"points; open {viewer.url} (Ctrl-C to stop)", flush=True)
        threading.Event().wait()
    finally:
        viewer.stop()
    return 0
