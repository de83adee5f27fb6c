"""The on-policy loop (PPO, A2C, DM-PPO): `make_trainer(config, env, env_params)` with the same `Trainer` interface as the
off-policy loop, so the runner, sweeps, checkpoints and resume work unchanged.

One iteration, all inside one `lax.scan` over iterations (PureJaxRL's design, with named module-level pieces):
`_env_step` x `num_steps` (vmapped over `num_envs` environments, auto-reset), GAE over the time-major rollout,
then `update_epochs` x (`_update_epoch`: a fresh permutation, `num_minibatches` x `_minibatch_step`). The optimizer
(global-norm clip, Adam with eps 1e-5, learning rate annealed linearly to 0 when `anneal_lr`) is rebuilt from the
traced hparams inside each pure function (`_optimizer`), so a sweep over lr or max_grad_norm is one program.

Time-limit truncation bootstraps: each step stores its own pre-reset next observation
(`info["final_observation"]`), whose values V(s') one batched critic pass computes after the rollout, and GAE cuts
the bootstrap only on termination.

Per-iteration metrics: `episodes`, `return_mean` (NaN if none finished), `reward_mean`, `optimum_fraction` (where
the env has `optimal_value`), `env_steps`, `updates`, the loss terms averaged over the iteration's minibatches
(`actor_loss`, `value_loss`, `entropy`, `approx_kl`, `clip_fraction`, `ratio_mean`), `first_ratio_error` =
max |ratio - 1| on the iteration's first minibatch (0 up to float rounding: the policy has not moved yet), `lr`.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax
from flax import struct

import math

import numpy as np

from jaxdiff_rl.agents.ppo import ActorCritic, PPOConfig, PPOHparams, ValueMLP, gae, ppo_loss, validate_ppo_hparams
from jaxdiff_rl.diffusion import SamplerConfig, make_schedule, sample
from jaxdiff_rl.diffusion.flow import flow_chain_log_prob, flow_sample, flow_trajectory_log_prob
from jaxdiff_rl.diffusion.samplers import ddpm_log_prob, ddpm_trajectory_log_prob
from jaxdiff_rl.nets import Denoiser
from jaxdiff_rl.train.off_policy import (ActionSpec, Trainer, _flat_obs, _optimal_values, _to_env_action, action_spec,
                                         greedy_evaluation, optimum_fraction)

__all__ = ["OnPolicyState", "RolloutBatch", "make_trainer"]


@struct.dataclass
class OnPolicyState:
    """What a run carries between iterations (a pytree: checkpointable, vmappable).

    params: actor-critic parameters; opt_state: optax state; env_state: [N] env states; obs: [N, obs_dim];
    episode_return: [N]; key: raw uint32 [2]; iteration, env_steps, updates: int32 counters."""

    params: Any
    opt_state: Any
    env_state: Any
    obs: jax.Array
    episode_return: jax.Array
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array
    updates: jax.Array


class RolloutBatch(NamedTuple):
    """One rollout, time-major [T, N, ...]: obs, action (unclipped sample), log_prob and value at collection,
    final_obs = the pre-reset next observation s' (its value V(s') is computed for the whole rollout in one batched
    critic pass after the scan, not one small pass per step), reward, terminated, done."""

    obs: jax.Array
    action: jax.Array
    log_prob: jax.Array
    value: jax.Array
    final_obs: jax.Array
    reward: jax.Array
    terminated: jax.Array
    done: jax.Array


class _Ctx(NamedTuple):
    config: PPOConfig
    env: Any
    spec: ActionSpec
    net: ActorCritic | None  # Gaussian / categorical actor-critic
    denoiser: Denoiser | None = None  # DM-PPO: the shared denoiser as the actor ...
    critic: ValueMLP | None = None  # ... and a separate critic
    schedule: Any = None
    sampler: SamplerConfig | None = None
    step_fn: Callable | None = None  # replaces `_env_step` (IPPO / MAPPO: `train.multi_agent_on_policy`)


# --- the policy: one set of functions for the Gaussian / categorical actor-critic and the diffusion actor ---------
def _policy_init(ctx: _Ctx, key: jax.Array) -> Any:
    obs = jnp.zeros((1, ctx.spec.obs_dim), jnp.float32)
    if ctx.denoiser is None:
        return ctx.net.init(key, obs)
    k_actor, k_critic = jax.random.split(key)
    actor = ctx.denoiser.init(k_actor, jnp.zeros((1, ctx.spec.dim), jnp.float32), jnp.zeros((1,), jnp.int32), obs)
    return {"denoiser": actor, "critic": ctx.critic.init(k_critic, obs)}


def _model_fn(ctx: _Ctx, params: Any) -> Callable:
    return lambda x, t, cond, use_cond: ctx.denoiser.apply(params["denoiser"], x, t, cond, use_cond)


def _flow(ctx: _Ctx) -> bool:
    return ctx.config.generator == "flow"


def _chain_log_prob(ctx: _Ctx, params: Any, obs: jax.Array, chain: jax.Array) -> jax.Array:
    """log pi of stored chains [B, T+1, A] (x_T .. x_0) given obs [B, obs_dim] -> [B]."""
    if _flow(ctx):
        return flow_chain_log_prob(_model_fn(ctx, params), jnp.swapaxes(chain, 0, 1), obs, float(ctx.config.min_std),
                                   clip_x0=(-1.0, 1.0), last_steps=ctx.config.finetune_steps)
    return ddpm_log_prob(_model_fn(ctx, params), ctx.schedule, jnp.swapaxes(chain, 0, 1), obs, ctx.sampler,
                         last_steps=ctx.config.finetune_steps)


def _kernel_entropy(ctx: _Ctx) -> float:
    """Sum of the counted kernels' Gaussian entropies (the chain's entropy is intractable; this is a constant)."""
    t = np.arange(ctx.config.diffusion_steps)
    counted = (t > 0) & (t < (ctx.config.finetune_steps or ctx.config.diffusion_steps))
    if _flow(ctx):  # K - 1 (or finetune_steps - 1) kernels of std min_std
        return float(ctx.spec.dim * counted.sum() * (0.5 * math.log(2 * math.pi * math.e) + math.log(ctx.config.min_std)))
    std = np.maximum(np.exp(0.5 * np.asarray(ctx.schedule.posterior_log_variance_clipped)), ctx.config.min_std)
    return float(ctx.spec.dim * np.sum(np.where(counted, 0.5 * math.log(2 * math.pi * math.e) + np.log(std), 0.0)))


def _policy_act(ctx: _Ctx, params: Any, key: jax.Array, obs: jax.Array):
    """Sample actions for obs [N, obs_dim]: (stored [N, ...] (the action, or DM-PPO's chain [N, T+1, A]),
    action [N] / [N, A] in the actor's space, log_prob [N], value [N])."""
    if ctx.denoiser is None:
        pi, value = ctx.net.apply(params, obs)
        action = pi.sample(seed=key)
        return action, action, pi.log_prob(action), value
    if _flow(ctx):
        x0, trajectory = flow_sample(key, _model_fn(ctx, params), (obs.shape[0], ctx.spec.dim), obs,
                                     steps=ctx.config.diffusion_steps, clip_x0=(-1.0, 1.0),
                                     noise_std=float(ctx.config.min_std), return_trajectory=True)
        log_prob = flow_trajectory_log_prob(trajectory, float(ctx.config.min_std), ctx.config.finetune_steps)
        return jnp.swapaxes(trajectory["x"], 0, 1), x0, log_prob, ctx.critic.apply(params["critic"], obs)
    x0, trajectory = sample(key, _model_fn(ctx, params), ctx.schedule, (obs.shape[0], ctx.spec.dim), cond=obs,
                            config=ctx.sampler)
    log_prob = ddpm_trajectory_log_prob(ctx.schedule, trajectory, ctx.sampler, ctx.config.finetune_steps)
    return jnp.swapaxes(trajectory["x"], 0, 1), x0, log_prob, ctx.critic.apply(params["critic"], obs)


def _policy_evaluate(ctx: _Ctx, params: Any, obs: jax.Array, stored: jax.Array):
    """(log_prob [B], entropy [B], value [B]) of stored actions / chains under `params`."""
    if ctx.denoiser is None:
        pi, value = ctx.net.apply(params, obs)
        return pi.log_prob(stored), pi.entropy(), value
    log_prob = _chain_log_prob(ctx, params, obs, stored)
    return log_prob, jnp.full_like(log_prob, _kernel_entropy(ctx)), ctx.critic.apply(params["critic"], obs)


def _policy_value(ctx: _Ctx, params: Any, obs: jax.Array) -> jax.Array:
    return ctx.net.apply(params, obs)[1] if ctx.denoiser is None else ctx.critic.apply(params["critic"], obs)


def _policy_greedy(ctx: _Ctx, params: Any, key: jax.Array, obs: jax.Array) -> jax.Array:
    """The greedy action: argmax / the Gaussian's mean; a diffusion actor's one reverse chain (as off-policy)."""
    if ctx.denoiser is None:
        return ctx.net.apply(params, obs)[0].mode()
    if _flow(ctx):  # the noiseless ODE
        return flow_sample(key, _model_fn(ctx, params), (obs.shape[0], ctx.spec.dim), obs,
                           steps=ctx.config.diffusion_steps, clip_x0=(-1.0, 1.0))
    return sample(key, _model_fn(ctx, params), ctx.schedule, (obs.shape[0], ctx.spec.dim), cond=obs,
                  config=dataclasses.replace(ctx.sampler, return_trajectory=False))


def _optimizer(config: PPOConfig, hparams: PPOHparams) -> optax.GradientTransformation:
    updates_total = config.num_iterations * config.update_epochs * config.num_minibatches
    lr = optax.linear_schedule(hparams.lr, 0.0, updates_total) if config.anneal_lr else hparams.lr
    return optax.chain(optax.clip_by_global_norm(hparams.max_grad_norm), optax.adam(lr, eps=1e-5))


def _current_lr(config: PPOConfig, hparams: PPOHparams, updates: jax.Array) -> jax.Array:
    if not config.anneal_lr:
        return jnp.asarray(hparams.lr, jnp.float32)
    total = config.num_iterations * config.update_epochs * config.num_minibatches
    return hparams.lr * (1.0 - jnp.minimum(updates, total) / total)


def _env_action(spec: ActionSpec, action: jax.Array) -> jax.Array:
    return action if spec.discrete else _to_env_action(spec, jnp.clip(action, -1.0, 1.0))


def _env_step(ctx: _Ctx, env_params: Any, rs: OnPolicyState, key: jax.Array):
    """One vectorised step with the current stochastic policy; returns the transition and its per-lane stats [N]
    (summed once after the rollout's scan, not per step)."""
    n = ctx.config.num_envs
    k_act, k_env = jax.random.split(key)
    stored, action, log_prob, value = _policy_act(ctx, rs.params, k_act, rs.obs)
    optimum = _optimal_values(ctx.env, rs.env_state, env_params)
    obs, env_state, reward, terminated, truncated, info = jax.vmap(ctx.env.step, in_axes=(0, 0, 0, None))(
        jax.random.split(k_env, n), rs.env_state, _env_action(ctx.spec, action), env_params)
    reward = jnp.asarray(reward, jnp.float32)
    done = jnp.logical_or(terminated, truncated)
    running = rs.episode_return + reward
    step = RolloutBatch(rs.obs, stored, log_prob, value, _flat_obs(info["final_observation"], n), reward,
                        terminated.astype(jnp.float32), done.astype(jnp.float32))
    stats = {"finished_return": jnp.where(done, running, 0.0), "optimum": optimum}
    rs = rs.replace(env_state=env_state, obs=_flat_obs(obs, n), episode_return=jnp.where(done, 0.0, running),
                    env_steps=rs.env_steps + n)
    return rs, (step, stats)


def _loss(ctx: _Ctx, hparams: PPOHparams, params: Any, mb: tuple) -> tuple[jax.Array, Any]:
    obs, action, old_log_prob, old_value, advantages, returns = mb
    log_prob, entropy, value = _policy_evaluate(ctx, params, obs, action)
    terms = ppo_loss(log_prob, old_log_prob, advantages, value, old_value, returns, entropy, hparams, ctx.config)
    return terms.total, terms


def _minibatch_step(ctx: _Ctx, hparams: PPOHparams, carry: tuple, mb: tuple):
    params, opt_state = carry
    grads, terms = jax.grad(partial(_loss, ctx, hparams), has_aux=True)(params, mb)
    updates, opt_state = _optimizer(ctx.config, hparams).update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), terms


def _update_epoch(ctx: _Ctx, hparams: PPOHparams, flat: tuple, carry: tuple, key: jax.Array):
    """One pass over the flattened rollout [B, ...] in `num_minibatches` shuffled minibatches."""
    config = ctx.config
    perm = jax.random.permutation(key, config.num_envs * config.num_steps)
    shuffled = jax.tree_util.tree_map(
        lambda x: x[perm].reshape(config.num_minibatches, config.minibatch_size, *x.shape[1:]), flat)
    return jax.lax.scan(partial(_minibatch_step, ctx, hparams), carry, shuffled)


def _iteration(ctx: _Ctx, hparams: PPOHparams, env_params: Any, rs: OnPolicyState, _: Any):
    config = ctx.config
    key, k_roll, k_epochs = jax.random.split(rs.key, 3)
    step_fn = _env_step if ctx.step_fn is None else ctx.step_fn
    rs, (batch, stats) = jax.lax.scan(partial(step_fn, ctx, env_params), rs,
                                      jax.random.split(k_roll, config.num_steps))
    steps = config.num_steps * config.num_envs
    if config.bootstrap_truncated:
        next_value = _policy_value(ctx, rs.params, batch.final_obs.reshape(steps, -1)).reshape(batch.value.shape)
        cut = batch.terminated
    else:  # PureJaxRL's convention: every episode end is a termination
        next_value = jnp.concatenate([batch.value[1:], _policy_value(ctx, rs.params, rs.obs)[None]])
        cut = batch.done
    advantages, returns = gae(batch.reward, batch.value, next_value, cut, batch.done, hparams.gamma,
                              hparams.gae_lambda)
    flat = jax.tree_util.tree_map(lambda x: x.reshape(steps, *x.shape[2:]),
                                  (batch.obs, batch.action, batch.log_prob, batch.value, advantages, returns))
    lr = _current_lr(config, hparams, rs.updates)
    (params, opt_state), terms = jax.lax.scan(partial(_update_epoch, ctx, hparams, flat), (rs.params, rs.opt_state),
                                              jax.random.split(k_epochs, config.update_epochs))
    totals = {"episodes": jnp.sum(batch.done), "return_sum": jnp.sum(stats["finished_return"]),
              "reward_sum": jnp.sum(batch.reward), "optimum_sum": jnp.sum(stats["optimum"])}
    updates = rs.updates + config.update_epochs * config.num_minibatches
    metrics = {
        "episodes": totals["episodes"],
        "return_mean": jnp.where(totals["episodes"] > 0, totals["return_sum"] / jnp.maximum(totals["episodes"], 1),
                                 jnp.nan),
        "reward_mean": totals["reward_sum"] / steps,
        "optimum_fraction": optimum_fraction(env_params, totals["reward_sum"], totals["optimum_sum"]),
        "env_steps": rs.env_steps,
        "updates": updates,
        "lr": lr,
        "first_ratio_error": jnp.abs(terms.ratio_mean[0, 0] - 1.0),
        **{name: jnp.mean(getattr(terms, name)) for name in
           ("actor_loss", "value_loss", "entropy", "approx_kl", "clip_fraction", "ratio_mean")},
    }
    if "team_reward" in stats:  # multi-agent lanes: the team's reward per env step, and vs the env's reference
        metrics["reward_mean"] = jnp.mean(stats["team_reward"])
        metrics["reference_fraction"] = jnp.sum(stats["team_reward"]) / jnp.sum(stats["reference"])
    rs = rs.replace(params=params, opt_state=opt_state, key=key, iteration=rs.iteration + 1, updates=updates)
    return rs, metrics


def _check_env(config: PPOConfig, spec: ActionSpec) -> None:
    if config.actor == "categorical" and not spec.discrete:
        raise ValueError("PPOConfig.actor='categorical' needs a Discrete action space (use actor='gaussian')")
    if config.actor in ("gaussian", "diffusion") and spec.discrete:
        raise ValueError(f"PPOConfig.actor={config.actor!r} needs a Box action space (use actor='categorical')")


def make_trainer(config: PPOConfig, env: Any, env_params: Any) -> Trainer:
    """The pure functions of an on-policy run (see the module docstring); validated before anything compiles."""
    if not isinstance(config, PPOConfig):
        raise TypeError(f"config must be a PPOConfig, got {type(config).__name__}")
    from envs.multi_agent import MultiAgentEnv
    if isinstance(env, MultiAgentEnv):
        raise ValueError(f"{config.algo} is single-agent; {getattr(env, 'name', type(env).__name__)} is a multi-agent "
                         "environment: use algo='ippo' or 'mappo' (train.multi_agent_on_policy)")
    spec = action_spec(env, env_params)
    _check_env(config, spec)
    if config.actor == "diffusion":
        ctx = _Ctx(config, env, spec, None,
                   denoiser=Denoiser(out_dim=spec.dim, cond_dim=spec.obs_dim, hidden_dims=tuple(config.hidden_dims),
                                     time_dim=config.time_dim),
                   critic=ValueMLP(tuple(config.hidden_dims), config.activation),
                   schedule=make_schedule(config.schedule, config.diffusion_steps),
                   sampler=SamplerConfig(method="ddpm", clip_x0=(-1.0, 1.0), min_std=float(config.min_std),
                                         return_trajectory=True))
    else:
        ctx = _Ctx(config, env, spec, ActorCritic(spec.dim, spec.discrete, tuple(config.hidden_dims), config.activation))
    default_env_params = env_params

    def init(key: jax.Array, hparams: PPOHparams, env_params: Any = None) -> OnPolicyState:
        env_params = default_env_params if env_params is None else env_params
        validate_ppo_hparams(hparams)
        key = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        k_net, k_env, k_run = jax.random.split(key, 3)
        params = _policy_init(ctx, k_net)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_env, config.num_envs), env_params)
        return OnPolicyState(params=params, opt_state=_optimizer(config, hparams).init(params), env_state=env_state,
                             obs=_flat_obs(obs, config.num_envs), episode_return=jnp.zeros(config.num_envs),
                             key=k_run, iteration=jnp.int32(0), env_steps=jnp.int32(0), updates=jnp.int32(0))

    def run(state: OnPolicyState, hparams: PPOHparams, num_iterations: int, env_params: Any = None):
        env_params = default_env_params if env_params is None else env_params
        validate_ppo_hparams(hparams)
        return jax.lax.scan(partial(_iteration, ctx, hparams, env_params), state, None, length=num_iterations)

    def train(key: jax.Array, hparams: PPOHparams, env_params: Any = None):
        return run(init(key, hparams, env_params), hparams, config.num_iterations, env_params)

    def evaluate(state: OnPolicyState, key: jax.Array, hparams: PPOHparams, num_steps: int, env_params: Any = None,
                 num_envs: int | None = None):
        """Greedy policy (argmax / the Gaussian's mean, clipped) in `num_envs` (default the config's) fresh
        environments for `num_steps` steps (see `greedy_evaluation`)."""
        policy = lambda k, obs: _env_action(spec, _policy_greedy(ctx, state.params, k, obs))
        return greedy_evaluation(env, default_env_params if env_params is None else env_params, policy, key,
                                 num_steps, config.num_envs if num_envs is None else num_envs)

    return Trainer(config, spec, init, run, train, evaluate)


def make_train(config: PPOConfig, env: Any, env_params: Any) -> Callable:
    """`train(key, hparams, env_params=None) -> (OnPolicyState, metrics)`: a whole run, jittable end to end."""
    return make_trainer(config, env, env_params).train
