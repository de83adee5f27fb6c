"""Shared pieces of the D2RL reproduction (seed 003): the scales, one cached vmapped run per variant, and the
precise convergence rule applied to every variant.

Convergence (Figs. 3, 6, 9). Per variant, the seed-mean sum-rate curve is smoothed by a trailing moving average
of `window` epochs (the paper's "MA"); its plateau is the mean over the last 10% of epochs; the variant has
converged at the first epoch after which the smoothed curve stays within `tol` (2%) of that plateau. Total compute
to convergence = that epoch x the measured seconds per epoch (compile excluded). A variant that stalls low
"converges" to its low plateau, so the table also gives each plateau and the epoch at which a common level (95%
of the best plateau in the figure) is first reached (None if never).
"""

from __future__ import annotations

import dataclasses
import json
import time
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

import envs
from jaxdiff_rl.explore import d2rl_config, d2rl_hparams
from jaxdiff_rl.train.sweep import grid, with_seeds
from jaxdiff_rl.train import make_trainer

HERE = Path(__file__).parent
RESULTS = HERE / "results"
KEEP = ("objective_mean", "objective_mean_observed", "reward_mean", "optimum_fraction", "chi", "substituted_fraction",
        "substituted_state_gap", "state_net_loss",
        "reward_net_loss", "critic_loss", "actor_loss", "env_steps")

LABELS = {
    "raw": "Raw R.", "designed": "Designed R.", "designed_mlp": "Designed R. + MLP", "gdm": "GDM R.",
    "designed_gdm": "Designed + GDM R.",
}


@dataclasses.dataclass(frozen=True)
class Scale:
    """Problem size, network width and schedule of a reproduction run."""

    name: str
    env: dict
    width: int
    batch_size: int
    buffer_size: int
    epochs: int
    num_envs: int
    learning_starts: int
    hparams: dict
    window: int
    clip_gradient: str = "straight_through"

    def config(self, reward: str, state_exploration: bool = False, action_gdm: bool = True,
               state_forward_steps: int | None = None, state_schedule: str | None = None):
        return d2rl_config(reward, state_exploration, action_gdm=action_gdm, width=self.width,
                           clip_gradient=self.clip_gradient, state_forward_steps=state_forward_steps,
                           state_schedule=state_schedule,
                           batch_size=self.batch_size, buffer_size=self.buffer_size, num_iterations=self.epochs,
                           num_envs=self.num_envs, learning_starts=self.learning_starts)

    def base_hparams(self, **overrides: Any):
        return d2rl_hparams(**{**self.hparams, **overrides})


SCALES = {
    # seed 003 Tables I-II exactly (K = 6, L = 4, N_t = N_r = 6; 256-wide networks, batch 256, Table II lrs)
    "paper": Scale("paper", dict(), 256, 256, 100_000, 20_000, 1, 256, dict(), 500),
    # CPU reproduction: the same system with K = L = 2 users and N_t = N_r = 2 antennas, 64-wide networks, larger
    # step sizes, and the SENPNN threshold T calibrated to where its loss actually goes (README: ~0.05-0.15 per
    # batch after 1000 updates; Table II's 5e-4 is never reached, so chi would stay 0)
    "quick": Scale("quick", dict(num_dl=2, num_ul=2, num_tx=2, num_rx=2), 64, 64, 20_000, 5000, 4, 256,
                   dict(lr_actor=1e-3, lr_critic=1e-3, lr_reward=1e-3, lr_state=1e-3, state_threshold=0.1,
                        reward_scale=0.2), 250),
    # a minute-long check that the whole pipeline runs (not a result)
    "smoke": Scale("smoke", dict(num_dl=2, num_ul=2, num_tx=2, num_rx=2), 16, 16, 2_000, 300, 4, 64,
                   dict(lr_actor=1e-3, lr_critic=1e-3, lr_reward=1e-3, lr_state=1e-3, state_threshold=0.3), 30),
}

# the quick scale for the paper's 20,000 epochs (does the ordering appear once the policies learn?)
SCALES["long"] = dataclasses.replace(SCALES["quick"], name="long", epochs=20_000, window=1000)
# the diffusion actor's [-1, 1] clip with its own (zero) gradient outside the box, as GDMOPT's clamp: the actor
# sticks to one corner of the box (README, "Why the diffusion actor stalled")
for _name in ("quick", "long"):
    SCALES[f"{_name}-clipzero"] = dataclasses.replace(SCALES[_name], name=f"{_name}-clipzero", clip_gradient="zero")


def make_env(scale: Scale):
    return envs.make("fd-isac", one_shot=True, **scale.env)


def run_variant(scale: Scale, name: str, config, hparams, seeds: int, force: bool = False,
                keep_agent: bool = False) -> dict[str, Any]:
    """Train `seeds` seeds x every setting of `hparams` (stacked [G] or a single setting) as one vmapped program.

    Cached in results/runs/<scale>/<name>.npz. Returns {"metrics": {key: [runs, epochs]}, "seconds": run time
    without compile, "compile_seconds", "seconds_per_epoch" (of the whole vmapped program), "runs"}; with
    `keep_agent`, also "agent": the trained agents, a pytree stacked over runs [runs, ...] (a cache without them,
    or with other shapes, is retrained)."""
    path = RESULTS / "runs" / scale.name / f"{name}.npz"
    data = np.load(path, allow_pickle=False) if path.exists() and not force else None
    if data is not None:
        meta = json.loads(str(data["meta"]))
        cached = {**meta, "metrics": {k: data[k] for k in data.files if k != "meta" and not k.startswith("agent_")}}
        if not keep_agent:
            return cached
    env, env_params = make_env(scale)
    trainer = make_trainer(config, env, env_params)
    if np.ndim(jax.tree_util.tree_leaves(hparams)[0]) == 0:
        hparams = grid(hparams)  # one setting -> a stacked sweep of size 1
    keys, hp = with_seeds(hparams, seeds)
    fn = jax.jit(jax.vmap(trainer.train))
    if data is not None:
        agent = _cached_agent(data, jax.eval_shape(fn, keys, hp)[0].agent)
        if agent is not None:
            return {**cached, "agent": agent}
    t0 = time.perf_counter()
    compiled = fn.lower(keys, hp).compile()
    t1 = time.perf_counter()
    state, metrics = compiled(keys, hp)
    jax.block_until_ready(metrics)
    t2 = time.perf_counter()
    keep = {k: np.asarray(v, np.float32) for k, v in metrics.items() if k in KEEP or k.startswith("grad_mean/actor")}
    meta = {"seconds": t2 - t1, "compile_seconds": t1 - t0, "seconds_per_epoch": (t2 - t1) / scale.epochs,
            "runs": int(keys.shape[0]), "name": name}
    agent_leaves = jax.tree_util.tree_leaves(state.agent) if keep_agent else []
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, meta=json.dumps(meta), **keep,
                        **{f"agent_{i}": np.asarray(x) for i, x in enumerate(agent_leaves)})
    print(f"  {name:28s} {keys.shape[0]:3d} runs  {t2 - t1:7.1f} s (+{t1 - t0:.0f} s compile)  "
          f"final sum rate {np.nanmean(keep['objective_mean'][:, -scale.window:]):.3f}", flush=True)
    return {**meta, "metrics": keep, **({"agent": state.agent} if keep_agent else {})}


def _cached_agent(data: Any, template: Any) -> Any:
    """The agents stored in an npz as agent_<i> leaves, unflattened like `template` (a pytree of shapes); None if
    they are missing or their shapes differ (a stale cache)."""
    treedef = jax.tree_util.tree_structure(template)
    shapes = [x.shape for x in jax.tree_util.tree_leaves(template)]
    names = [f"agent_{i}" for i in range(treedef.num_leaves)]
    if not all(n in data.files for n in names) or [data[n].shape for n in names] != shapes:
        return None
    return jax.tree_util.tree_unflatten(treedef, [jax.numpy.asarray(data[n]) for n in names])


_BASELINES: dict[str, dict[str, float]] = {}


def baselines(scale: Scale) -> dict[str, float]:
    """Mean sum rate C (bit/s/Hz) of the environment's baseline policies (random; MRT + water-filling DL, full UL
    power, MMSE receivers) over 4096 one-shot slots, and of the upper bound R' (the designed reward's zero).
    Computed once per scale (every figure shows them)."""
    from jaxdiff_rl.train.rollout import baseline_rollouts

    if scale.name not in _BASELINES:
        env, params = make_env(scale)
        runs = baseline_rollouts(env, params, jax.random.key(0), 4096)
        out = {name: float(r.stats.reward_sum / r.stats.steps) for name, r in runs.items()}
        states = jax.vmap(lambda k: env.reset(k, params)[1])(jax.random.split(jax.random.key(1), 4096))
        out["upper bound R'"] = float(jax.numpy.mean(jax.vmap(lambda s: env.optimal_value(s, params))(states)))
        _BASELINES[scale.name] = out
    return dict(_BASELINES[scale.name])


def moving_average(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average along the last axis (NaN-aware; the first entries average what exists)."""
    x = np.asarray(x, np.float64)
    valid = np.isfinite(x)
    c = np.cumsum(np.where(valid, x, 0.0), axis=-1)
    n = np.cumsum(valid, axis=-1)
    c = np.concatenate([np.zeros(x.shape[:-1] + (1,)), c], axis=-1)
    n = np.concatenate([np.zeros(x.shape[:-1] + (1,)), n], axis=-1)
    idx = np.arange(1, x.shape[-1] + 1)
    lo = np.maximum(idx - window, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (c[..., idx] - c[..., lo]) / (n[..., idx] - n[..., lo])


def convergence(curve: np.ndarray, window: int, tol: float = 0.02) -> dict[str, float]:
    """curve [epochs] (seed mean) -> {"plateau", "epoch" (first epoch after which the MA stays within tol of the
    plateau)}; see the module docstring."""
    ma = moving_average(curve, window)
    tail = max(1, len(ma) // 10)
    plateau = float(np.nanmean(ma[-tail:]))
    inside = np.abs(ma - plateau) <= tol * abs(plateau)
    outside = np.flatnonzero(~inside)
    epoch = 0 if len(outside) == 0 else int(outside[-1] + 1)
    return {"plateau": plateau, "epoch": min(epoch, len(ma) - 1)}


def first_reach(curve: np.ndarray, window: int, level: float) -> int | None:
    """First epoch >= `window` (a full averaging window: the first few MA values average a handful of noisy
    epochs) at which the MA reaches `level`; None if never."""
    ma = moving_average(curve, window)
    hit = np.flatnonzero(ma[window:] >= level)
    return int(hit[0]) + window if len(hit) else None


def seed_tail_means(objective: np.ndarray) -> np.ndarray:
    """Training sum rate [seeds, epochs] -> each seed's mean over the last 10% of epochs [seeds] (NaN-aware)."""
    objective = np.asarray(objective, np.float64)
    return np.nanmean(objective[:, -max(1, objective.shape[1] // 10):], axis=1)


def convergence_race(curves: dict[str, np.ndarray], window: int) -> dict[str, dict]:
    """Seed-mean curves {name: [epochs]} -> per name, `convergence` plus "epoch_to_95pct_best": the first epoch
    (`first_reach`) at 95% of the best plateau among these curves (None if never)."""
    out = {name: convergence(curve, window) for name, curve in curves.items()}
    best = max(v["plateau"] for v in out.values())
    for name, curve in curves.items():
        out[name]["epoch_to_95pct_best"] = first_reach(curve, window, 0.95 * best)
    return out


def summarise(runs: dict[str, dict], scale: Scale, seeds: int) -> dict[str, dict]:
    """Per variant: plateau, convergence epoch, total compute to convergence, compute per epoch (one seed's
    share of the vmapped program), epoch reaching 95% of the best plateau, and the mean ± std over seeds of each
    seed's mean sum rate over the last 10% of epochs (the spread that says whether two plateaus differ; "per_seed"
    lists them, so a variant where some seeds stall shows as such)."""
    curves = {name: np.nanmean(run["metrics"]["objective_mean"], axis=0) for name, run in runs.items()}
    out = convergence_race(curves, scale.window)
    for name, run in runs.items():
        per_seed = seed_tail_means(run["metrics"]["objective_mean"])
        v = out[name]
        v.update({"seconds_per_epoch": run["seconds_per_epoch"] / run["runs"],
                  "per_seed_mean": float(per_seed.mean()),
                  "per_seed_std": float(per_seed.std(ddof=1)) if len(per_seed) > 1 else 0.0,
                  "per_seed": per_seed.tolist()})
        v["total_seconds_to_convergence"] = v["epoch"] * v["seconds_per_epoch"]
        v["seeds"] = seeds
    return out


def state_stats(run: dict, window: int) -> dict[str, float]:
    """State-exploration statistics of a run over the last 10% of epochs: C of the actions chosen on the true state
    ("observed_*": plateau of the seed mean, and mean ± std over seeds), the substituted share of steps, and how
    far the substituted synthetic states were from the observed ones (sum |S_hat - S| / sum |S|; NaN if no step
    was substituted or the run predates the metric)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        # all-NaN slices are expected: epochs where every step was substituted have no true-state C, and runs
        # without substitution no gap
        warnings.simplefilter("ignore", RuntimeWarning)
        return _state_stats(run["metrics"], window)


def _state_stats(m: dict, window: int) -> dict[str, float | None]:
    tail = lambda x: np.asarray(x, np.float64)[:, -max(1, np.shape(x)[1] // 10):]
    # runs cached before the metric existed: without substitution every step saw the true state
    observed = np.asarray(m["objective_mean_observed"] if "objective_mean_observed" in m else
                          np.where(m["substituted_fraction"] == 0, m["objective_mean"], np.nan), np.float64)
    per_seed = np.nanmean(tail(observed), axis=1)
    gap = float(np.nanmean(tail(m["substituted_state_gap"]))) if "substituted_state_gap" in m else np.nan
    return {"observed_plateau": convergence(np.nanmean(observed, 0), window)["plateau"],
            "observed_per_seed_mean": float(np.nanmean(per_seed)),
            "observed_per_seed_std": float(np.nanstd(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0,
            "substituted_fraction": float(np.nanmean(tail(m["substituted_fraction"]))),
            "state_gap": None if np.isnan(gap) else gap}
