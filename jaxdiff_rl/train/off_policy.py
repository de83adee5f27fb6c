"""The one off-policy training loop: `make_train(config, env, env_params) -> train(key, hparams)`.

A whole run is one jitted function: `lax.scan` over iterations; each iteration collects `steps_per_iter`
vectorised steps from `num_envs` environments (`vmap`) into the device replay buffer, then runs
`updates_per_iter` gradient updates (`lax.scan`) of the algorithm's loss. `train` is pure, so
`jax.vmap(train)(keys, hparams)` runs a sweep over seeds and hyperparameters in one program (see `train/sweep.py`);
the host runner (`app/runner.py`) calls `Trainer.run` in chunks for progress bars and checkpoints. The on-policy loop
(`on_policy.py`) returns the same `Trainer`.

Works with any environment that has the gymnax 1.x API (ours or gymnax's): discrete (`Discrete`) or continuous
(`Box`) actions; continuous actions are produced in [-1, 1]^A and mapped affinely onto the Box.

Per-iteration metrics (arrays with a leading iteration axis): `episodes` finished, `return_mean` of those
episodes (NaN if none), `reward_mean` per step, `optimum_fraction` = sum of rewards / sum of the exact optimal
values over the iteration's steps (where the env has `optimal_value`, else NaN), `env_steps` (cumulative),
`updates` (cumulative), the loss metrics of the algorithm averaged over the iteration's updates (critic/actor
loss, Q, target, entropy, alpha, per-layer gradient norms), and `updating` (1 once updates have started).
With D2RL exploration (`AgentConfig.explore`, see `jaxdiff_rl.explore`): `reward_mean` is the designed reward the
agent learns from, `objective_mean` the environment's own reward (C), `optimum_fraction` uses C, and `chi`,
`substituted_fraction`, `reward_net_loss`, `state_net_loss` and per-layer gradient weight/bias means are added;
`objective_mean_observed` is C over the steps whose action was chosen on the true state (NaN if every step of the
iteration was substituted): with state exploration, `objective_mean` also counts the actions chosen on a synthetic
state, which the environment rewards on the true one; `substituted_state_gap` = sum |S_hat - S| / sum |S| over the
substituted steps (how far the synthetic states are from the observed ones they replace; NaN if none).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from jaxdiff_rl import agents
from jaxdiff_rl.agents.base import AgentConfig, AgentState, Hparams, act, init_agent, validate_hparams
from jaxdiff_rl.train.buffer import BufferState, Transition, buffer_add, buffer_init, buffer_sample
from jaxdiff_rl.explore import learner as explore
from jaxdiff_rl.train import synthetic

__all__ = ["ActionSpec", "RunnerState", "Trainer", "make_trainer", "make_train", "action_spec", "check_finite",
           "optimum_fraction", "greedy_evaluation"]


class ActionSpec(NamedTuple):
    """Static description of an action space: discrete -> n actions; continuous -> dim, low [A], high [A]."""

    discrete: bool
    dim: int
    obs_dim: int
    low: Any = None
    high: Any = None


def action_spec(env: Any, env_params: Any) -> ActionSpec:
    """ActionSpec of an env with the gymnax API (ours or gymnax's spaces, duck-typed)."""
    space = env.action_space(env_params)
    obs_shape = tuple(env.observation_space(env_params).shape)
    obs_dim = int(np.prod(obs_shape)) if obs_shape else 1
    if hasattr(space, "n"):
        return ActionSpec(True, int(space.n), obs_dim)
    shape = tuple(space.shape)
    dim = int(np.prod(shape)) if shape else 1
    low = np.broadcast_to(np.asarray(space.low, np.float32), shape).reshape(-1) if shape else np.asarray([space.low], np.float32)
    high = np.broadcast_to(np.asarray(space.high, np.float32), shape).reshape(-1) if shape else np.asarray([space.high], np.float32)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(f"{type(env).__name__}: continuous agents need a bounded action Box, got low={low}, high={high}")
    return ActionSpec(False, dim, obs_dim, tuple(low.tolist()), tuple(high.tolist()))


@struct.dataclass
class RunnerState:
    """Everything a run carries between iterations (a pytree: checkpointable, vmappable).

    agent: AgentState; buffer: BufferState; env_state: [N] env states; obs: [N, obs_dim] float32;
    episode_return: [N] running returns; key: PRNG key (raw uint32 [2], checkpoint-friendly);
    iteration, env_steps: int32 counters; explore: D2RL's `ExploreState` (None without `config.explore`);
    synthetic: the transition generator and its pool (`train.synthetic.MixState`; None without
    `config.synthetic`)."""

    agent: AgentState
    buffer: BufferState
    env_state: Any
    obs: jax.Array
    episode_return: jax.Array
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array
    explore: Any = None
    synthetic: Any = None


class Trainer(NamedTuple):
    """The pure functions of a run (all jittable, all vmappable over key/hparams/env_params).

    init(key, hparams, env_params=None) -> RunnerState
    run(state, hparams, num_iterations, env_params=None) -> (RunnerState, metrics [num_iterations])
    train(key, hparams, env_params=None) -> (RunnerState, metrics [config.num_iterations])
    evaluate(state, key, hparams, num_steps, env_params=None, num_envs=None) -> dict of greedy-policy totals
    """

    config: AgentConfig
    spec: ActionSpec
    init: Callable
    run: Callable
    train: Callable
    evaluate: Callable


# --- pieces of one iteration (module-level pure functions; `ctx` holds the static things) --------------------
class _Ctx(NamedTuple):
    config: AgentConfig
    env: Any
    spec: ActionSpec
    update: Callable


def _to_env_action(spec: ActionSpec, action: jax.Array) -> jax.Array:
    if spec.discrete:
        return action
    low, high = jnp.asarray(spec.low), jnp.asarray(spec.high)
    return low + 0.5 * (action + 1.0) * (high - low)


def _flat_obs(obs: jax.Array, num_envs: int) -> jax.Array:
    return jnp.asarray(obs, jnp.float32).reshape(num_envs, -1)


def _random_action(spec: ActionSpec, key: jax.Array, num_envs: int) -> jax.Array:
    if spec.discrete:
        return jax.random.randint(key, (num_envs,), 0, spec.dim, jnp.int32)
    return jax.random.uniform(key, (num_envs, spec.dim), minval=-1.0, maxval=1.0)


def optimum_fraction(env_params: Any, reward_sum: jax.Array, optimum_sum: jax.Array) -> jax.Array:
    """sum of the objective / sum of its exact optimum. With `reward_mode="regret"` (reward = objective - optimum,
    GDMOPT's convention) the objective is reward + optimum; otherwise the reward is the objective."""
    if getattr(env_params, "reward_mode", None) == "regret":
        return (reward_sum + optimum_sum) / optimum_sum
    return reward_sum / optimum_sum


def _optimal_values(env: Any, env_state: Any, env_params: Any) -> jax.Array:
    if hasattr(env, "optimal_value"):
        return jax.vmap(env.optimal_value, in_axes=(0, None))(env_state, env_params)
    num = jax.tree_util.tree_leaves(env_state)[0].shape[0]
    return jnp.full((num,), jnp.nan, jnp.float32)


def _env_step(ctx: _Ctx, hparams: Hparams, env_params: Any, carry: tuple, key: jax.Array):
    """One vectorised environment step with the behaviour policy; returns the transition and step stats.

    With D2RL exploration (`config.explore`) the agent may act on a generated state and learns from the designed
    reward; the stats keep the environment's own reward (`objective`) for the returns and the optimum fraction."""
    rs, buffer = carry
    config, spec = ctx.config, ctx.spec
    n = config.num_envs
    k_act, k_rand, k_env = jax.random.split(key, 3)
    obs_seen, substituted = rs.obs, jnp.zeros((n,), bool)
    if config.explore is not None:  # keys folded in, so runs without exploration keep their random streams
        obs_seen, substituted = explore.observe(config.explore, rs.explore, jax.random.fold_in(key, 1), rs.obs)
    warmup = rs.env_steps < config.learning_starts
    policy_action = act(k_act, config, rs.agent, obs_seen, hparams, spec.dim, spec.discrete, explore=True)
    action = jnp.where(warmup, _random_action(spec, k_rand, n), policy_action)
    optimum = _optimal_values(ctx.env, rs.env_state, env_params)
    obs, env_state, objective, terminated, truncated, info = jax.vmap(ctx.env.step, in_axes=(0, 0, 0, None))(
        jax.random.split(k_env, n), rs.env_state, _to_env_action(spec, action), env_params
    )
    objective = jnp.asarray(objective, jnp.float32)
    reward = objective
    if config.explore is not None:
        reward = explore.reward(config.explore, rs.explore, jax.random.fold_in(key, 2), obs_seen, action, objective,
                                optimum, hparams)
    done = jnp.logical_or(terminated, truncated)
    transition = Transition(
        obs=obs_seen, action=action, reward=reward, next_obs=_flat_obs(info["final_observation"], n),
        terminated=terminated, done=done,
    )
    running = rs.episode_return + objective
    stats = {
        "episodes": jnp.sum(done.astype(jnp.float32)),
        "return_sum": jnp.sum(jnp.where(done, running, 0.0)),
        "reward_sum": jnp.sum(reward),
        "objective_sum": jnp.sum(objective),
        "optimum_sum": jnp.sum(optimum),
        "substituted": jnp.sum(substituted.astype(jnp.float32)),
        "objective_observed_sum": jnp.sum(jnp.where(substituted, 0.0, objective)),
    }
    if config.explore is not None:  # rows not substituted have obs_seen == obs: both sums are over substituted rows
        stats["state_gap_sum"] = jnp.sum(jnp.abs(obs_seen - rs.obs))
        stats["substituted_state_abs_sum"] = jnp.sum(jnp.where(substituted[:, None], jnp.abs(rs.obs), 0.0))
    rs = rs.replace(
        env_state=env_state, obs=_flat_obs(obs, n), episode_return=jnp.where(done, 0.0, running),
        env_steps=rs.env_steps + n,
    )
    return (rs, buffer_add(buffer, transition)), stats


def _gradient_step(ctx: _Ctx, hparams: Hparams, buffer: BufferState, mix_state: Any, carry: tuple, key: jax.Array):
    """One minibatch update of the agent (and, with D2RL exploration, of its exploration networks); with
    `config.synthetic`, part of the minibatch comes from the generated pool."""
    agent, explore_state = carry
    k_sample, k_update = jax.random.split(key)
    batch = buffer_sample(buffer, k_sample, ctx.config.batch_size, ctx.config.n_step, hparams.gamma)
    if ctx.config.synthetic is not None:
        batch = synthetic.mix_batch(ctx.config.synthetic, mix_state, batch, jax.random.fold_in(key, 7),
                                    ctx.spec.obs_dim, ctx.spec.dim, ctx.spec.discrete, hparams.gamma)
    agent, metrics = ctx.update(k_update, ctx.config, agent, batch, hparams, ctx.spec.dim, ctx.spec.discrete)
    if ctx.config.explore is not None:
        explore_state, explore_metrics = explore.update(ctx.config, explore_state, jax.random.fold_in(key, 1), agent,
                                                        batch, hparams, ctx.spec.dim)
        metrics = {**metrics, **explore_metrics}
    return (agent, explore_state), metrics


def _iteration(ctx: _Ctx, hparams: Hparams, env_params: Any, rs: RunnerState, _: Any):
    config = ctx.config
    key, k_collect, k_update = jax.random.split(rs.key, 3)
    (rs, buffer), stats = jax.lax.scan(
        partial(_env_step, ctx, hparams, env_params), (rs, rs.buffer), jax.random.split(k_collect, config.steps_per_iter)
    )
    stored = buffer.size * config.num_envs
    ready = (stored >= config.batch_size) & (rs.env_steps >= config.learning_starts)
    mix_state = rs.synthetic
    if config.synthetic is not None:
        mix = config.synthetic
        sample = lambda k, n: buffer_sample(buffer, k, n, 1, hparams.gamma)
        mix_state = synthetic.mix_step(mix, mix_state, sample, jax.random.fold_in(k_update, 3), ctx.spec.dim,
                                       ctx.spec.discrete, hparams.gamma, ready)

    def updates(carry):
        carry, metrics = jax.lax.scan(
            partial(_gradient_step, ctx, hparams, buffer, mix_state), carry,
            jax.random.split(k_update, config.updates_per_iter)
        )
        return carry, jax.tree_util.tree_map(jnp.mean, metrics)

    def no_updates(carry):
        shapes = jax.eval_shape(updates, carry)[1]
        return carry, jax.tree_util.tree_map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

    (agent, explore_state), loss_metrics = jax.lax.cond(ready, updates, no_updates, (rs.agent, rs.explore))
    totals = jax.tree_util.tree_map(jnp.sum, stats)
    steps = config.steps_per_iter * config.num_envs
    metrics = {
        "episodes": totals["episodes"],
        "return_mean": jnp.where(totals["episodes"] > 0, totals["return_sum"] / jnp.maximum(totals["episodes"], 1), jnp.nan),
        "reward_mean": totals["reward_sum"] / steps,
        "optimum_fraction": optimum_fraction(env_params, totals["objective_sum"], totals["optimum_sum"]),
        "env_steps": rs.env_steps,
        "updates": agent.updates,
        "updating": ready.astype(jnp.float32),
        **loss_metrics,
    }
    if config.explore is not None:
        explore_state = explore.end_epoch(config.explore, explore_state, loss_metrics.get("state_net_loss"), hparams)
        metrics["objective_mean"] = totals["objective_sum"] / steps
        metrics["substituted_fraction"] = totals["substituted"] / steps
        observed = steps - totals["substituted"]
        metrics["objective_mean_observed"] = jnp.where(
            observed > 0, totals["objective_observed_sum"] / jnp.maximum(observed, 1.0), jnp.nan)
        metrics["substituted_state_gap"] = jnp.where(
            totals["substituted"] > 0, totals["state_gap_sum"] / jnp.maximum(totals["substituted_state_abs_sum"], 1e-12),
            jnp.nan)
        metrics["chi"] = explore_state.chi
    if config.synthetic is not None:
        metrics["synthetic_ready"] = mix_state.ready.astype(jnp.float32)
    rs = rs.replace(agent=agent, buffer=buffer, key=key, iteration=rs.iteration + 1, explore=explore_state,
                    synthetic=mix_state)
    return rs, metrics


# --- public -----------------------------------------------------------------------------------------------------
def check_config_env(config: AgentConfig, spec: ActionSpec) -> None:
    if config.family == "td3" and spec.discrete:
        raise ValueError(f"algo={config.algo!r} needs a continuous (Box) action space; use sac or d2sac for discrete")
    if config.actor.kind == "categorical" and not spec.discrete:
        raise ValueError("actor.kind='categorical' needs a discrete action space")
    if config.actor.kind == "gaussian" and spec.discrete:
        raise ValueError("actor.kind='gaussian' needs a continuous action space (use 'categorical' or 'diffusion')")
    if config.action_candidates > 1 and spec.discrete:
        raise ValueError("AgentConfig.action_candidates > 1 needs a continuous action space (a discrete critic "
                         "already ranks every action)")


def check_explore_env(config: AgentConfig, env: Any, env_params: Any) -> None:
    """D2RL's reward designs need the environment's raw objective C as its reward, and R' (`optimal_value`) for
    the designed ones."""
    if config.explore is None:
        return
    if config.explore.uses_upper_bound and not hasattr(env, "optimal_value"):
        raise ValueError(f"explore.reward={config.explore.reward!r} subtracts the upper bound R' = "
                         f"env.optimal_value, which {type(env).__name__} does not have")
    mode = getattr(env_params, "reward_mode", "raw")
    if mode != "raw":
        raise ValueError(f"explore.reward designs the reward from the raw objective: set env_params.reward_mode='raw' "
                         f"(got {mode!r})")


def greedy_evaluation(env: Any, env_params: Any, policy: Callable, key: jax.Array, num_steps: int,
                      num_envs: int) -> dict[str, jax.Array]:
    """Roll `policy(key, obs [n, obs_dim]) -> env actions [n, ...]` in `num_envs` fresh environments for
    `num_steps` steps: {"episodes", "return_mean" (finished episodes; NaN if none), "reward_mean" (per step),
    "optimum_fraction" (sum of objectives / sum of exact optima; NaN without `optimal_value`)}. Every loop's
    `Trainer.evaluate` is this with its greedy policy."""
    for name, value in (("num_steps", num_steps), ("num_envs", num_envs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"Trainer.evaluate: {name} must be a (static) integer >= 1, got {value!r}")
    n = num_envs
    k_reset, k_scan = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, n), env_params)

    def body(carry, k):
        obs, env_state, running = carry
        k_act, k_env = jax.random.split(k)
        a = policy(k_act, _flat_obs(obs, n))
        optimum = _optimal_values(env, env_state, env_params)
        obs, env_state, r, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, n), env_state, a, env_params)
        done = term | trunc
        running = running + r
        out = (jnp.sum(jnp.where(done, running, 0.0)), jnp.sum(done.astype(jnp.float32)), jnp.sum(r), jnp.sum(optimum))
        return (obs, env_state, jnp.where(done, 0.0, running)), out

    _, (ret, eps, rew, opt) = jax.lax.scan(body, (obs, env_state, jnp.zeros(n)), jax.random.split(k_scan, num_steps))
    episodes = jnp.sum(eps)
    return {
        "episodes": episodes,
        "return_mean": jnp.where(episodes > 0, jnp.sum(ret) / jnp.maximum(episodes, 1), jnp.nan),
        "reward_mean": jnp.sum(rew) / (n * num_steps),
        "optimum_fraction": optimum_fraction(env_params, jnp.sum(rew), jnp.sum(opt)),
    }


def make_trainer(config: AgentConfig, env: Any, env_params: Any) -> Trainer:
    """Build the pure functions of a run; validates config against the env before anything compiles."""
    if not isinstance(config, AgentConfig):
        raise TypeError(f"config must be an AgentConfig, got {type(config).__name__}")
    spec = action_spec(env, env_params)
    check_config_env(config, spec)
    check_explore_env(config, env, env_params)
    ctx = _Ctx(config, env, spec, agents.module(config.algo).update)
    default_env_params = env_params

    def init(key: jax.Array, hparams: Hparams, env_params: Any = None) -> RunnerState:
        env_params = default_env_params if env_params is None else env_params
        validate_hparams(hparams)
        key = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        k_agent, k_env, k_run = jax.random.split(key, 3)
        agent = init_agent(k_agent, config, hparams, spec.obs_dim, spec.dim, spec.discrete)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_env, config.num_envs), env_params)
        obs = _flat_obs(obs, config.num_envs)
        action = jnp.zeros((config.num_envs,), jnp.int32) if spec.discrete else jnp.zeros((config.num_envs, spec.dim))
        buffer = buffer_init(Transition(obs, action, jnp.zeros(config.num_envs), obs,
                                        jnp.zeros(config.num_envs, bool), jnp.zeros(config.num_envs, bool)),
                             config.buffer_size)
        explore_state = None
        if config.explore is not None:
            explore_state = explore.init(jax.random.fold_in(key, 1), config.explore, spec.obs_dim, spec.dim)
        mix_state = None
        if config.synthetic is not None:
            mix_state = synthetic.mix_init(jax.random.fold_in(key, 2), config.synthetic, spec.obs_dim, spec.dim)
        return RunnerState(agent=agent, buffer=buffer, env_state=env_state, obs=obs,
                           episode_return=jnp.zeros(config.num_envs, jnp.float32), key=k_run,
                           iteration=jnp.int32(0), env_steps=jnp.int32(0), explore=explore_state,
                           synthetic=mix_state)

    def run(state: RunnerState, hparams: Hparams, num_iterations: int, env_params: Any = None):
        env_params = default_env_params if env_params is None else env_params
        validate_hparams(hparams)
        return jax.lax.scan(partial(_iteration, ctx, hparams, env_params), state, None, length=num_iterations)

    def train(key: jax.Array, hparams: Hparams, env_params: Any = None):
        return run(init(key, hparams, env_params), hparams, config.num_iterations, env_params)

    def evaluate(state: RunnerState, key: jax.Array, hparams: Hparams, num_steps: int, env_params: Any = None,
                 num_envs: int | None = None):
        """Greedy policy in `num_envs` (static; default `config.num_envs`) fresh environments for `num_steps`
        steps each (see `greedy_evaluation`)."""
        policy = lambda k, obs: _to_env_action(
            spec, act(k, config, state.agent, obs, hparams, spec.dim, spec.discrete, explore=False))
        return greedy_evaluation(env, default_env_params if env_params is None else env_params, policy, key,
                                 num_steps, config.num_envs if num_envs is None else num_envs)

    return Trainer(config, spec, init, run, train, evaluate)


def make_train(config: AgentConfig, env: Any, env_params: Any) -> Callable:
    """`train(key, hparams, env_params=None) -> (RunnerState, metrics)`: a whole run, jittable end to end."""
    return make_trainer(config, env, env_params).train


LOSS_KEYS = ("critic_loss", "actor_loss", "bc_loss", "value_loss")


def check_finite(metrics: dict[str, Any], first_iteration: int = 0) -> None:
    """Raise FloatingPointError naming the loss and the (0-based, global) iteration of the first NaN/inf.

    `metrics` leaves: [iterations] or [runs, iterations]. Iterations before updates started are skipped."""
    updating = np.asarray(metrics.get("updating", 1.0))
    for name in LOSS_KEYS:
        if name not in metrics:
            continue
        values = np.asarray(metrics[name], np.float64)
        bad = ~np.isfinite(values) & (np.broadcast_to(updating, values.shape) > 0)
        if bad.any():
            idx = np.argwhere(bad)[0]
            it = int(idx[-1]) + first_iteration
            where = f" (run {int(idx[0])})" if values.ndim > 1 else ""
            raise FloatingPointError(f"{name} became {values[tuple(idx)]} at iteration {it}{where}; stopping the run")
