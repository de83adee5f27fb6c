"""Shared settings and helpers for the DiffSG reproduction (seed 002)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from envs.datasets import SENSE, generate_dataset, objective_fn, repair_fn
from jaxdiff_rl.optimize import GDMConfig, GDMHparams, GenerativeOptimizer

HERE = Path(__file__).resolve().parent
PROBLEMS = ("co", "msr-3", "msr-80", "nu")
# training-set sizes of the paper; the test sets are held out (fresh keys)
TRAIN_SIZE = {"co": 30_000, "msr-3": 10_000, "msr-80": 10_000, "nu": 10_000}
TEST_SIZE = 1000
QUICK = dict(train_scale=0.2, epochs=40, seeds=2, hidden=(128, 128, 128))
MEDIUM = dict(train_scale=0.5, epochs=100, seeds=2, hidden=(256, 256, 256))
FULL = dict(train_scale=1.0, epochs=200, seeds=3, hidden=(256, 256, 256))


def load_data(problem: str, scale: float, cache: Path = HERE / "data") -> tuple[dict, dict]:
    """(train, test) datasets, generated once with fixed keys and cached as .npz."""
    from envs.datasets import load_dataset, save_dataset

    n = max(512, int(TRAIN_SIZE[problem] * scale))
    out = []
    for split, size, seed in (("train", n, 0), ("test", TEST_SIZE, 1)):
        path = cache / f"{problem}-{split}-{size}.npz"
        if path.exists():
            out.append(load_dataset(path)[1])
        else:
            data = generate_dataset(jax.random.key(seed), problem, size)
            save_dataset(path, data, problem)
            out.append(data)
    return out[0], out[1]


def gdm_config(problem: str, train: dict, epochs: int, hidden: tuple[int, ...], **kw) -> GDMConfig:
    """DiffSG's settings; CO conditions on log1p(features) (documented deviation: CO's features are heavy-tailed,
    x1 reaches 1e4 when a local CPU is slow, and raw min-max scaling squashes the rest of the data to -1)."""
    kw.setdefault("log_x", problem == "co")
    return GDMConfig(x_dim=train["x"].shape[1], y_dim=train["y"].shape[1], epochs=epochs, hidden_dims=hidden,
                     batch_size=min(512, train["x"].shape[0]), **kw)


TERMS = ("none", "objective", "constraint", "both")


def condition_terms(problem: str, which: str):
    """DiffSG Fig. 3: the objective value f(x, repair(x, y)) and/or the constraint term ||y - repair(x, y)||^2 (the
    penalty of the Lagrangian relaxation, as in the GD baseline) of the current solution, appended to the condition.
    Returns (terms_fn or None, number of terms)."""
    if which not in TERMS:
        raise ValueError(f"condition terms must be one of {TERMS}, got {which!r}")
    if which == "none":
        return None, 0
    f, r = objective_fn(problem), repair_fn(problem)

    def terms(x, y):
        feasible = r(x, y)
        parts = {"objective": f(x, feasible), "constraint": jnp.sum((y - feasible) ** 2)}
        return jnp.stack([parts[k] for k in (("objective", "constraint") if which == "both" else (which,))])

    return terms, 2 if which == "both" else 1


def train_gdm_seeds(problem: str, train: dict, config: GDMConfig, hparams: GDMHparams, seeds: int, terms=None):
    """Train `seeds` models in one vmapped call; returns (optimizer, stacked states, losses [seeds, epochs], s).
    `terms`: optional condition-terms function (see `condition_terms`; `config.num_terms` must match)."""
    opt = GenerativeOptimizer(config, condition_terms=terms)
    x, y = jnp.asarray(train["x"]), jnp.asarray(train["y"])
    t0 = time.perf_counter()
    states, losses = jax.vmap(lambda k: opt._train(k, x, y, hparams))(jax.random.split(jax.random.key(42), seeds))
    jax.block_until_ready(losses)
    return opt, states, np.asarray(losses), time.perf_counter() - t0


def exceed_ratios(problem: str, opt, state, test: dict, hparams: GDMHparams, key, num_samples: int = 1):
    f, r = objective_fn(problem), repair_fn(problem)
    _, values = opt.solve(state, key, test["x"], hparams, f, r, num_samples, maximize=SENSE[problem] == "max")
    return np.asarray(values) / test["value"]


def finite_mean(ratios: np.ndarray) -> float:
    """Mean over the finite ratios (an infeasible or degenerate instance gives inf; counted apart by `summary`)."""
    return float(np.mean(ratios[np.isfinite(ratios)]))


def summary(ratios: np.ndarray) -> dict:
    return dict(mean=finite_mean(ratios), median=float(np.median(ratios)), q10=float(np.quantile(ratios, 0.1)),
                q90=float(np.quantile(ratios, 0.9)), infeasible_or_inf=int(np.sum(~np.isfinite(ratios))))


def write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2))
