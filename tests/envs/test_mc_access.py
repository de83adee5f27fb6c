"""mc-access: collisions and rates vs a NumPy loop, the enumerated optimum vs a Hungarian-algorithm matching."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment

import envs
from envs.mc_access import access_rates, best_assignment


def np_step(choice, rates):
    out = np.zeros(len(choice))
    for n, c in enumerate(choice):
        if c > 0 and sum(1 for m in choice if m == c) == 1:
            out[n] = rates[n, c - 1]
    return out


def test_rates_and_collisions_match_numpy():
    rng = np.random.default_rng(0)
    for _ in range(50):
        rates = rng.uniform(0, 4, (5, 3))
        choice = rng.integers(0, 4, 5)
        got, collided = access_rates(jnp.asarray(choice), jnp.asarray(rates, jnp.float32))
        np.testing.assert_allclose(np.asarray(got), np_step(choice, rates), rtol=1e-6)
        expected = [c > 0 and sum(1 for m in choice if m == c) > 1 for c in choice]
        np.testing.assert_array_equal(np.asarray(collided), expected)


@pytest.mark.parametrize("n,c", [(4, 3), (3, 5)])
def test_enumerated_optimum_is_the_maximum_weight_matching(n, c):
    rng = np.random.default_rng(1)
    for _ in range(20):
        rates = rng.uniform(0, 4, (n, c)).astype(np.float32)
        choice, value = best_assignment(jnp.asarray(rates))
        rows, cols = linear_sum_assignment(-rates)
        np.testing.assert_allclose(float(value), rates[rows, cols].sum(), rtol=1e-5)
        np.testing.assert_allclose(np_step(np.asarray(choice), rates).sum(), float(value), rtol=1e-5)


def test_env_steps_and_bad_input():
    env, params = envs.make("mc-access", num_users=3, num_channels=2, max_steps_in_episode=2)
    key = jax.random.PRNGKey(0)
    obs, state = env.reset(key, params)
    actions = {"user_0": jnp.int32(1), "user_1": jnp.int32(1), "user_2": jnp.int32(2)}
    rates = np.asarray(state.rates)
    obs, new, rewards, dones, infos = env.step(key, state, actions, params)
    np.testing.assert_allclose(float(rewards["user_0"]), rates[2, 1], rtol=1e-6)
    np.testing.assert_array_equal(np.asarray(obs["user_0"])[-2:], [0.0, 1.0])  # user 0 collided
    np.testing.assert_array_equal(np.asarray(obs["user_2"])[-2:], [1.0, 0.0])
    assert not bool(dones["__all__"])
    with pytest.raises(ValueError, match="user_2"):
        env.step(key, state, {"user_0": jnp.int32(1), "user_1": jnp.int32(0)}, params)
    with pytest.raises(ValueError, match=r"user_1.*\[0, 3\)"):
        env.step(key, state, {**actions, "user_1": jnp.int32(3)}, params)
    with pytest.raises(TypeError, match="user_0.*integer"):
        env.step(key, state, {**actions, "user_0": 1.0}, params)
    with pytest.raises(ValueError, match="num_users"):
        envs.make("mc-access", num_users=1)
    with pytest.raises(ValueError, match="exceed"):
        best_assignment(jnp.ones((12, 5)))
