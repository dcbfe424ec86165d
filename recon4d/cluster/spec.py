"""The SPEC file of `recon4d batch`: which job runs on which inputs, with which flags and resources.

A YAML mapping:

    job: reconstruct            # reconstruct, masks, slam or infer
    inputs: [videos/*.mp4, scenes/scene_0]   # paths or globs; every match is one input
    source: input               # how each input is passed: input (INPUT), oracle or predictions
    options: {weights: CKPT, motion: flow, num-frames: 60}   # the job's long flags, no dashes
    resources: {cpus: 1, gpus: 0, memory: 4GiB}              # per task

Relative paths are relative to the current folder, as on the command line. This module checks
the file's structure; the option names and values are checked against the job's own parser by
`recon4d.commands.batch_run` before any task starts.
"""

from __future__ import annotations

import glob
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recon4d.cluster.ray_runtime import INSTALL_HINT
from recon4d.errors import InputError, Recon4dError

JOBS = ("reconstruct", "masks", "slam", "infer")
SOURCES = ("input", "oracle", "predictions")  # INPUT, or the job's --oracle / --predictions
KEYS = ("job", "inputs", "source", "options", "resources")
_MEMORY = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?)\s*([KMGT]i?B?|B)?\s*", re.IGNORECASE)
_UNITS = {"": 1, "b": 1, "k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12,
          "ki": 2**10, "mi": 2**20, "gi": 2**30, "ti": 2**40}


@dataclass(frozen=True)
class Resources:
    """What one task asks Ray for: CPUs, GPUs (fractions allowed) and memory in bytes."""

    cpus: float = 1.0
    gpus: float = 0.0
    memory: int | None = None

    def ray_options(self) -> dict[str, Any]:
        """The keyword arguments of Ray's `.options(...)` for this request."""
        found: dict[str, Any] = {"num_cpus": self.cpus, "num_gpus": self.gpus}
        if self.memory is not None:
            found["memory"] = self.memory
        return found


@dataclass(frozen=True)
class BatchSpec:
    """A parsed SPEC file (see the module doc); `inputs` are the expanded matches in order."""

    path: Path
    job: str
    inputs: tuple[Path, ...]
    source: str = "input"
    options: dict[str, Any] = field(default_factory=dict)
    resources: Resources = field(default_factory=Resources)

    def output_name(self, item: Path) -> str:
        """The output folder name of an input: a file's stem (video.mp4 -> video), a folder's
        name."""
        return item.stem if item.is_file() else item.name


def load_spec(path: str | os.PathLike) -> BatchSpec:
    """Read and check a SPEC file; InputError naming the file and the problem."""
    try:
        import yaml
    except ImportError as exc:
        raise Recon4dError(f"reading a batch spec needs PyYAML: {INSTALL_HINT}") from exc

    path = Path(path)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(f"{path}: cannot read the batch spec ({exc.strerror or exc})") from exc
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not a YAML file ({exc})") from exc
    if not isinstance(doc, dict):
        raise InputError(f"{path}: the batch spec must be a YAML mapping with keys "
                         f"{', '.join(KEYS)}")
    unknown = sorted(set(map(str, doc)) - set(KEYS))
    if unknown:
        raise InputError(f"{path}: unknown key(s) {', '.join(unknown)}; a batch spec has "
                         f"{', '.join(KEYS)}")
    job = _choice(path, doc, "job", JOBS, None)
    source = _choice(path, doc, "source", SOURCES, "input")
    options = doc.get("options") or {}
    if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
        raise InputError(f"{path}: options must be a mapping of the job's long flags (without "
                         f"the dashes) to values, got {options!r}")
    spec = BatchSpec(path, job, expand_inputs(path, doc.get("inputs")), source, dict(options),
                     _resources(path, doc.get("resources") or {}))
    _check_unique_names(spec)
    return spec


def option_argv(options: dict[str, Any]) -> list[str]:
    """The flags of an options mapping: `--key=value`, `--key` for true, nothing for false or
    null; lists become comma-separated values."""
    argv = []
    for key, value in options.items():
        if value is True:
            argv.append(f"--{key}")
        elif value is not False and value is not None:
            text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
            argv.append(f"--{key}={text}")
    return argv


def expand_inputs(path: Path, patterns: Any) -> tuple[Path, ...]:
    """Every match of the `inputs` patterns, in order (sorted within a glob), without repeats."""
    if isinstance(patterns, str):
        patterns = [patterns]
    if not patterns or not isinstance(patterns, list) or not all(
            isinstance(p, str) for p in patterns):
        raise InputError(f"{path}: inputs must be a non-empty list of paths or globs, got "
                         f"{patterns!r}")
    found: dict[Path, None] = {}
    for pattern in patterns:
        matches = sorted(glob.glob(os.path.expanduser(pattern)))
        if not matches:
            raise InputError(f"{path}: input {pattern!r} matches no file or folder")
        found.update((Path(m), None) for m in matches)
    return tuple(found)


def parse_memory(text: Any) -> int:
    """Bytes of a memory request: a number of bytes or e.g. `4GiB`, `512MB`, `2G`."""
    if isinstance(text, (int, float)) and not isinstance(text, bool) and text > 0:
        return int(text)
    match = _MEMORY.fullmatch(str(text))
    if not match or float(match[1]) <= 0:
        raise ValueError(f"{text!r} is not a memory size such as 4GiB or 512MB")
    unit = (match[2] or "").lower().removesuffix("b")
    return int(float(match[1]) * _UNITS[unit])


def _choice(path: Path, doc: dict, key: str, choices: tuple[str, ...],
            default: str | None) -> str:
    """doc[key], one of `choices` (or `default` when absent and a default exists)."""
    value = doc.get(key, default)
    if value not in choices:
        raise InputError(f"{path}: {key} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _resources(path: Path, doc: Any) -> Resources:
    """The `resources` mapping: cpus, gpus (>= 0 numbers) and memory."""
    if not isinstance(doc, dict) or set(doc) - {"cpus", "gpus", "memory"}:
        raise InputError(f"{path}: resources must be a mapping with cpus, gpus and/or memory, "
                         f"got {doc!r}")
    counts = {}
    for key, default in (("cpus", 1.0), ("gpus", 0.0)):
        value = doc.get(key, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise InputError(f"{path}: resources: {key} must be a number >= 0, got {value!r}")
        counts[key] = float(value)
    memory = None
    if doc.get("memory") is not None:
        try:
            memory = parse_memory(doc["memory"])
        except ValueError as exc:
            raise InputError(f"{path}: resources: memory: {exc}") from exc
    return Resources(counts["cpus"], counts["gpus"], memory)


def _check_unique_names(spec: BatchSpec) -> None:
    """Two inputs may not share an output folder name."""
    seen: dict[str, Path] = {}
    for item in spec.inputs:
        name = spec.output_name(item)
        if name in seen:
            raise InputError(f"{spec.path}: inputs {seen[name]} and {item} would both write the "
                             f"output folder {name!r}; rename one or run them in two batches")
        seen[name] = item
