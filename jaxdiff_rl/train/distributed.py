"""Multi-process runs on JAX's own multi-controller runtime: one process per host (or per core / GPU), one global
device mesh, the sweep axis sharded across it.

    from jaxdiff_rl.train import distributed
    distributed.initialize(num_processes=2, process_id=int(sys.argv[1]), coordinator="10.0.0.1:7777")
    mesh = distributed.sweep_mesh()                # every process's devices, axis "sweep"
    state, metrics = run_sweep(train, keys, hp)    # each process computes its slice of the runs
    # or `runner.run(...)`: metrics gathered to every process, files written by process 0, orbax checkpoints of
    # the sharded state written by all processes and restorable on another process count

`initialize()` with no arguments lets `jax.distributed.initialize` detect the cluster (SLURM, Open MPI, Cloud TPU,
...). Every process must build the same program from the same inputs: keys and hparams are host values computed
identically everywhere, and `to_global` keeps each process's own rows of them.

Why a pre-flight check of the coordinator: XLA's coordination client does not raise when it cannot register with
the coordinator, it aborts the process (a C++ CHECK failure after `initialization_timeout`). A TCP probe with the
same deadline turns that into a `TimeoutError` naming the address.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

__all__ = ["initialize", "check_process_args", "is_multiprocess", "is_primary", "sweep_mesh", "run_sharding",
           "to_global", "to_host", "pad_runs", "CLUSTER_ENV_VARS"]

#: environment variables by which `jax.distributed.initialize()` detects a cluster on its own
CLUSTER_ENV_VARS = ("SLURM_JOB_ID", "OMPI_COMM_WORLD_SIZE", "TPU_WORKER_HOSTNAMES", "JAX_COORDINATOR_ADDRESS")


def check_process_args(num_processes: Any, process_id: Any, coordinator: Any, timeout_s: Any = 60.0) -> None:
    """Validate the arguments of `initialize` (ValueError / TypeError naming the field)."""
    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"distributed: {name} must be an integer, got {value!r}")
    if num_processes < 1:
        raise ValueError(f"distributed: num_processes must be >= 1, got {num_processes}")
    if not 0 <= process_id < num_processes:
        raise ValueError(f"distributed: process_id must be in [0, num_processes - 1] = [0, {num_processes - 1}], "
                         f"got {process_id}")
    if num_processes > 1:
        if not isinstance(coordinator, str):
            raise TypeError(f"distributed: coordinator must be 'host:port' for num_processes > 1, got {coordinator!r}")
        _split_address(coordinator)
    if isinstance(timeout_s, bool) or not isinstance(timeout_s, (int, float)) or not timeout_s > 0:
        raise ValueError(f"distributed: timeout_s must be a number of seconds > 0, got {timeout_s!r}")


def _split_address(coordinator: str) -> tuple[str, int]:
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"distributed: coordinator must be 'host:port' with a port in [1, 65535], got {coordinator!r}")
    return host, int(port)


def _wait_for_coordinator(coordinator: str, timeout_s: float) -> None:
    host, port = _split_address(coordinator)
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=min(1.0, timeout_s)):
                return
        except OSError as exc:
            last = exc
            time.sleep(0.1)
    raise TimeoutError(f"distributed: the coordinator {coordinator} could not be reached within {timeout_s:g} s "
                       f"({last}); start process 0 first, or check the address and the firewall")


def _check_port_free(coordinator: str) -> None:
    _, port = _split_address(coordinator)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("", port))
        except OSError as exc:
            raise ValueError(f"distributed: process 0 hosts the coordinator but port {port} of {coordinator} is "
                             f"in use ({exc}); pick another --coordinator port") from exc


def initialize(num_processes: int | None = None, process_id: int | None = None, coordinator: str | None = None,
               timeout_s: float = 60.0, cpu_collectives: str = "gloo") -> bool:
    """Join (or, as process 0, host) a multi-process JAX job. Call it first, before any JAX computation.

    Args:
        num_processes / process_id / coordinator ("host:port" of process 0): all three, or all None to let
            `jax.distributed.initialize()` detect a cluster from `CLUSTER_ENV_VARS` (no cluster: single process).
            num_processes = 1 is a no-op.
        timeout_s: how long to wait for the coordinator and the other processes (s).
        cpu_collectives: the CPU cross-process collectives ("gloo"; "mpi" needs an MPI build).
    Returns: True when this process is now part of a multi-process job.
    Raises: ValueError / TypeError for bad arguments, TimeoutError when the coordinator is unreachable,
        RuntimeError when JAX's backends are already initialised (too late to join).
    """
    from jaxdiff_rl.app.xla_cpu import backends_initialised

    explicit = (num_processes, process_id, coordinator)
    if all(v is None for v in explicit):
        if not any(v in os.environ for v in CLUSTER_ENV_VARS):
            return False
        _set_cpu_collectives(cpu_collectives)
        jax.distributed.initialize(initialization_timeout=int(np.ceil(timeout_s)))
        return jax.process_count() > 1
    if any(v is None for v in explicit[:2]):
        raise ValueError("distributed: give num_processes and process_id (and coordinator) together, or none of them")
    check_process_args(num_processes, process_id, coordinator, timeout_s)
    if num_processes == 1:
        return False
    if backends_initialised():
        raise RuntimeError("distributed: initialize() must run before the first JAX computation (the backends are "
                           "already initialised in this process)")
    if process_id == 0:
        _check_port_free(coordinator)
    else:
        _wait_for_coordinator(coordinator, timeout_s)
    _set_cpu_collectives(cpu_collectives)
    jax.distributed.initialize(coordinator, num_processes=num_processes, process_id=process_id,
                               initialization_timeout=int(np.ceil(timeout_s)))
    return True


def _set_cpu_collectives(kind: str) -> None:
    if kind not in ("gloo", "mpi"):
        raise ValueError(f"distributed: cpu_collectives must be 'gloo' or 'mpi', got {kind!r}")
    jax.config.update("jax_cpu_collectives_implementation", kind)


def is_multiprocess() -> bool:
    return jax.process_count() > 1


def is_primary() -> bool:
    """Process 0: the one that writes metrics, run.json and plots and shows progress."""
    return jax.process_index() == 0


def sweep_mesh(devices: Sequence[Any] | None = None) -> Mesh:
    """A 1-D mesh ("sweep") over `devices` (default: every process's devices, in `jax.devices()` order)."""
    return Mesh(np.asarray(list(jax.devices() if devices is None else devices)), ("sweep",))


def run_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (run) axis split over the mesh's "sweep" axis, the rest replicated."""
    return NamedSharding(mesh, PartitionSpec("sweep"))


def pad_runs(tree: Any, multiple: int) -> tuple[Any, int]:
    """Pad the leading run axis up to a multiple of `multiple` by repeating the last run. Returns (tree, pad)."""
    runs = int(jax.tree_util.tree_leaves(tree)[0].shape[0])
    pad = (-runs) % multiple
    if not pad:
        return tree, 0
    return jax.tree_util.tree_map(lambda x: jnp.concatenate([x, jnp.repeat(x[-1:], pad, axis=0)]), tree), pad


def _global_leaf(x: Any, sharding: NamedSharding) -> jax.Array:
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        impl = jax.random.key_impl(x)
        data = _global_leaf(jax.random.key_data(x), sharding)
        return jax.jit(lambda d: jax.random.wrap_key_data(d, impl=impl), out_shardings=sharding)(data)
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return x  # already global
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def to_global(tree: Any, sharding: NamedSharding) -> Any:
    """Host-identical arrays (every process holds the same full values) -> global arrays split by `sharding`;
    each process keeps only its own rows on its own devices. Typed PRNG keys stay typed."""
    return jax.tree_util.tree_map(lambda x: _global_leaf(x, sharding), tree)


def to_host(tree: Any) -> Any:
    """Global (possibly not fully addressable) arrays -> full NumPy arrays on every process (an all-gather across
    processes when needed). Typed PRNG keys come back as their raw uint32 key data."""
    from jax.experimental import multihost_utils

    def leaf(x: Any) -> np.ndarray:
        if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        if isinstance(x, jax.Array) and not x.is_fully_addressable:
            return np.asarray(multihost_utils.process_allgather(x, tiled=True))
        return np.asarray(x)

    return jax.tree_util.tree_map(leaf, tree)
