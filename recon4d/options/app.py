"""Options of `recon4d app`: where the web app listens, how many jobs run at once, where their
folders go, and the limits on what users may upload."""

from __future__ import annotations

from dataclasses import dataclass

from recon4d.options.fields import option, require, require_at_least, require_port


@dataclass(frozen=True)
class AppOptions:
    """Web app: address, job queue, output folders and upload limits."""

    host: str = option("127.0.0.1", "address to listen on (0.0.0.0 = every network interface; "
                       "anyone who reaches it can run jobs)")
    port: int = option(7860, "port to listen on (0 = any free port)")
    share: bool = option(False, "also publish the app through a public Gradio share link "
                         "(anyone with the link can run jobs and read results)")
    runs_dir: str = option("runs/app", "folder holding one output folder per job (kept until "
                           "deleted in the page)", metavar="DIR")
    concurrency: int = option(1, "jobs running at once; later ones wait in the queue, shown "
                              "with their position", metavar="N")
    max_upload_mb: float = option(500.0, "largest upload, in megabytes (all files of one job)",
                                  metavar="MB")
    max_frames: int = option(200, "most frames a job may use (images uploaded, or frames "
                             "sampled from a video)", metavar="N")
    max_image_side: int = option(8192, "longest image side accepted, in pixels",
                                 metavar="PIXELS")

    def __post_init__(self) -> None:
        require_port(self)
        require_at_least(self, 1, "concurrency", "max_image_side")
        require_at_least(self, 2, "max_frames")
        require(self.max_upload_mb > 0, AppOptions, "max_upload_mb", "must be positive",
                self.max_upload_mb)
        require(bool(self.runs_dir), AppOptions, "runs_dir", "must name a folder", self.runs_dir)
