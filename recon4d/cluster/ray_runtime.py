"""Ray for the batch and sharded runs: import it with an install hint, connect or start, unwrap
task errors into the user's error."""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from types import ModuleType

from recon4d.errors import OptionError, Recon4dError
from recon4d.options.batch import RayOptions

INSTALL_HINT = "pip install 'recon4d[cluster]'"
LOCAL_OBJECT_STORE_BYTES = 256 << 20  # the pair batches streamed back are small
CONNECT_SECONDS = 5.0  # how long --ray's address may take to accept a connection


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
        _connect(ray, options.ray)
    else:
        # "local": a new instance even where `ray start` left a cluster running on this machine
        # (plain ray.init() would join that one)
        ray.init(address="local", num_cpus=options.local_cpus, include_dashboard=False,
                 log_to_driver=False, object_store_memory=LOCAL_OBJECT_STORE_BYTES)
    try:
        yield ray
    finally:
        ray.shutdown()


def _connect(ray: ModuleType, address: str) -> None:
    """Join the cluster at `address`, or an OptionError saying what to check (at once when
    nothing listens at a HOST:PORT address: Ray itself would retry for minutes)."""
    _check_listening(address)
    try:
        ray.init(address=address, log_to_driver=False)
    except (ConnectionError, ray.exceptions.RayError) as exc:
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise OptionError(f"--ray {address}: no Ray cluster could be joined there ({reason}). "
                          "Check that it runs (`ray status` on its head node); a cluster with "
                          "token authentication also needs RAY_AUTH_MODE=token and its token "
                          "(~/.ray/auth_token or RAY_AUTH_TOKEN) on this machine") from exc


def _check_listening(address: str) -> None:
    """OptionError when `address` (HOST:PORT or ray://HOST:PORT; `auto` is not checked) names a
    port nobody answers on within CONNECT_SECONDS."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_SECONDS).close()
    except OSError as exc:
        raise OptionError(f"--ray {address}: nothing answers there ({exc}); start the cluster "
                          "first (`ray start --head` on its head node)") from exc


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
    """One line for the summary, never empty: the first line of a Recon4dError's message, else
    the exception's type and first line (Ray's own errors included)."""
    error = user_error(exc)
    lines = str(error).strip().splitlines()
    text = lines[0] if lines else ""
    if isinstance(error, Recon4dError) and text:
        return text
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
