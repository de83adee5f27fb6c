"""A workaround for an intermittent deadlock of XLA's CPU runtime (jax / jaxlib 0.10.2, the newest release here):
long vmapped on-policy programs (8-seed PPO runs, our PPO and the PureJaxRL design alike) sometimes never finish.
Every XLA worker thread then waits for work in Eigen's pool (`EventCount::CommitWait`), the main thread waits in
`block_until_ready`, and the machine is idle: a completion that was never signalled.

Measured on the 2-core dev machine with 8-seed CartPole PPO programs (about 14 s each): with two cores, 7 of 7
runs of a 12-execution script hung, within 1 to 11 executions, also with `--xla_cpu_multi_thread_eigen=false`,
`--xla_cpu_use_xnnpack=false`, `--xla_cpu_use_thunk_runtime=false` or `jax_cpu_enable_async_dispatch=False`; with the
process restricted to one core (`taskset -c 0`), 18 of 18 executions finished, and no slower: these programs are
latency-bound, one core is all they use. `pin_to_one_core` is the in-process equivalent of `taskset`; the long
on-policy scripts (experiments/on_policy/, benchmarks/on_policy_speed.py's vmapped rows) call it first."""

from __future__ import annotations

import os
import sys


def backends_initialised() -> bool:
    if "jax" not in sys.modules:
        return False
    from jax._src import xla_bridge

    return bool(getattr(xla_bridge, "_backends", None))


def pin_to_one_core() -> bool:
    """Restrict this process to one of its CPUs, so XLA's CPU client sizes its thread pools to one. Must run before
    JAX initialises its backends (before the first computation): returns False, changing nothing, when that has
    happened already or where the OS has no CPU affinity (macOS); True when pinned."""
    if backends_initialised() or not hasattr(os, "sched_setaffinity"):
        return False
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0]})
    return True
