"""Batched problem generators with exact optima: the (instance x, optimal solution y*, optimal objective) datasets
the generative optimizer trains on (DiffSG: 30k CO, 10k MSR-3, 10k MSR-80, 10k NU), produced in one jitted,
vmapped pass and stored as .npz.

Every problem environment provides `sample_instance(key, params)`, `solve(state, params) -> (y*, value)`,
`problem_vector(state, params) -> x` and `objective(state, y, params)`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import envs

__all__ = [
    "DATASET_PROBLEMS", "generate_dataset", "save_dataset", "load_dataset", "SENSE", "objective_fn", "repair_fn",
    "exceed_ratio",
]

DATASET_PROBLEMS = ("co", "msr-3", "msr-80", "nu")
SENSE = {"co": "min", "msr-3": "max", "msr-80": "max", "nu": "max"}  # objective direction


# instances per vectorised solver batch: NU's grid search touches 160k points per instance, so small batches
# keep it in cache (16: ~430 instances/s vs ~150 at 256 on the 2-core dev machine)
DEFAULT_BATCH = {"co": 1024, "msr-3": 1024, "msr-80": 1024, "nu": 16}


def generate_dataset(
    key: jax.Array, problem: str, n: int, batch_size: int | None = None, **param_overrides: Any
) -> dict[str, np.ndarray]:
    """Draw `n` instances of `problem` and solve each exactly.

    Args:
        key: PRNG key. problem: one of DATASET_PROBLEMS. n: number of instances (>= 1).
        batch_size: instances solved per vectorised batch (default: `DEFAULT_BATCH[problem]`).
        param_overrides: `EnvParams` overrides, as for `envs.make`.
    Returns:
        {"x": [n, dx] instances, "y": [n, dy] optimal solutions, "value": [n] optimal objective} (NumPy arrays).
    """
    if problem not in DATASET_PROBLEMS:
        raise ValueError(f"unknown problem {problem!r}; valid: {DATASET_PROBLEMS}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be an integer >= 1, got {n!r}")
    batch_size = DEFAULT_BATCH[problem] if batch_size is None else batch_size
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    env, params = envs.make(problem, **param_overrides)
    x, y, value = _solve_batch(env, params, key, int(n), int(min(batch_size, n)))
    return {"x": np.asarray(x), "y": np.asarray(y), "value": np.asarray(value)}


@partial(jax.jit, static_argnames=("env", "n", "batch_size"))
def _solve_batch(env, params, key, n, batch_size):
    states = jax.vmap(lambda k: env.sample_instance(k, params))(jax.random.split(key, n))
    x = jax.vmap(lambda s: env.problem_vector(s, params))(states)
    y, value = jax.lax.map(lambda s: env.solve(s, params), states, batch_size=batch_size)
    return x, y, value


def save_dataset(path: str | Path, data: dict[str, np.ndarray], problem: str) -> Path:
    """Write a dataset (and its problem name) to `path` (.npz)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, problem=np.asarray(problem), **data)
    return path if path.suffix == ".npz" else path.with_suffix(path.suffix + ".npz")


def load_dataset(path: str | Path) -> tuple[str, dict[str, np.ndarray]]:
    """Read a dataset written by `save_dataset`: (problem name, {"x", "y", "value"})."""
    with np.load(path) as f:
        missing = {"problem", "x", "y", "value"} - set(f.files)
        if missing:
            raise ValueError(f"{path}: not a jaxdiff-rl dataset, missing arrays {sorted(missing)}")
        return str(f["problem"]), {k: f[k] for k in ("x", "y", "value")}


# --- objectives and feasibility repair as functions of (x, y): what a generative optimizer needs ---------------------
def objective_fn(problem: str, **param_overrides: Any):
    """f(x [dx], y [dy]) -> objective for a dataset's problem vector x (vmappable; see SENSE for its direction)."""
    env, params = envs.make(problem, **param_overrides)
    if problem.startswith("msr"):
        from envs.msr import sum_rate

        return lambda x, y: sum_rate(y, x[:-1])  # x = [g / n, P]: the gains are noise-normalised
    if problem == "co":
        from envs.offloading import co_cost

        n = params.num_terminals
        return lambda x, y: co_cost(x.reshape(n, 3), y[:n], y[n:])
    if problem == "nu":
        from envs.noma_uav import nu_sum_rate

        k = params.num_terminals
        return lambda x, y: nu_sum_rate(y[:2], y[2:], x.reshape(k, 2), params)
    raise ValueError(f"unknown problem {problem!r}; valid: {DATASET_PROBLEMS}")


def repair_fn(problem: str, **param_overrides: Any):
    """Map any y [dy] to a feasible solution for x (vmappable), the way the environments map actions:
    MSR: p = P |y| / sum |y|; CO: d = y_d > 0.5, shares max(|f|, 0.02) renormalised over offloaded terminals;
    NU: position clipped to the area, powers |p| renormalised to P and ordered weakest-gets-most."""
    env, params = envs.make(problem, **param_overrides)
    if problem.startswith("msr"):
        from envs.msr import action_to_power

        return lambda x, y: action_to_power(y, x[-1])
    if problem == "co":
        n = params.num_terminals

        def repair(x, y):
            # shares below the reference's 0.02 grid step are raised to it, so no offloaded task gets no CPU
            shares = jnp.maximum(jnp.abs(y[n:]), 0.02)
            return jnp.concatenate(env.action_to_decision(jnp.concatenate([y[:n] - 0.5, shares]), params))

        return repair
    if problem == "nu":
        from envs.noma_uav import NUState

        k = params.num_terminals

        def repair(x, y):
            state = NUState(positions=x.reshape(k, 2), time=jnp.int32(0))
            action = jnp.concatenate([2.0 * y[:2] / params.side - 1.0, y[2:]])
            uav, powers = env.action_to_decision(action, state, params)
            return jnp.concatenate([uav, powers])

        return repair
    raise ValueError(f"unknown problem {problem!r}; valid: {DATASET_PROBLEMS}")


def exceed_ratio(problem: str, values: jax.Array, optimal: jax.Array) -> jax.Array:
    """f(x, y) / f(x, y*) (DiffSG's metric): <= 1 for maximisation, >= 1 for minimisation when feasible."""
    del problem
    return values / optimal
