"""`recon4d batch`: one Ray task per input, each writing its own atomic output folder.

Every task runs the job in-process in a Ray worker (`run_job(job, argv)`, the job's command
line entry, supplied by `recon4d.commands.batch_run`), with `--out DIR/<input name>`. An output
folder holding a `scene.json` of the same job is complete (the jobs write their folders
atomically, so there are no half-written ones) and its input is skipped: a rerun resumes. A
task whose worker dies, or that raises an unexpected error, is run again up to `retries` times;
a Recon4dError (a corrupt video, a bad checkpoint) names a bad input, is deterministic and is
reported at once. The other tasks go on either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recon4d.cluster.batch_eval import evaluate_batch
from recon4d.cluster.ray_runtime import error_line, ray_session, require_resources
from recon4d.cluster.spec import BatchSpec, option_argv
from recon4d.cluster.summary import SUMMARY_FILE, TaskResult, write_summary_csv
from recon4d.errors import Recon4dError
from recon4d.eval.report import write_report_json
from recon4d.io.atomic import check_output_file
from recon4d.io.layout import METRICS_FILE
from recon4d.io.scene_json import read_scene_json
from recon4d.options.batch import BatchOptions

# run_job(job, argv): run `recon4d <job> <argv...>` in this process; raises on failure
JobRunner = Callable[[str, list[str]], object]


@dataclass
class BatchReport:
    """A finished batch: one result per input (spec order), the eval report if any."""

    results: list[TaskResult]
    metrics: dict | None

    @property
    def failed(self) -> int:
        return sum(r.status == "failed" for r in self.results)


def is_complete(folder: Path, job: str) -> bool:
    """Whether `folder` holds a finished output of `job` (its scene.json names the job)."""
    try:
        return read_scene_json(folder).get("command") == job
    except (OSError, ValueError, AttributeError):
        return False


def task_argv(spec: BatchSpec, item: Path, out: Path) -> list[str]:
    """The job's command line for one input (absolute paths, so any worker can run it)."""
    source = [] if spec.source == "input" else [f"--{spec.source}"]
    return [*source, str(item.absolute()), "--out", str(out.absolute()),
            *option_argv(spec.options)]


def run_input(run_job: JobRunner, job: str, argv: list[str]) -> tuple[str, float, str]:
    """The Ray task: (status, seconds, error) of one run of the job; a Recon4dError is a
    result (not retried), anything else propagates (Ray retries it)."""
    start = time.perf_counter()
    try:
        run_job(job, argv)
    except Recon4dError as exc:
        return "failed", time.perf_counter() - start, error_line(exc)
    return "done", time.perf_counter() - start, ""


def run_batch(spec: BatchSpec, out_dir: str | Path, run_job: JobRunner,
              options: BatchOptions | None = None) -> BatchReport:
    """Run `spec` into `out_dir` (see the module doc); writes `out_dir/batch_summary.csv` and,
    for benchmark inputs, `out_dir/metrics.json`. Prints a line per finished task."""
    opts = options or BatchOptions()
    out_dir = Path(out_dir)
    check_output_file(out_dir / SUMMARY_FILE)
    results: dict[int, TaskResult] = {}
    todo = []
    for k, item in enumerate(spec.inputs):
        if is_complete(out_dir / spec.output_name(item), spec.job):
            results[k] = TaskResult(str(item), "skipped")
        else:
            todo.append(k)
    print(f"recon4d batch: {len(spec.inputs)} inputs, {len(results)} already done, "
          f"{len(todo)} to run")
    if todo:
        with ray_session(opts.ray) as ray:
            resources = spec.resources
            require_resources(ray, {"CPU": resources.cpus, "GPU": resources.gpus,
                                    "memory": resources.memory or 0},
                              f"{spec.path}: each task")
            task = ray.remote(run_input).options(max_retries=opts.retries,
                                                 retry_exceptions=True,
                                                 **resources.ray_options())
            pending = {task.remote(run_job, spec.job,
                                   task_argv(spec, spec.inputs[k],
                                             out_dir / spec.output_name(spec.inputs[k]))): k
                       for k in todo}
            results.update(_collect(ray, pending, spec))
    ordered = [results[k] for k in range(len(spec.inputs))]
    write_summary_csv(out_dir / SUMMARY_FILE, ordered)
    metrics = evaluate_batch(spec, out_dir, ordered)
    if metrics is not None:
        write_report_json(out_dir / METRICS_FILE, metrics)
    return BatchReport(ordered, metrics)


def _collect(ray, pending: dict, spec: BatchSpec) -> dict[int, TaskResult]:
    """Results of the submitted tasks as they finish; on an interruption the rest are cancelled."""
    found: dict[int, TaskResult] = {}
    try:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ref)
            item = str(spec.inputs[k])
            try:
                status, seconds, error = ray.get(ref)
                found[k] = TaskResult(item, status, seconds, error)
            except Exception as exc:  # the worker died or the task raised, retries spent
                found[k] = TaskResult(item, "failed", None, error_line(exc))
            result = found[k]
            print(f"[{len(found)}/{len(found) + len(pending)}] {item}: {result.status}"
                  + (f" ({result.error})" if result.error else ""))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return found
