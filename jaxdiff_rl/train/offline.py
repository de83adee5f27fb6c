"""The offline loop: `make_trainer(config, env, env_params, dataset) -> Trainer`, learning from a fixed dataset.

The dataset (an `envs.offline_data.OfflineDataset`) is put on device once; a run is one jitted function:
`lax.scan` over iterations, each running `updates_per_iter` gradient updates (`lax.scan`) of the algorithm on
uniform minibatches drawn from it, then a greedy evaluation of `eval_steps` steps in `num_envs` fresh
environments (the environment is used only there). It returns the same `Trainer` as the online loops, so the
runner (progress, metrics, orbax checkpoints, bit-identical resume), sweeps (`vmap` over keys and
`OfflineHparams`), the CLI and the plots work unchanged; the dataset is a constant of the program, not part of the
state, so checkpoints and vmapped seeds do not copy it.

Observations are standardised with the dataset's statistics (`OfflineConfig.normalize_obs`) and continuous
dataset actions mapped to [-1, 1]^A from the env's Box or the data's range (`OfflineConfig.action_range`); the
policy's observations and actions go through the same maps when it acts.

Per-iteration metrics: `episodes`, `return_mean` (finished evaluation episodes; NaN if none), `reward_mean` (per
evaluation step), `optimum_fraction` (evaluation; NaN without `optimal_value`), `env_steps` (cumulative
evaluation steps), `updates`, `updating` (1), and the algorithm's losses averaged over the iteration's updates.
"""

from __future__ import annotations

from functools import partial
from types import ModuleType
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxdiff_rl.agents import bc, diffusion_ql, fql, iql, td3_bc
from jaxdiff_rl.agents.offline_base import (OFFLINE_ALGORITHMS, OfflineConfig, OfflineHparams, OfflineState,
                                            greedy_action, init_offline, validate_offline_hparams)
from jaxdiff_rl.train.buffer import Batch
from jaxdiff_rl.train.off_policy import ActionSpec, Trainer, _to_env_action, action_spec, greedy_evaluation

__all__ = ["OfflineRunnerState", "make_trainer", "make_train", "module", "device_dataset", "check_dataset",
           "Normaliser", "make_normaliser"]

_MODULES: dict[str, ModuleType] = {"bc": bc, "td3_bc": td3_bc, "iql": iql, "diffusion_ql": diffusion_ql, "fql": fql}


def module(algo: str) -> ModuleType:
    """The agent module of an offline algorithm (ValueError lists the valid names)."""
    if algo not in _MODULES:
        raise ValueError(f"unknown offline algorithm {algo!r}; valid: {list(OFFLINE_ALGORITHMS)}")
    return _MODULES[algo]


@struct.dataclass
class OfflineRunnerState:
    """What an offline run carries between iterations: agent (OfflineState), key (raw uint32 [2]), iteration and
    env_steps (int32: cumulative evaluation steps)."""

    agent: OfflineState
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array


def check_dataset(dataset: Any, spec: ActionSpec, env_name: str = "the environment") -> None:
    """Raise ValueError (naming the field) when the dataset does not fit the environment's spaces."""
    from envs.offline_data import OfflineDataset

    if not isinstance(dataset, OfflineDataset):
        raise TypeError(f"dataset must be an envs.offline_data.OfflineDataset, got {type(dataset).__name__}")
    if dataset.observations.shape[1] != spec.obs_dim:
        raise ValueError(f"dataset observations have {dataset.observations.shape[1]} features but {env_name} "
                         f"observes {spec.obs_dim}")
    if dataset.discrete != spec.discrete:
        kind = lambda d: "discrete" if d else "continuous"
        raise ValueError(f"dataset actions are {kind(dataset.discrete)} but {env_name}'s action space is "
                         f"{kind(spec.discrete)}")
    if spec.discrete:
        if dataset.actions.max() >= spec.dim:
            raise ValueError(f"dataset actions reach {int(dataset.actions.max())} but {env_name} has {spec.dim} actions")
        return
    if dataset.actions.shape[1] != spec.dim:
        raise ValueError(f"dataset actions have {dataset.actions.shape[1]} dimensions, {env_name} expects {spec.dim}")
    low, high = np.asarray(spec.low), np.asarray(spec.high)
    tol = 1e-5 * np.maximum(1.0, high - low)
    if np.any(dataset.actions < low - tol) or np.any(dataset.actions > high + tol):
        raise ValueError(f"dataset actions leave {env_name}'s action box [{low.min():g}, {high.max():g}]")


class Normaliser(NamedTuple):
    """The data-dependent transforms of a run: observations (obs - mean) / std [obs_dim]; `action_spec`: the
    ActionSpec whose low/high [A] define the policy's [-1, 1] (the env's Box, or the data's range)."""

    obs_mean: np.ndarray
    obs_std: np.ndarray
    action_spec: ActionSpec

    def obs(self, obs: jax.Array) -> jax.Array:
        return (obs - jnp.asarray(self.obs_mean)) / jnp.asarray(self.obs_std)


def make_normaliser(config: OfflineConfig, dataset: Any, spec: ActionSpec) -> Normaliser:
    obs = np.concatenate([dataset.observations, dataset.next_observations]).astype(np.float64)
    if config.normalize_obs:
        mean, std = obs.mean(0), obs.std(0)
        std = np.where(std > 1e-6, std, 1.0)
    else:
        mean, std = np.zeros(obs.shape[1]), np.ones(obs.shape[1])
    action = spec
    if config.action_range == "data" and not spec.discrete:
        low, high = dataset.actions.min(0).astype(np.float64), dataset.actions.max(0).astype(np.float64)
        pad = np.maximum(1e-6, 1e-6 * (np.asarray(spec.high) - np.asarray(spec.low)))
        high = np.where(high - low < pad, low + pad, high)
        action = spec._replace(low=tuple(low.tolist()), high=tuple(high.tolist()))
    return Normaliser(mean.astype(np.float32), std.astype(np.float32), action)


def device_dataset(dataset: Any, norm: Normaliser) -> dict[str, jax.Array]:
    """The dataset's arrays on device: observations normalised, actions mapped to [-1, 1] by the normaliser's
    action range (continuous) or int32 (discrete)."""
    spec = norm.action_spec
    if spec.discrete:
        actions = jnp.asarray(dataset.actions, jnp.int32)
    else:
        low, high = np.asarray(spec.low, np.float32), np.asarray(spec.high, np.float32)
        actions = jnp.asarray(np.clip(2.0 * (dataset.actions - low) / (high - low) - 1.0, -1.0, 1.0), jnp.float32)
    return {"obs": norm.obs(jnp.asarray(dataset.observations)), "action": actions,
            "reward": jnp.asarray(dataset.rewards), "next_obs": norm.obs(jnp.asarray(dataset.next_observations)),
            "terminal": jnp.asarray(dataset.terminals, jnp.float32)}


def sample_batch(data: dict[str, jax.Array], key: jax.Array, batch_size: int, gamma: jax.Array) -> Batch:
    """Uniform minibatch (with replacement) of `batch_size` transitions; discount = gamma (1 - terminal)."""
    idx = jax.random.randint(key, (batch_size,), 0, data["reward"].shape[0])
    return Batch(obs=data["obs"][idx], action=data["action"][idx], reward=data["reward"][idx],
                 next_obs=data["next_obs"][idx], discount=gamma * (1.0 - data["terminal"][idx]))


class _Ctx(NamedTuple):
    config: OfflineConfig
    env: Any
    spec: ActionSpec
    update: Callable
    data: dict
    norm: Normaliser


def _policy(ctx: _Ctx, agent: OfflineState) -> Callable:
    spec, norm = ctx.spec, ctx.norm
    return lambda k, obs: _to_env_action(norm.action_spec, greedy_action(k, ctx.config, agent, norm.obs(obs),
                                                                         spec.dim, spec.discrete))


def _iteration(ctx: _Ctx, hparams: OfflineHparams, env_params: Any, rs: OfflineRunnerState, _: Any):
    config, spec = ctx.config, ctx.spec
    key, k_update, k_eval = jax.random.split(rs.key, 3)

    def step(agent, k):
        k_batch, k_up = jax.random.split(k)
        batch = sample_batch(ctx.data, k_batch, config.batch_size, jnp.asarray(hparams.gamma, jnp.float32))
        return ctx.update(k_up, config, agent, batch, hparams, spec.dim, spec.discrete)

    agent, losses = jax.lax.scan(step, rs.agent, jax.random.split(k_update, config.updates_per_iter))
    evaluation = greedy_evaluation(ctx.env, env_params, _policy(ctx, agent), k_eval, config.eval_steps,
                                   config.num_envs)
    env_steps = rs.env_steps + config.eval_steps * config.num_envs
    metrics = {**evaluation, "env_steps": env_steps, "updates": agent.updates, "updating": jnp.float32(1.0),
               **jax.tree_util.tree_map(jnp.mean, losses)}
    return OfflineRunnerState(agent=agent, key=key, iteration=rs.iteration + 1, env_steps=env_steps), metrics


def make_trainer(config: OfflineConfig, env: Any, env_params: Any, dataset: Any) -> Trainer:
    """Build the pure functions of an offline run; validates the config and the dataset against the environment
    before anything compiles."""
    if not isinstance(config, OfflineConfig):
        raise TypeError(f"config must be an OfflineConfig, got {type(config).__name__}")
    spec = action_spec(env, env_params)
    check_dataset(dataset, spec, type(env).__name__)
    if dataset.size < config.batch_size:
        raise ValueError(f"OfflineConfig.batch_size ({config.batch_size}) exceeds the dataset's {dataset.size} "
                         f"transitions")
    norm = make_normaliser(config, dataset, spec)
    ctx = _Ctx(config, env, spec, module(config.algo).update, device_dataset(dataset, norm), norm)
    default_env_params = env_params

    def init(key: jax.Array, hparams: OfflineHparams, env_params: Any = None) -> OfflineRunnerState:
        validate_offline_hparams(hparams)
        key = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        k_agent, k_run = jax.random.split(key)
        agent = init_offline(k_agent, config, spec.obs_dim, spec.dim, spec.discrete)
        return OfflineRunnerState(agent=agent, key=k_run, iteration=jnp.int32(0), env_steps=jnp.int32(0))

    def run(state: OfflineRunnerState, hparams: OfflineHparams, num_iterations: int, env_params: Any = None):
        env_params = default_env_params if env_params is None else env_params
        validate_offline_hparams(hparams)
        return jax.lax.scan(partial(_iteration, ctx, hparams, env_params), state, None, length=num_iterations)

    def train(key: jax.Array, hparams: OfflineHparams, env_params: Any = None):
        return run(init(key, hparams, env_params), hparams, config.num_iterations, env_params)

    def evaluate(state: OfflineRunnerState, key: jax.Array, hparams: OfflineHparams, num_steps: int,
                 env_params: Any = None, num_envs: int | None = None):
        """Greedy policy (best-of-N with `action_candidates`) in `num_envs` fresh environments, `num_steps` each."""
        return greedy_evaluation(env, default_env_params if env_params is None else env_params,
                                 _policy(ctx, state.agent), key, num_steps,
                                 config.num_envs if num_envs is None else num_envs)

    return Trainer(config, spec, init, run, train, evaluate)


def make_train(config: OfflineConfig, env: Any, env_params: Any, dataset: Any) -> Callable:
    """`train(key, hparams, env_params=None) -> (OfflineRunnerState, metrics)`: a whole offline run, one jit."""
    return make_trainer(config, env, env_params, dataset).train
