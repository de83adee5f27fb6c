"""Sweeps: seeds x a grid (or a random sample) of hyperparameters and environment parameters, run as one
vmapped, jitted call of `train`, with the sweep axis sharded over `jax.devices()`.

    hp = grid(agents.default_hparams("d2sac"), lr_actor=[1e-4, 3e-4], gamma=[0.9, 0.95])   # 4 settings
    keys, hp = with_seeds(hp, num_seeds=8, seed=0)                                          # 32 runs
    state, metrics = run_sweep(trainer.train, keys, hp)                                    # metrics [32, iters]

On one host the runs are split over the devices with a `jax.sharding.Mesh` (axis "sweep"); the run count is
padded up to a multiple of the device count (padding runs are dropped from the outputs). The same program spans
processes and hosts after `distributed.initialize(...)`: every process calls `run_sweep` with the same arguments
and computes its own slice of the runs.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_rl.train.distributed import is_multiprocess, pad_runs, run_sharding, sweep_mesh, to_global, to_host

__all__ = ["grid", "random_search", "with_seeds", "run_sweep", "sweep_size", "unstack", "stack", "is_stacked"]


def _fields(obj: Any) -> list[str]:
    return [f.name for f in dataclasses.fields(obj)]


def grid(base: Any, **values: Sequence[float]) -> Any:
    """Cartesian product of the listed values over a dataclass pytree (Hparams or env params).

    Returns `base` with every field stacked to a leading axis of size prod(len(v)) (unlisted fields repeated),
    in row-major order of the keyword arguments.

    Raises TypeError if `base` is not a dataclass pytree, ValueError for an unknown field, an empty list or a
    `base` that is already stacked (call `grid` on the unstacked defaults)."""
    _check_dataclass(base, "grid: base")
    if is_stacked(base):
        raise ValueError("grid: base is already stacked (it has a leading sweep axis); pass the unstacked "
                         "Hparams/EnvParams, e.g. agents.default_hparams(algo)")
    names = _fields(base)
    for name, vals in values.items():
        if name not in names:
            raise ValueError(f"grid: unknown field {name!r}; valid: {names}")
        if len(vals) == 0:
            raise ValueError(f"grid: field {name!r} has no values")
    combos = list(itertools.product(*values.values())) or [()]
    columns = {name: [c[i] for c in combos] for i, name in enumerate(values)}
    return _stack(base, columns, len(combos))


def random_search(key: jax.Array, base: Any, num: int, **ranges: tuple) -> Any:
    """`num` random settings: each keyword is (low, high) (uniform) or (low, high, "log") (log-uniform)."""
    names = _fields(base)
    columns = {}
    rng = np.random.default_rng(np.asarray(jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key))
    for name, spec in ranges.items():
        if name not in names:
            raise ValueError(f"random_search: unknown field {name!r}; valid: {names}")
        low, high, *scale = spec
        if not low <= high:
            raise ValueError(f"random_search: field {name!r} needs low <= high, got {spec}")
        if scale and scale[0] == "log":
            if low <= 0:
                raise ValueError(f"random_search: log-uniform field {name!r} needs low > 0, got {low}")
            columns[name] = list(np.exp(rng.uniform(np.log(low), np.log(high), num)))
        else:
            columns[name] = list(rng.uniform(low, high, num))
    return _stack(base, columns, num)


def _stack(base: Any, columns: dict[str, list], size: int) -> Any:
    changes = {}
    for name in _fields(base):
        value = getattr(base, name)
        if name in columns:
            changes[name] = jnp.asarray(np.asarray(columns[name], np.float32))
        elif _is_static_field(base, name):
            continue
        else:
            arr = jnp.asarray(value)
            changes[name] = jnp.broadcast_to(arr, (size, *arr.shape))
    return base.replace(**changes)


def _is_static_field(obj: Any, name: str) -> bool:
    field = next(f for f in dataclasses.fields(obj) if f.name == name)
    return field.metadata.get("pytree_node", True) is False


def _check_dataclass(tree: Any, what: str) -> None:
    if not dataclasses.is_dataclass(tree) or isinstance(tree, type):
        raise TypeError(f"{what} must be a dataclass pytree (e.g. agents.Hparams or an env's EnvParams), "
                        f"got {type(tree).__name__}")


def is_stacked(tree: Any, size: int | None = None) -> bool:
    """True when every array leaf has a leading sweep axis (of length `size`, when given).

    An unstacked Hparams has only scalar leaves; an unstacked EnvParams has at least one scalar leaf (e.g. a power
    budget) or leaves whose leading length differs from the sweep's `size`."""
    leaves = [np.shape(x) for x in jax.tree_util.tree_leaves(tree)]
    if not leaves or any(len(s) == 0 for s in leaves):
        return False
    first = {s[0] for s in leaves}
    return len(first) == 1 and (size is None or first == {size})


def stack(tree: Any, size: int = 1) -> Any:
    """An unstacked pytree repeated along a new leading sweep axis of length `size` (static fields untouched)."""
    return jax.tree_util.tree_map(lambda x: jnp.broadcast_to(jnp.asarray(x), (size, *np.shape(x))), tree)


def sweep_size(tree: Any) -> int:
    """Length of the leading sweep axis of a stacked pytree (1 for an unstacked one)."""
    if not is_stacked(tree):
        return 1
    return int(np.shape(jax.tree_util.tree_leaves(tree)[0])[0])


def with_seeds(hparams: Any, num_seeds: int, seed: int = 0, env_params: Any = None):
    """Repeat a sweep for `num_seeds` seeds: keys [S*G], hparams [S*G] (seed-major: run i is seed i // G,
    setting i % G). `hparams` is stacked ([G], from `grid`/`random_search`) or a plain unstacked Hparams (G = 1).
    With `env_params` (stacked [G], or unstacked: shared by every setting) returns it repeated too.

    Raises TypeError for a non-dataclass `hparams`/`env_params`, ValueError for num_seeds < 1 or env params stacked
    over a different number of settings."""
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, (int, np.integer)) or num_seeds < 1:
        raise ValueError(f"with_seeds: num_seeds must be an integer >= 1, got {num_seeds!r}")
    _check_dataclass(hparams, "with_seeds: hparams")
    if not is_stacked(hparams):
        hparams = stack(hparams)
    g = sweep_size(hparams)
    seed_keys = jax.random.split(jax.random.PRNGKey(seed), num_seeds)
    keys = jnp.repeat(seed_keys, g, axis=0)
    tile = lambda x: jnp.tile(x, (num_seeds,) + (1,) * (x.ndim - 1))
    hp = jax.tree_util.tree_map(tile, hparams)
    if env_params is None:
        return keys, hp
    _check_dataclass(env_params, "with_seeds: env_params")
    if not is_stacked(env_params, g):
        if g > 1 and is_stacked(env_params):
            raise ValueError(f"with_seeds: env_params are stacked over {sweep_size(env_params)} settings but hparams "
                             f"over {g}")
        env_params = stack(env_params, g)
    return keys, hp, jax.tree_util.tree_map(tile, env_params)


def unstack(tree: Any, i: int) -> Any:
    """Run i of a stacked pytree."""
    return jax.tree_util.tree_map(lambda x: x[i], tree)


def run_sweep(
    train: Callable,
    keys: jax.Array,
    hparams: Any,
    env_params: Any = None,
    devices: Sequence[Any] | None = None,
) -> tuple[Any, Any]:
    """`jax.vmap(train)` over runs (keys [R], hparams [R], env_params [R] or None = shared), sharded over
    `devices` (default: all, of every process). Returns (final states, metrics), each with leading axis R: global
    arrays sharded over the devices in one process; in a multi-process job (`distributed.initialize`) full NumPy
    arrays on every process (typed keys as raw key data). R is padded up to a multiple of the device count by
    repeating the last run; the padding runs are computed and dropped."""
    devices = list(jax.devices() if devices is None else devices)
    runs = int(keys.shape[0])
    if sweep_size(hparams) != runs:
        raise ValueError(f"run_sweep: hparams have {sweep_size(hparams)} runs but keys have {runs}")
    if env_params is not None and sweep_size(env_params) != runs:
        raise ValueError(f"run_sweep: env_params have {sweep_size(env_params)} runs but keys have {runs}")
    args = [keys, hparams] + ([env_params] if env_params is not None else [])
    args, pad = pad_runs(args, len(devices))
    sharding = run_sharding(sweep_mesh(devices))
    args = to_global(args, sharding)
    fn = jax.vmap(train) if env_params is not None else jax.vmap(lambda k, h: train(k, h))
    out = jax.jit(fn, out_shardings=sharding)(*args)
    if is_multiprocess():
        out = to_host(out)
    return jax.tree_util.tree_map(lambda x: x[:runs], out) if pad else out
