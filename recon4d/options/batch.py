"""Options of `recon4d batch` and of sharded `recon4d infer`: the Ray cluster, retries, workers.

Standard library only, like every options module (`recon4d batch --help` must not import Ray).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from recon4d.options.fields import option, require_at_least


@dataclass(frozen=True)
class RayOptions:
    """Ray: the cluster the tasks run on."""

    ray: str | None = option(None, "address of a running Ray cluster (`auto`, HOST:6379 or "
                             "ray://HOST:10001); default: a local Ray instance on this machine, "
                             "stopped at the end", metavar="ADDRESS")
    local_cpus: int | None = option(None, "CPUs of the local Ray instance (default: all of "
                                    "this machine's); ignored with --ray", type=int)

    def __post_init__(self) -> None:
        require_at_least(self, 1, "local_cpus")


@dataclass(frozen=True)
class BatchOptions:
    """Every option of `recon4d batch`."""

    retries: int = option(2, "runs of a failed task again (any error, or its worker died) "
                          "before it is reported as failed with its last error")
    ray: RayOptions = dataclasses.field(default_factory=RayOptions)

    def __post_init__(self) -> None:
        require_at_least(self, 0, "retries")


@dataclass(frozen=True)
class ShardOptions:
    """Sharding: the pair graph split across Ray actors."""

    workers: int | None = option(None, "split the pairs across this many Ray actors, each "
                                 "loading the network once (one GPU each with --device cuda); "
                                 "default: run in this process, without Ray", type=int)
    worker_cpus: int = option(1, "CPUs each actor reserves (also its torch threads)")
    ray: RayOptions = dataclasses.field(default_factory=RayOptions)

    def __post_init__(self) -> None:
        require_at_least(self, 1, "workers", "worker_cpus")
