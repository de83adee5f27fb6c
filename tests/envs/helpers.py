"""Test helpers: record a trajectory of raw `step_env` transitions with explicit resets."""

from __future__ import annotations

import jax
import jax.numpy as jnp


def record_transitions(env, params, key, num_steps, policy):
    """Roll `num_steps` transitions; returns a dict of stacked arrays (leading axis = step).

    Uses `step_env` (no auto-reset) so the pre-reset next state (the exogenous draws) is visible, then
    resets with `reset_env` when the episode ended. Keys: obs (before the step), action, reward, terminated,
    next_state (pre-reset), next_obs (pre-reset), state (before the step).
    """

    def body(carry, key):
        obs, state = carry
        k_act, k_step, k_reset = jax.random.split(key, 3)
        action = policy(k_act, obs, state, params)
        next_obs, next_state, reward, terminated, _ = env.step_env(k_step, state, action, params)
        done = jnp.logical_or(terminated, env.is_truncated(next_state, params))
        reset_obs, reset_state = env.reset_env(k_reset, params)
        carry_state = jax.tree_util.tree_map(lambda r, s: jnp.where(done, r, s), reset_state, next_state)
        carry_obs = jnp.where(done, reset_obs, next_obs)
        out = dict(
            obs=obs, state=state, action=action, reward=reward, terminated=terminated,
            next_obs=next_obs, next_state=next_state, reset_obs=reset_obs, reset_state=reset_state,
        )
        return (carry_obs, carry_state), out

    k0, k_scan = jax.random.split(key)
    init = env.reset_env(k0, params)
    _, out = jax.jit(lambda c, ks: jax.lax.scan(body, c, ks))(init, jax.random.split(k_scan, num_steps))
    out["initial_obs"], out["initial_state"] = init
    return jax.tree_util.tree_map(jax.device_get, out)
