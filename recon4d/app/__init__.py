"""recon4d.app: the web app (`recon4d app`, Gradio) over the jobs of the command line.

Each job runs as a `recon4d` sub-process in its own folder under the runs folder, so a job that
fails or is cancelled never disturbs the server or another job: `uploads` checks and stages what
users send, `jobs` builds and runs the command lines (progress read from their bars), `results`
gathers what a finished folder shows and zips it, `examples` renders synthetic scenes, `viewers`
serves 4D folders in the viser viewer, `workbench` does what the page's buttons do, `ui` lays
out the page and `server` launches it. Only `ui` imports gradio (`server` when it serves).
"""
