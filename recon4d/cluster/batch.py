"""`recon4d batch`: one Ray task per input, each writing its own atomic output folder.

Every task runs the job in-process in a Ray worker (`run_job(job, argv)`, the job's command
line entry, supplied by `recon4d.commands.batch_run`), with `--out DIR/<input name>`. An output
folder holding a `scene.json` of the same job is complete (the jobs write their folders
atomically, so there are no half-written ones) and its input is skipped: a rerun resumes. A
failed task (an error, or a worker that died) is submitted again by the driver, up to `retries`
more times, then reported with its last error and its number of attempts; the other tasks go
on either way. The driver counts the attempts (Ray's own retries are off), so the summary says
exactly how often each input ran.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from recon4d.cluster.batch_eval import Benchmark, evaluate_batch, find_benchmark
from recon4d.cluster.ray_runtime import error_line, ray_session, require_resources
from recon4d.cluster.spec import BatchSpec, option_argv
from recon4d.cluster.summary import SUMMARY_FILE, TaskResult, write_summary_csv
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


def task_argv(spec: BatchSpec, item: Path, out: Path,
              bench: Benchmark | None = None) -> list[str]:
    """The job's command line for one input (absolute paths, so any worker can run it); an
    input that is the benchmark sequence `bench` (`find_benchmark(item)`) passes its frames
    folder as INPUT."""
    if spec.source == "input":
        source = [str((bench.frames if bench else item).absolute())]
    else:
        source = [f"--{spec.source}", str(item.absolute())]
    return [*source, "--out", str(out.absolute()), *option_argv(spec.options)]


def run_input(run_job: JobRunner, job: str, argv: list[str]) -> tuple[float, str | None]:
    """The Ray task: (seconds, error) of one run of the job, error None on success and otherwise
    the line the summary shows. A worker that dies raises on the driver instead."""
    start = time.perf_counter()
    try:
        run_job(job, argv)
    except Exception as exc:  # any failure is a result: the driver decides on a retry
        return time.perf_counter() - start, error_line(exc)
    return time.perf_counter() - start, None


def run_batch(spec: BatchSpec, out_dir: str | Path, run_job: JobRunner,
              options: BatchOptions | None = None) -> BatchReport:
    """Run `spec` into `out_dir` (see the module doc); writes `out_dir/batch_summary.csv` and,
    for benchmark inputs, `out_dir/metrics.json`. Prints a line per finished task."""
    opts = options or BatchOptions()
    out_dir = Path(out_dir)
    check_output_file(out_dir / SUMMARY_FILE)
    # every input checked before any task starts (InputError for a folder of sequences)
    benches = [find_benchmark(item) for item in spec.inputs]
    argvs = [task_argv(spec, item, out_dir / spec.output_name(item), bench)
             for item, bench in zip(spec.inputs, benches, strict=True)]
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
            task = ray.remote(run_input).options(max_retries=0, retry_exceptions=False,
                                                 **resources.ray_options())
            results.update(_collect(ray, lambda k: task.remote(run_job, spec.job, argvs[k]),
                                    todo, spec, opts.retries))
    ordered = [results[k] for k in range(len(spec.inputs))]
    write_summary_csv(out_dir / SUMMARY_FILE, ordered)
    metrics = evaluate_batch(spec, out_dir, ordered, benches)
    if metrics is not None:
        write_report_json(out_dir / METRICS_FILE, metrics)
    return BatchReport(ordered, metrics)


def _collect(ray, submit: Callable[[int], object], todo: list[int], spec: BatchSpec,
             retries: int) -> dict[int, TaskResult]:
    """Run the inputs `todo` (indices into spec.inputs) as tasks of `submit`, each failed one
    again up to `retries` times; their results as they finish. On an interruption the running
    tasks are cancelled."""
    pending = {submit(k): k for k in todo}
    attempts = dict.fromkeys(todo, 1)
    found: dict[int, TaskResult] = {}
    try:
        while pending:
            [ref], _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ref)
            item = str(spec.inputs[k])
            try:
                seconds, error = ray.get(ref)
            except Exception as exc:  # the worker died (killed, out of memory) or Ray failed
                seconds, error = None, error_line(exc)
            if error is not None and attempts[k] <= retries:
                print(f"{item}: attempt {attempts[k]} failed ({error}); running it again")
                attempts[k] += 1
                pending[submit(k)] = k
                continue
            found[k] = TaskResult(item, "done" if error is None else "failed", attempts[k],
                                  seconds, error or "")
            print(f"[{len(found)}/{len(todo)}] {item}: {found[k].status}"
                  + ("" if error is None else f" ({error}; attempts: {attempts[k]})"))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    return found
