"""Launch the web app: check the extra, warn about public exposure, serve until interrupted."""

from __future__ import annotations

import importlib
import logging
import socket
import threading

from recon4d.app.workbench import Workbench
from recon4d.errors import Recon4dError
from recon4d.options.app import AppOptions

logger = logging.getLogger(__name__)
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def load_gradio() -> None:
    """Import gradio, or say how to install it (before anything else is set up)."""
    try:
        importlib.import_module("gradio")
    except ImportError as exc:
        raise Recon4dError("the web app needs gradio: pip install 'recon4d[app]'") from exc


def free_port(host: str) -> int:
    """A port free on `host` now (for --port 0)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


def exposure_warnings(options: AppOptions) -> list[str]:
    """What the user must know when the app can be reached by others."""
    warnings = []
    if options.share:
        warnings.append("--share publishes the app on a public link: anyone who has it can "
                        "upload files, run jobs on this machine and download every result")
    if options.host not in LOOPBACK:
        warnings.append(f"listening on {options.host}: every machine that reaches this address "
                        "can use the app")
    return warnings


def serve(options: AppOptions) -> None:
    """Serve the app until Ctrl-C or SIGTERM; running jobs are cancelled on the way out."""
    load_gradio()
    from recon4d.app.ui import build_app

    for warning in exposure_warnings(options):
        logger.warning(warning)
        print(f"recon4d app: warning: {warning}", flush=True)
    bench = Workbench(options)
    port = options.port or free_port(options.host)
    app = build_app(bench).queue(default_concurrency_limit=options.concurrency)
    try:
        _, url, share_url = app.launch(
            server_name=options.host, server_port=port, share=options.share,
            max_file_size=int(options.max_upload_mb * 1e6), allowed_paths=[str(bench.runs_dir)],
            prevent_thread_lock=True, quiet=True)
        print(f"recon4d app: open {url}{f' or {share_url}' if share_url else ''} (jobs in "
              f"{bench.runs_dir}; Ctrl-C to stop)", flush=True)
        threading.Event().wait()
    finally:
        bench.close()
        app.close()
