"""`recon4d batch`: check the SPEC against the job's own parser, run the tasks, print the summary.

The job's command line entry is also what every Ray task runs (`run_job`), so a SPEC option
means exactly what the flag means on the command line.
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path
from typing import NoReturn

from recon4d.cluster.batch import run_batch, task_argv
from recon4d.cluster.spec import BatchSpec, load_spec
from recon4d.cluster.summary import SUMMARY_FILE, format_summary
from recon4d.errors import OptionError
from recon4d.eval.report import format_table
from recon4d.io.layout import METRICS_FILE
from recon4d.options import (
    InferOptions,
    MasksOptions,
    ReconstructOptions,
    SlamOptions,
    options_from_args,
)
from recon4d.options.batch import BatchOptions

JOB_OPTIONS = {"reconstruct": ReconstructOptions, "masks": MasksOptions, "slam": SlamOptions,
               "infer": InferOptions}
# flags a SPEC may not set: the batch gives them per input, or they would nest Ray runs
RESERVED = ("out", "oracle", "predictions", "help", "workers", "worker-cpus", "ray",
            "local-cpus")


class _RaisingParser(argparse.ArgumentParser):
    """A parser that raises OptionError instead of exiting, and takes no abbreviated flags."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **{**kwargs, "allow_abbrev": False})

    def error(self, message: str) -> NoReturn:
        raise OptionError(message)


def job_parser(job: str) -> argparse.ArgumentParser:
    """The parser of `recon4d <job>` (its `register`), raising OptionError on bad flags."""
    sub = _RaisingParser(prog="recon4d").add_subparsers(parser_class=_RaisingParser)
    return importlib.import_module(f"recon4d.commands.{job}").register(sub)


def run_job(job: str, argv: list[str]) -> None:
    """Run `recon4d <job> <argv...>` in this process (a batch task); errors propagate."""
    args = job_parser(job).parse_args(argv)
    status = args.func(args)
    if status:
        raise RuntimeError(f"recon4d {job} ended with exit status {status}")


def check_options(spec: BatchSpec) -> None:
    """Parse and validate the SPEC's options as the job would, before any task starts."""
    reserved = [key for key in RESERVED if key in spec.options]
    if reserved:
        raise OptionError(f"{spec.path}: options: {', '.join(reserved)} cannot be set in a batch "
                          "spec (the batch gives --out and the input to every task; see "
                          "`source` for --oracle/--predictions)")
    hint = (f"the options are `recon4d {spec.job}` long flags without the dashes, see "
            f"`recon4d {spec.job} --help`")
    try:
        args = job_parser(spec.job).parse_args(task_argv(spec, spec.inputs[0], Path("out")))
        options_from_args(JOB_OPTIONS[spec.job], args)
    except OptionError as exc:
        if spec.source != "input" and f"--{spec.source}" in str(exc):
            raise OptionError(f"{spec.path}: source {spec.source}: `recon4d {spec.job}` has no "
                              f"--{spec.source}") from exc
        raise OptionError(f"{spec.path}: options: {exc} ({hint})") from exc


def run(args: argparse.Namespace) -> int:
    """Run the batch; exit status 1 when some input failed (the summary names them)."""
    options = options_from_args(BatchOptions, args)
    spec = load_spec(args.spec)
    check_options(spec)
    report = run_batch(spec, args.out, run_job, options)
    print(format_summary(report.results))
    if report.metrics is not None:
        print(f"\n{format_table(report.metrics)}\n\nmetrics written to "
              f"{Path(args.out) / METRICS_FILE}")
    print(f"summary written to {Path(args.out) / SUMMARY_FILE}")
    return 1 if report.failed else 0
