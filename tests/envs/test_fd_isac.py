"""FD-ISAC: sum rate against a NumPy loop, MMSE optimality, DL optimum, the upper bound, constraints, mobility."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.fd_isac import downlink_optimum, fd_sum_rate, mmse_receivers, upper_bound
from envs.channels import noise_power
from tests.envs.reference_numpy import fd_sum_rate_loop, water_filling_bisection

SIGMA2 = 10 ** ((-97 - 30) / 10)  # -97 dBm over the normalised 1 Hz


@pytest.fixture(scope="module")
def setup():
    env, params = envs.make("fd-isac")
    keys = jax.random.split(jax.random.key(0), 100)
    states = jax.vmap(lambda k: env.reset_env(k, params)[1])(keys)
    actions = jax.vmap(env.action_space(params).sample)(jax.random.split(jax.random.key(1), 100))
    decisions = jax.vmap(lambda a: env.action_to_decision(a, params))(actions)
    return env, params, states, decisions


def test_sum_rate_matches_numpy_loop(setup):
    env, params, states, (V, W, p) = setup
    assert float(noise_power(params.noise_dbm_per_hz, params.bandwidth)) == pytest.approx(SIGMA2, rel=1e-5)
    rates = jax.vmap(lambda s, v, w, q: fd_sum_rate(*env.channels(s, params), v, w, q, params)[0])(states, V, W, p)
    for i in range(100):
        ref = fd_sum_rate_loop(np.asarray(states.dl_pos[i], np.float64), np.asarray(states.ul_pos[i], np.float64),
                               np.asarray(V[i], np.complex128), np.asarray(W[i], np.complex128),
                               np.asarray(p[i], np.float64), SIGMA2)
        assert float(rates[i]) == pytest.approx(ref, rel=1e-5)


def test_action_mapping_satisfies_constraints():
    env, params = envs.make("fd-isac")
    n = env.action_space(params).shape[0]
    actions = jnp.concatenate([
        jax.random.uniform(jax.random.key(2), (500, n), minval=-1, maxval=1),
        jnp.ones((1, n)), -jnp.ones((1, n)), jnp.zeros((1, n)), 0.01 * jnp.ones((1, n)),
    ])
    V, W, p = jax.vmap(lambda a: env.action_to_decision(a, params))(actions)
    power = np.asarray(jnp.sum(jnp.abs(V) ** 2, axis=(1, 2)))
    assert power.max() <= 3.0 * (1 + 1e-5)  # (13b)
    assert float(p.min()) >= 0.0 and float(p.max()) <= 1.0  # (13c)
    np.testing.assert_allclose(jnp.linalg.norm(W, axis=-1), 1.0, rtol=1e-5)
    assert power[-1] == pytest.approx(3.0 * 0.01**2 * 72, rel=1e-4)  # small actions give small powers
    # round trip through decision_to_action for a feasible decision
    V0, W0, p0 = env.action_to_decision(actions[0], params)
    V1, W1, p1 = env.action_to_decision(env.decision_to_action(V0, W0, p0, params), params)
    np.testing.assert_allclose(V1, V0, rtol=1e-5, atol=1e-7) and np.testing.assert_allclose(p1, p0, rtol=1e-6)


def test_mmse_receivers_maximise_every_uplink_sinr(setup):
    env, params, states, (V, W, p) = setup
    rng = np.random.default_rng(0)
    for i in range(5):
        s = jax.tree_util.tree_map(lambda a: a[i], states)
        g, h = env.channels(s, params)
        w_opt = mmse_receivers(h, V[i], p[i], params)
        _, _, ul_opt = fd_sum_rate(g, h, V[i], w_opt, p[i], params)
        w_rand = rng.normal(size=(10_000, 4, 6)) + 1j * rng.normal(size=(10_000, 4, 6))
        w_rand = jnp.asarray(w_rand / np.linalg.norm(w_rand, axis=-1, keepdims=True), jnp.complex64)
        ul_rand = jax.vmap(lambda w: fd_sum_rate(g, h, V[i], w, p[i], params)[2])(w_rand)
        assert np.all(np.asarray(ul_rand) <= np.asarray(ul_opt)[None] * (1 + 1e-4) + 1e-7)


def test_downlink_optimum_and_upper_bound(setup):
    env, params, states, (V, W, p) = setup
    rng = np.random.default_rng(1)
    for i in range(5):
        s = jax.tree_util.tree_map(lambda a: a[i], states)
        g, h = env.channels(s, params)
        v_opt = downlink_optimum(g, params)
        _, dl_opt, _ = fd_sum_rate(g, h, v_opt, W[i], p[i], params)
        gains = np.sum(np.abs(np.asarray(g, np.complex128)) ** 2, -1) / SIGMA2
        powers = water_filling_bisection(gains, 1.0, 3.0)
        assert float(dl_opt.sum()) == pytest.approx(np.sum(np.log2(1 + gains * powers)), rel=1e-5)
        v_rand = rng.normal(size=(2000, 6, 6)) + 1j * rng.normal(size=(2000, 6, 6))
        v_rand *= np.sqrt(3.0) / np.linalg.norm(v_rand, axis=(1, 2), keepdims=True)
        dl_rand = jax.vmap(lambda v: fd_sum_rate(g, h, v, W[i], p[i], params)[1].sum())(jnp.asarray(v_rand, jnp.complex64))
        assert float(dl_rand.max()) <= float(dl_opt.sum()) * (1 + 1e-5)
    # R' bounds C for random actions and for the reference policy
    bound = jax.vmap(lambda s: upper_bound(*env.channels(s, params), params))(states)
    rates = jax.vmap(lambda s, v, w, q: fd_sum_rate(*env.channels(s, params), v, w, q, params)[0])(states, V, W, p)
    ref = jax.vmap(lambda s: fd_sum_rate(*env.channels(s, params), *env.reference_decision(s, params), params)[0])(states)
    assert bool(jnp.all(rates <= bound)) and bool(jnp.all(ref <= bound * (1 + 1e-6)))
    assert float(jnp.mean(ref)) > 5 * float(jnp.mean(rates))  # the reference policy is a strong baseline


def test_designed_reward_and_mobility():
    env, params = envs.make("fd-isac", reward_mode="designed", step_std=80.0, max_steps_in_episode=1000)
    obs, state = env.reset(jax.random.key(3), params)
    action = env.action_space(params).sample(jax.random.key(4))
    _, _, reward, _, _, info = env.step(jax.random.key(5), state, action, params)
    g, h = env.channels(state, params)
    assert float(reward) == pytest.approx(float(info["sum_rate"] - upper_bound(g, h, params)), rel=1e-5, abs=1e-5)

    def body(state, key):
        _, state, *_ = env.step(key, state, action, params)
        return state, jnp.concatenate([state.dl_pos, state.ul_pos])

    _, pos = jax.lax.scan(body, state, jax.random.split(jax.random.key(6), 1000))
    r = np.linalg.norm(np.asarray(pos), axis=-1)
    assert r.max() <= 300.0 * (1 + 1e-6) and np.abs(np.diff(np.asarray(pos), axis=0)).max() > 50  # users move


@pytest.mark.parametrize("overrides,field", [({"num_dl": 0}, "num_dl"), ({"p_max": -1.0}, "p_max"),
                                             ({"clutter_angles": [-50.0, 100.0]}, "clutter_angles"),
                                             ({"reward_mode": "shaped"}, "reward_mode"), ({"radius": float("nan")}, "radius")])
def test_bad_params(overrides, field):
    with pytest.raises(ValueError, match=field):
        envs.make("fd-isac", **overrides)


def test_user_given_placements_are_validated():
    env, params = envs.make("fd-isac")
    state = env.make_state(np.zeros((6, 2)) + 10.0, np.zeros((4, 2)) - 20.0, params)
    assert state.dl_pos.shape == (6, 2)
    with pytest.raises(ValueError, match="dl_pos"):
        env.make_state(np.zeros((5, 2)), np.zeros((4, 2)), params)
    with pytest.raises(ValueError, match="ul_pos"):
        env.make_state(np.zeros((6, 2)), np.full((4, 2), np.nan), params)
    with pytest.raises(ValueError, match="cell"):
        env.make_state(np.full((6, 2), 400.0), np.zeros((4, 2)), params)
