"""Ray for the batch and sharded runs: import it with an install hint, connect or start, unwrap
task errors into the user's error."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from types import ModuleType

from recon4d.errors import OptionError, Recon4dError
from recon4d.options.batch import RayOptions

INSTALL_HINT = "pip install 'recon4d[cluster]'"
LOCAL_OBJECT_STORE_BYTES = 256 << 20  # the pair batches streamed back are small


def require_ray() -> ModuleType:
    """The `ray` module, or a Recon4dError saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise Recon4dError(f"batch and sharded runs need Ray, which is not installed: "
                           f"{INSTALL_HINT}") from exc
    return ray


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[ModuleType]:
    """Ray connected to `options.ray`, or a local instance (of `options.local_cpus` CPUs) that is
    stopped on leaving; a Ray already initialised by the caller is used as it is and left
    running. Worker output is not forwarded: the summary reports each task's error."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if options.ray is not None:
        ray.init(address=options.ray, log_to_driver=False)
    else:
        ray.init(num_cpus=options.local_cpus, include_dashboard=False, log_to_driver=False,
                 object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    try:
        yield ray
    finally:
        ray.shutdown()


def require_resources(ray: ModuleType, need: dict[str, float], what: str) -> None:
    """OptionError unless the cluster has at least `need` (Ray resource name -> amount, e.g.
    CPU, GPU, memory): Ray would otherwise wait forever for what can never be scheduled."""
    have = ray.cluster_resources()
    short = [_amount(name, amount) for name, amount in need.items()
             if amount > 0 and have.get(name, 0) < amount]
    if short:
        offered = ", ".join(_amount(name, have.get(name, 0)) for name in need)
        raise OptionError(f"{what} needs {', '.join(short)} but the Ray cluster has {offered}")


def _amount(name: str, amount: float) -> str:
    """`2 CPU`, `0.5 GPU`, `16.0 GiB memory`."""
    return f"{amount / 2**30:.1f} GiB {name}" if name == "memory" else f"{amount:g} {name}"


def user_error(exc: BaseException) -> BaseException:
    """The exception a task raised (a Recon4dError stays one), not Ray's wrapper around it."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, BaseException) else exc


def error_line(exc: BaseException) -> str:
    """One line for the summary: the task's own message, or the first line of Ray's."""
    error = user_error(exc)
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    return text if isinstance(error, Recon4dError) else f"{type(error).__name__}: {text}"
