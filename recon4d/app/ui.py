"""The web app's page (Gradio): inputs, job choice and options on the left, the result on the
right; every action goes through `Workbench`, and a refusal is shown in the page."""

from __future__ import annotations

import html
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from recon4d.app.examples import example_frames
from recon4d.app.jobs import JOB_KINDS, ORACLE, JobSettings
from recon4d.app.results import ResultView
from recon4d.app.workbench import Workbench
from recon4d.errors import OptionError, Recon4dError
from recon4d.models.registry import OFFICIAL
from recon4d.options import DEVICES, SOLVERS

MODELS = [ORACLE, *(alias for entry in OFFICIAL for alias in entry.aliases[:1])]
MOTIONS = ("auto", "attention", "flow")
POLL_S = 0.25
TRACKER = gr.Progress()  # the default that makes Gradio pass a live progress bar
INTRO = """# recon4d
Upload images or a video (or generate a synthetic example), choose a job and a model, run it.
The **oracle** replaces the network by a synthetic example's ground truth (no weights needed)
and the result is scored against that truth. Jobs wait in a queue; each keeps its own folder
until you delete it."""


def _message(text: str) -> str:
    """A refusal or failure as the status line shows it."""
    return f"**Error:** {text}"


def _optional(label: str, elem_id: str) -> gr.Textbox:
    """A text field for an optional number (blank = the command's default)."""
    return gr.Textbox("", label=label, placeholder="default", elem_id=elem_id)


def _number(text: str, label: str, kind: Callable[[str], Any] = int) -> Any:
    """An optional number field's value: None when blank, OptionError when not a number."""
    if not (text or "").strip():
        return None
    try:
        return kind(text.strip())
    except ValueError as exc:
        raise OptionError(f"{label}: {text!r} is not a{'n integer' if kind is int else ' number'}"
                          ) from exc


def build_app(bench: Workbench) -> gr.Blocks:
    """The page over `bench`; the caller queues and launches it."""
    with gr.Blocks(title="recon4d") as app:
        gr.Markdown(INTRO)
        handlers = Handlers(bench)
        example = gr.State(None)  # the synthetic example's scene folder, as a string
        job_id = gr.State(None)  # the job shown on the right
        with gr.Row():
            with gr.Column(scale=2):
                files = gr.File(label="images or one video", file_count="multiple",
                                elem_id="upload")
                with gr.Accordion("or a synthetic example (recon4d synth)", open=True):
                    with gr.Row():
                        ex_frames = gr.Number(6, label="frames", precision=0, minimum=2,
                                              elem_id="example-count")
                        ex_movers = gr.Number(1, label="moving boxes", precision=0, minimum=0)
                        ex_seed = gr.Number(0, label="seed", precision=0)
                    make = gr.Button("generate example", elem_id="make-example")
                    preview = gr.Gallery(label="example frames", height=160, columns=6,
                                         elem_id="example-frames")
                kind = gr.Dropdown([(label, key) for key, label in JOB_KINDS.items()],
                                   value="4d", label="job", elem_id="job-kind")
                model = gr.Dropdown(MODELS, value=ORACLE, allow_custom_value=True,
                                    label="model: oracle, a registry name or a checkpoint path "
                                          "(SLAM: I2P,L2W)", elem_id="model")
                with gr.Row():
                    fps = _optional("fps (videos)", "fps")
                    num_frames = _optional("frames (the first N)", "num-frames")
                with gr.Accordion("options", open=False, elem_id="options"):
                    with gr.Row():
                        device = gr.Dropdown(["auto", *DEVICES], value="auto", label="device")
                        size = _optional("model input size", "size")
                    with gr.Row():
                        solver = gr.Dropdown(list(SOLVERS), value=SOLVERS[0],
                                             label="alignment solver")
                        niter = _optional("solver iterations", "niter")
                    with gr.Row():
                        motion = gr.Dropdown(list(MOTIONS), value="auto", label="motion masks")
                        n_viz = gr.Number(20, label="matches drawn", precision=0)
                    masks = gr.File(label="match: one mask per image (white = may match)",
                                    file_count="multiple")
                with gr.Row():
                    run = gr.Button("run", variant="primary", elem_id="run")
                    cancel = gr.Button("cancel", variant="stop", elem_id="cancel")
            with gr.Column(scale=3):
                status = gr.Markdown("", elem_id="status")
                scene = gr.Model3D(label="scene (GLB)", height=420, elem_id="scene")
                viewer = gr.Button("open in the 4D viewer", visible=False, elem_id="viewer")
                viewer_link = gr.HTML("", elem_id="viewer-link")
                media = gr.Gallery(label="videos and matches", columns=2, height=320,
                                   elem_id="media")
                summary = gr.Markdown("", elem_id="summary")
                download = gr.File(label="output folder (zip)", elem_id="download")
                with gr.Row():
                    kept = gr.Dropdown(bench.job_ids(), label="kept jobs", elem_id="kept",
                                       allow_custom_value=False)
                    show = gr.Button("show", elem_id="show")
                    delete = gr.Button("delete", elem_id="delete")

        shown = [status, scene, viewer, viewer_link, media, summary, download, job_id, kept]
        files.upload(lambda: None, outputs=example)
        make.click(handlers.make_example, [ex_frames, ex_movers, ex_seed],
                   [example, preview, status, files])
        settings = [kind, model, fps, num_frames, device, size, solver, niter, motion, n_viz]
        running = run.click(handlers.run, [files, example, masks, *settings],
                            shown, concurrency_limit=bench.options.concurrency,
                            concurrency_id="jobs")
        cancel.click(handlers.cancel, None, status, cancels=[running], queue=False)
        viewer.click(handlers.viewer, job_id, viewer_link)
        show.click(handlers.show, kept, shown)
        delete.click(handlers.delete, kept, shown)
        app.load(lambda: gr.update(choices=bench.job_ids()), None, kept)
    return app


class Handlers:
    """The page's event handlers over one Workbench (methods, so Gradio sees their types)."""

    def __init__(self, bench: Workbench) -> None:
        self.bench = bench

    def make_example(self, frames: float, movers: float, seed: float) -> tuple[Any, ...]:
        """Render (or reuse) the example; show its frames and clear the uploads."""
        try:
            folder = self.bench.example(int(frames), int(movers), int(seed))
        except Recon4dError as exc:
            return None, [], _message(str(exc)), gr.update()
        pictures = sorted(str(p) for p in example_frames(folder).iterdir())
        return (str(folder), pictures, f"example ready: `{folder.name}` ({len(pictures)} frames)",
                None)

    def run(self, files: list[str] | None, example: str | None, masks: list[str] | None,
            kind: str, model: str, fps: str, num_frames: str, device: str, size: str,
            solver: str, niter: str, motion: str, n_viz: float | None, request: gr.Request,
            progress: gr.Progress = TRACKER) -> tuple[Any, ...]:
        """Submit the job, follow its progress, then show its result (or why it stopped)."""
        try:
            settings = JobSettings(
                kind=kind, model=(model or "").strip(), fps=_number(fps, "fps", float),
                num_frames=_number(num_frames, "frames"),
                device=None if device == "auto" else device, size=_number(size, "size"),
                solver=solver if kind in ("static", "4d") else None,
                niter=_number(niter, "solver iterations"),
                motion=None if motion == "auto" else motion,
                n_viz=None if n_viz is None else int(n_viz))
            job = self.bench.submit(request.session_hash, settings, files,
                                    Path(example) if example else None, masks)
        except Recon4dError as exc:
            return self._cleared(_message(str(exc)))
        try:
            progress(0.0, desc="starting")
            while not job.wait(POLL_S):
                if job.progress is not None:
                    p = job.progress
                    progress(p.fraction, desc=f"{p.stage} {p.done}/{p.total}")
        finally:
            self.bench.finished(job)
        if job.state == "cancelled":
            return self._cleared("cancelled: the job was stopped and its folder removed")
        if job.state != "done":
            return self._cleared(_message(job.note))
        return self._shown(job.id, self.bench.result(job))

    def cancel(self, request: gr.Request) -> str:
        """Cancel this session's job (a queued one is dropped by Gradio)."""
        job = self.bench.cancel(request.session_hash)
        if job is None:
            return "cancelled (the job had not started)"
        return "cancelled: the job was stopped and its folder removed"

    def show(self, job_id: str | None) -> tuple[Any, ...]:
        """Show a kept job."""
        try:
            return self._shown(job_id or "", self.bench.show(job_id or ""))
        except Recon4dError as exc:
            return self._cleared(_message(str(exc)))

    def delete(self, job_id: str | None) -> tuple[Any, ...]:
        """Delete a kept job's folder."""
        try:
            self.bench.delete(job_id or "")
        except Recon4dError as exc:
            return self._cleared(_message(str(exc)))
        return self._cleared(f"deleted `{job_id}`")

    def viewer(self, job_id: str | None, request: gr.Request) -> str:
        """Start (or reuse) the 4D viewer of the shown job; a link on the host the browser uses."""
        try:
            port = self.bench.viewer_port(job_id or "")
        except Recon4dError as exc:
            return f"<p>Error: {html.escape(str(exc))}</p>"
        host = (request.headers.get("host") or "127.0.0.1").rsplit(":", 1)[0]
        url = f"http://{host}:{port}"
        return f'<a href="{url}" target="_blank" id="viewer-url">open the 4D viewer: {url}</a>'

    def _shown(self, job_id: str, view: ResultView) -> tuple[Any, ...]:
        """Every result component filled from `view`."""
        media = [(str(path), label) for path, label in view.videos]
        media += [(str(path), path.stem) for path in view.pictures]
        glb = None if view.glb is None else str(view.glb)
        return (f"done: `{job_id}`", glb, gr.update(visible=view.four_d), "", media, view.summary,
                str(self.bench.archive(job_id)), job_id,
                gr.update(choices=self.bench.job_ids(), value=job_id))

    def _cleared(self, status: str) -> tuple[Any, ...]:
        """Every result component emptied, with a status line."""
        return (status, None, gr.update(visible=False), "", [], "", None, None,
                gr.update(choices=self.bench.job_ids(), value=None))
