"""Vectorised policy rollouts: `num_envs` environments under `vmap`, `num_steps` under `lax.scan`, one jit.

Used to score baseline policies (random, heuristics, exact optima) and, later, trained agents.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from envs.environment import Environment, Policy

__all__ = ["RolloutStats", "rollout", "timed_rollout", "TimedRollout", "episode_steps", "baseline_rollouts",
           "optimum_fractions"]


@struct.dataclass
class RolloutStats:
    """Totals over all lanes of a rollout (scalars).

    Attributes:
        return_sum: sum of the returns of the episodes that ended inside the rollout.
        return_sq_sum: sum of their squares (for the spread).
        episodes: number of episodes that ended.
        reward_sum: sum of all rewards (including unfinished episodes).
        steps: number of environment steps taken (num_envs * num_steps).
    """

    return_sum: jax.Array
    return_sq_sum: jax.Array
    episodes: jax.Array
    reward_sum: jax.Array
    steps: jax.Array

    @property
    def mean_return(self) -> float:
        return float(self.return_sum / jnp.maximum(self.episodes, 1))

    @property
    def std_return(self) -> float:
        n = jnp.maximum(self.episodes, 1)
        return float(jnp.sqrt(jnp.maximum(self.return_sq_sum / n - (self.return_sum / n) ** 2, 0.0)))


def _lane_step(env: Environment, policy: Policy, params: Any, carry, key):
    obs, state, running = carry
    k_act, k_step = jax.random.split(key)
    action = policy(k_act, obs, state, params)
    obs, state, reward, terminated, truncated, _ = env.step(k_step, state, action, params)
    running = running + reward
    done = jnp.logical_or(terminated, truncated)
    finished = jnp.where(done, running, 0.0)
    return (obs, state, jnp.where(done, 0.0, running)), (reward, done, finished)


@partial(jax.jit, static_argnames=("env", "policy", "num_envs", "num_steps"))
def rollout(
    env: Environment, params: Any, policy: Policy, key: jax.Array, num_envs: int, num_steps: int
) -> RolloutStats:
    """Run `policy` in `num_envs` parallel environments for `num_steps` steps each (auto-reset).

    Args:
        env, params: the environment and its `EnvParams` (shared by all lanes).
        policy: `policy(key, obs, state, params) -> action`, per lane (it is vmapped here).
        key: PRNG key.
        num_envs, num_steps: static sizes.
    Returns:
        RolloutStats with totals over lanes.
    """
    k_reset, k_scan = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), params)
    lane = jax.vmap(partial(_lane_step, env, policy, params))

    def body(carry, key):
        carry, (reward, done, finished) = lane(carry, jax.random.split(key, num_envs))
        totals = (
            jnp.sum(finished),
            jnp.sum(finished**2),
            jnp.sum(done.astype(jnp.int32)),
            jnp.sum(reward),
        )
        return carry, totals

    init = (obs, state, jnp.zeros(num_envs, jnp.float32))
    _, (ret, ret_sq, episodes, rewards) = jax.lax.scan(body, init, jax.random.split(k_scan, num_steps))
    return RolloutStats(
        return_sum=jnp.sum(ret),
        return_sq_sum=jnp.sum(ret_sq),
        episodes=jnp.sum(episodes),
        reward_sum=jnp.sum(rewards),
        steps=jnp.asarray(num_envs * num_steps),
    )


@dataclass(frozen=True)
class TimedRollout:
    stats: RolloutStats
    compile_s: float
    run_s: float

    @property
    def steps_per_s(self) -> float:
        return float(self.stats.steps) / self.run_s


def timed_rollout(
    env: Environment, params: Any, policy: Policy, key: jax.Array, num_envs: int, num_steps: int
) -> TimedRollout:
    """`rollout` with wall-clock timing: compile (AOT lower + compile) separately from the run."""
    t0 = time.perf_counter()
    compiled = rollout.lower(env, params, policy, key, num_envs, num_steps).compile()
    t1 = time.perf_counter()
    stats = jax.block_until_ready(compiled(params, key))
    t2 = time.perf_counter()
    return TimedRollout(stats=stats, compile_s=t1 - t0, run_s=t2 - t1)


def episode_steps(env: Environment, params: Any, min_steps: int = 1) -> int:
    """Scan length that contains (almost surely) one whole episode per lane: 1.2 x the expected episode length
    (random-length episodes, e.g. AIGC's Poisson arrivals, end within it), and at least `min_steps`."""
    return max(min_steps, math.ceil(1.2 * env.expected_episode_length(params)))


def baseline_rollouts(
    env: Environment, params: Any, key: jax.Array, num_envs: int, min_steps: int = 1
) -> dict[str, TimedRollout]:
    """Every baseline policy of `env.policies()` (random, heuristics, exact optimum) rolled out over
    `episode_steps` steps in `num_envs` lanes with the same key: {policy name: TimedRollout}."""
    steps = episode_steps(env, params, min_steps)
    return {name: timed_rollout(env, params, policy, key, num_envs, steps) for name, policy in env.policies().items()}


@partial(jax.jit, static_argnames=("env", "policy", "num_envs", "num_steps"))
def _optimum_fraction(env: Environment, params: Any, policy: Policy, key: jax.Array, num_envs: int, num_steps: int):
    from jaxdiff_rl.train import optimum_fraction

    k_reset, k_scan = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), params)

    def lane(obs, state, key):
        k_act, k_step = jax.random.split(key)
        optimum = env.optimal_value(state, params)
        obs, state, reward, *_ = env.step(k_step, state, policy(k_act, obs, state, params), params)
        return obs, state, reward, optimum

    def body(carry, key):
        obs, state, reward, optimum = jax.vmap(lane)(*carry, jax.random.split(key, num_envs))
        return (obs, state), (jnp.sum(reward), jnp.sum(optimum))

    _, (rewards, optima) = jax.lax.scan(body, (obs, state), jax.random.split(k_scan, num_steps))
    return optimum_fraction(params, jnp.sum(rewards), jnp.sum(optima))


def optimum_fractions(env: Environment, params: Any, key: jax.Array, num_envs: int, num_steps: int = 1) -> dict[str, float]:
    """Every baseline policy of an environment with an exact optimum (`env.optimal_value`), scored like the
    training loop's `optimum_fraction`: sum of its objective / sum of the optimal objective over `num_envs` lanes x
    `num_steps` steps, every policy on the same instances (same key). {policy name: fraction}."""
    if not hasattr(env, "optimal_value"):
        raise ValueError(f"optimum_fractions: {type(env).__name__} has no optimal_value")
    return {name: float(_optimum_fraction(env, params, policy, key, num_envs, num_steps))
            for name, policy in env.policies().items()}
