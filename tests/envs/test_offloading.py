"""CO: costs against a NumPy loop, the exact solver against brute force and random feasible solutions."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.offloading import co_cost, co_features
from tests.envs.reference_numpy import co_brute_force, co_brute_force_within_delay, co_cost_loop, co_delay_loop


def _instances(n, key=0, **overrides):
    env, params = envs.make("co", **overrides)
    states = jax.vmap(lambda k: env.sample_instance(k, params))(jax.random.split(jax.random.key(key), n))
    return env, params, jax.tree_util.tree_map(np.asarray, states)


def _row(states, i):
    return [np.asarray(getattr(states, f)[i], np.float64) for f in ("size", "cpu", "weight", "gain")]


def test_cost_matches_numpy_loop_on_random_solutions():
    env, params, states = _instances(300)
    rng = np.random.default_rng(0)
    feats = np.asarray(jax.vmap(lambda s: co_features(s, params))(states))
    for i in range(300):
        d = rng.integers(0, 2, 3).astype(np.float32)
        f = rng.dirichlet(np.ones(3)) * d
        f = f / f.sum() if f.sum() > 0 else f
        ours = float(co_cost(jnp.asarray(feats[i]), jnp.asarray(d), jnp.asarray(f, jnp.float32)))
        assert ours == pytest.approx(co_cost_loop(*_row(states, i), d, f), rel=1e-5)


def test_exact_solver_beats_brute_force_and_random_solutions():
    env, params, states = _instances(12, key=1)
    rng = np.random.default_rng(1)
    for i in range(12):
        state = jax.tree_util.tree_map(lambda a: a[i], states)
        y, cost = env.solve(state, params)
        row = _row(states, i)
        assert float(cost) == pytest.approx(co_cost_loop(*row, np.asarray(y[:3]), np.asarray(y[3:])), rel=1e-5)
        brute = co_brute_force(*row, share_step=0.02)  # every decision, shares on a 0.02 grid
        assert float(cost) <= brute * (1 + 1e-6) and float(cost) == pytest.approx(brute, rel=2e-3)
        for _ in range(2000):  # random feasible solutions never beat it
            d = rng.integers(0, 2, 3)
            f = rng.dirichlet(np.ones(3)) * d
            f = f / f.sum() if f.sum() > 0 else f
            assert co_cost_loop(*row, d, f) >= float(cost) * (1 - 1e-6)


def test_grid_solver_prefers_delay_feasible_solutions():
    env, params, states = _instances(20, key=2)
    for i in range(20):
        state = jax.tree_util.tree_map(lambda a: a[i], states)
        y_grid, cost_grid = env.solve_grid(state, params)
        _, cost_exact = env.solve(state, params)
        row = _row(states, i)
        d, f = np.asarray(y_grid[:3]), np.asarray(y_grid[3:])
        assert float(cost_grid) == pytest.approx(co_cost_loop(*row, d, f), rel=1e-5)
        assert float(cost_grid) >= float(cost_exact) * (1 - 1e-6)
        # delay-feasible whenever the exact-cost optimum's delays show that some feasible solution exists
        y_e, _ = env.solve(state, params)
        if max(co_delay_loop(row[0], row[1], row[3], np.asarray(y_e[:3]), np.asarray(y_e[3:]))) < 1.0:
            assert max(co_delay_loop(row[0], row[1], row[3], d, f)) < 1.0


def test_instance_distribution():
    _, _, states = _instances(20_000, key=3)
    assert states.size.min() > 0 and states.size.max() < 5e5 and np.all(states.size == np.round(states.size))
    assert states.size.mean() == pytest.approx(2.5e5, rel=0.01) and states.size.std() == pytest.approx(5e4, rel=0.03)
    assert 0 < states.cpu.min() and states.cpu.max() < 1e9 and states.cpu.mean() == pytest.approx(5e8, rel=0.02)
    assert 0 <= states.weight.min() and states.weight.max() <= 1 and states.gain.mean() == pytest.approx(0.5, abs=0.01)


def test_env_reward_and_optimal_action():
    env, params = envs.make("co")
    obs, state = env.reset(jax.random.key(0), params)
    _, cost = env.solve(state, params)
    _, _, reward, term, _, info = env.step(jax.random.key(1), state, env.optimal_action(None, state, params), params)
    assert float(reward) == pytest.approx(-float(cost), rel=1e-5) and bool(term)
    _, _, reward, _, _, _ = env.step(jax.random.key(1), state, -jnp.ones(6), params)  # all local
    assert float(reward) == pytest.approx(-float(co_features(state, params)[:, 0].sum()), rel=1e-6)


@pytest.mark.parametrize("overrides,field", [({"num_terminals": 0}, "num_terminals"), ({"tx_power": -0.3}, "tx_power"),
                                             ({"size_mean": 6e5}, "size_mean")])
def test_bad_params(overrides, field):
    with pytest.raises(ValueError, match=field):
        envs.make("co", **overrides)


def test_exact_solver_within_the_delay_limit_against_brute_force():
    """`solve(delay_limit=True)` against a NumPy enumeration of every decision and 0.01-grid shares that meet
    theta: never worse than the grid's best, feasible itself, within the grid's resolution of it; the
    unconstrained optimum when nothing meets theta; never cheaper than the unconstrained optimum."""
    counts = [0, 0, 0]  # instances with a grid solution meeting theta, of those where theta binds, fallbacks
    for theta in (1.0, 1.6, 2.5):  # the default 1 s is rarely met (a local task alone needs ~1.5 s)
        _check_within_delay(theta, counts)
    bound, binding, fallback = counts
    assert bound >= 8 and binding >= 3 and fallback >= 3, counts


def _check_within_delay(theta, counts):
    env, params, states = _instances(12, key=7, max_delay=theta)
    for i in range(12):
        state = jax.tree_util.tree_map(lambda a: a[i], states)
        y, cost = env.solve(state, params, delay_limit=True)
        _, free_cost = env.solve(state, params)
        size, cpu, weight, gain = _row(states, i)
        ref = co_brute_force_within_delay(size, cpu, weight, gain, 0.01, float(params.max_delay))
        d, f = np.asarray(y[:3], np.float64), np.asarray(y[3:], np.float64)
        assert float(cost) >= float(free_cost) * (1 - 1e-5)
        if ref is None:
            counts[2] += 1
            assert float(cost) == pytest.approx(float(free_cost), rel=1e-6)
            continue
        counts[0] += 1
        counts[1] += float(cost) > float(free_cost) * (1 + 1e-4)
        assert max(co_delay_loop(size, cpu, gain, d, f)) <= float(params.max_delay) * (1 + 1e-4)
        assert co_cost_loop(size, cpu, weight, gain, d, f) == pytest.approx(float(cost), rel=1e-4)
        assert float(cost) <= ref * (1 + 1e-5)
        assert float(cost) >= ref * (1 - 0.03)
