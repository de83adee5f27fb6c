"""MSR environment and water-filling: NumPy cross-check, KKT, exhaustive random search, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.msr import action_to_power, sum_rate, water_filling
from tests.envs.helpers import record_transitions
from tests.envs.reference_numpy import MSRLoop, msr_rate_loop, msr_step_vectorized, water_filling_bisection


def _random_instances(key, batch, n, low=0.05, high=3.0):
    return jax.random.uniform(key, (batch, n), minval=low, maxval=high)


@pytest.mark.parametrize("n,total_power", [(1, 2.0), (3, 10.0), (10, 3.0), (80, 20.0), (80, 0.5)])
def test_water_filling_kkt_and_budget(n, total_power):
    gains = np.asarray(_random_instances(jax.random.key(n), 64, n), np.float64)
    noise = 1.0 + np.asarray(jax.random.uniform(jax.random.key(7), (n,)))  # per-channel noise
    p = np.asarray(jax.jit(water_filling)(gains, noise, total_power), np.float64)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(-1), total_power, rtol=2e-5)
    # KKT for max sum log(1 + g p / n): g/(n + g p) = lambda on active channels, g/n <= lambda on inactive
    marginal = gains / (noise + gains * p)
    active = p > 1e-6 * total_power
    for row in range(len(gains)):
        lam = marginal[row][active[row]]
        np.testing.assert_allclose(lam, lam.mean(), rtol=1e-4)
        assert np.all(gains[row][~active[row]] / noise[~active[row]] <= lam.mean() * (1 + 1e-4))


def test_water_filling_matches_bisection():
    gains = np.asarray(_random_instances(jax.random.key(11), 50, 80))
    p = np.asarray(water_filling(gains, 1.0, 20.0))
    for row in range(len(gains)):
        np.testing.assert_allclose(p[row], water_filling_bisection(gains[row], 1.0, 20.0), atol=1e-4)


@pytest.mark.parametrize("n,total_power", [(3, 10.0), (80, 20.0)])
def test_no_random_feasible_allocation_beats_water_filling(n, total_power):
    rng = np.random.default_rng(n)
    gains = rng.uniform(0.5, 2.5, size=(5, n))
    opt = np.asarray(sum_rate(water_filling(gains, 1.0, total_power), gains))
    for row in range(len(gains)):
        # 10^4 feasible allocations per instance: Dirichlet points on the simplex, plus sparse corners
        alloc = total_power * rng.dirichlet(np.full(n, 0.3 if n > 3 else 1.0), size=10_000)
        alloc[:n] = total_power * np.eye(n)[: min(n, 10_000)]
        rates = np.log2(1.0 + gains[row] * alloc).sum(-1)
        assert rates.max() <= opt[row] * (1 + 1e-6)
        assert msr_rate_loop(water_filling_bisection(gains[row], 1.0, total_power), gains[row], 1.0) == pytest.approx(
            float(opt[row]), rel=1e-5
        )


def test_action_mapping_documented():
    a = jnp.array([0.5, -0.25, 0.25])
    np.testing.assert_allclose(action_to_power(a, 10.0), [5.0, 2.5, 2.5], rtol=1e-6)
    np.testing.assert_allclose(action_to_power(jnp.zeros(4), 2.0), [0.5] * 4)


@pytest.mark.parametrize("name,overrides", [("msr-3", {"max_steps_in_episode": 3}), ("msr-80", {}), ("msr-gdmopt", {})])
def test_msr_matches_numpy_loop_on_1000_transitions(name, overrides):
    env, params = envs.make(name, **overrides)
    n = params.num_channels

    def policy(key, obs, state, p):
        return jax.random.uniform(key, (n,), minval=-1.0, maxval=1.0) * (jax.random.uniform(key) > 0.05)

    rec = record_transitions(env, params, jax.random.key(42), 1000, policy)
    noise = np.asarray(params.noise_power, np.float64)
    ref = MSRLoop(n, float(params.total_power), noise, int(params.max_steps_in_episode), params.reward_mode == "regret")
    np.testing.assert_allclose(ref.reset(rec["initial_state"].gains.astype(np.float64)), rec["initial_obs"], rtol=1e-6)
    rewards, obs, term = [], [], []
    for t in range(1000):
        if t > 0 and rec["terminated"][t - 1]:
            ref.reset(rec["reset_state"].gains[t - 1].astype(np.float64))
        o, r, d = ref.step(rec["action"][t].astype(np.float64), rec["next_state"].gains[t].astype(np.float64))
        rewards.append(r), obs.append(o), term.append(d)
    np.testing.assert_allclose(rec["reward"], rewards, rtol=1e-5, atol=1e-5 if params.reward_mode == "regret" else 0)
    np.testing.assert_allclose(rec["next_obs"], np.array(obs), rtol=1e-6)
    np.testing.assert_array_equal(rec["terminated"], term)
    # vectorised NumPy reference (used by the benchmark) agrees too
    vec = msr_step_vectorized(rec["state"].gains, rec["action"], float(params.total_power), noise)
    if params.reward_mode == "rate":
        np.testing.assert_allclose(rec["reward"], vec, rtol=1e-5)


def test_gain_distribution_and_gdmopt_preset():
    env, params = envs.make("msr-gdmopt")
    keys = jax.random.split(jax.random.key(0), 20_000)
    _, states = jax.vmap(env.reset, in_axes=(0, None))(keys, params)
    g = np.asarray(states.gains)
    np.testing.assert_allclose(g[:, :5].mean(0), 1.5, atol=0.01)
    np.testing.assert_allclose(g[:, 5:].mean(0), 0.5, atol=0.01)
    np.testing.assert_allclose(g[:, :5].var(0), 1 / 12, atol=0.005)
    assert g[:, :5].min() >= 1.0 and g[:, :5].max() <= 2.0 and g[:, 5:].max() <= 1.0


def test_optimal_action_scores_one_and_regret_zero():
    for name in ("msr-3", "msr-80", "msr-gdmopt"):
        env, params = envs.make(name)
        obs, state = env.reset(jax.random.key(3), params)
        action = env.optimal_action(jax.random.key(0), state, params)
        assert env.action_space(params).contains(action)
        _, _, reward, _, _, info = env.step(jax.random.key(4), state, action, params)
        if params.reward_mode == "regret":
            assert float(reward) == pytest.approx(0.0, abs=1e-5)
        else:
            assert float(reward) == pytest.approx(float(env.optimal_value(state, params)), rel=1e-6)


def test_vmap_over_power_budget_is_a_sweep():
    env, params = envs.make("msr-3")
    budgets = jnp.array([1.0, 5.0, 10.0, 40.0])
    sweep = jax.vmap(lambda p: params.replace(total_power=p))(budgets)
    obs, state = jax.vmap(env.reset, in_axes=(None, 0))(jax.random.key(0), sweep)
    values = jax.vmap(env.optimal_value)(state, sweep)
    assert np.all(np.diff(np.asarray(values)) > 0)  # more power, more rate
    np.testing.assert_allclose(obs[:, -1], budgets)


# --- bad input ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overrides,field",
    [
        ({"total_power": 0.0}, "total_power"),
        ({"total_power": -3.0}, "total_power"),
        ({"total_power": float("nan")}, "total_power"),
        ({"num_channels": 0}, "num_channels"),
        ({"noise_power": 0.0}, "noise_power"),
        ({"gain_low": 3.0}, "gain"),
        ({"max_steps_in_episode": 0}, "max_steps_in_episode"),
        ({"reward_mode": "sum"}, "reward_mode"),
        ({"bandwidth": 1.0}, "bandwidth"),
    ],
)
def test_bad_params_raise_value_error_naming_field(overrides, field):
    with pytest.raises(ValueError, match=field):
        envs.make("msr-3", **overrides)


def test_bad_param_types():
    with pytest.raises(TypeError, match="num_channels"):
        envs.make("msr-3", num_channels=3.5)
    with pytest.raises(TypeError, match="total_power"):
        envs.make("msr-3", total_power="10W")
    with pytest.raises(ValueError, match="gain_low"):
        envs.make("msr-gdmopt", num_channels=12)  # preset gain arrays have 10 entries


def test_bad_actions():
    env, params = envs.make("msr-3")
    obs, state = env.reset(jax.random.key(0), params)
    key = jax.random.key(1)
    with pytest.raises(ValueError, match="shape"):
        env.step(key, state, jnp.ones(4), params)
    with pytest.raises(TypeError, match="dtype"):
        env.step(key, state, jnp.ones(3, jnp.int32), params)
    with pytest.raises(ValueError, match="NaN"):
        env.step(key, state, jnp.array([0.1, jnp.nan, 0.2]), params)
    # inside jit a NaN cannot raise; it is flagged, never silently replaced
    _, _, reward, _, _, info = jax.jit(env.step)(key, state, jnp.array([0.1, jnp.nan, 0.2]), params)
    assert bool(info["invalid_action"]) and np.isnan(float(reward))
    _, _, _, _, _, info = jax.jit(env.step)(key, state, jnp.array([0.1, 0.3, 0.2]), params)
    assert not bool(info["invalid_action"])


def test_heuristic_policies_allocate_as_their_textbook_formulas():
    env, params = envs.make("msr-3-lowsnr")
    policies = env.policies()
    assert {"random", "equal-power", "best-channel", "gain-proportional", "water-filling"} <= set(policies)
    key = jax.random.key(3)
    for i in range(20):
        state = env.sample_instance(jax.random.fold_in(key, i), params)
        g = np.asarray(state.gains, np.float64)
        expected = {
            "equal-power": np.full(3, 1.0 / 3),
            "best-channel": np.eye(3)[np.argmax(g)],
            "gain-proportional": g / g.sum(),
        }
        for name, share in expected.items():
            a = policies[name](key, env.get_obs(state, params), state, params)
            np.testing.assert_allclose(np.asarray(action_to_power(a, params.total_power)), share * 1.0, rtol=1e-5,
                                       atol=1e-7)


def test_lowsnr_preset_heuristic_fractions_match_a_numpy_monte_carlo():
    """optimum_fractions (same instances for every policy, regret rewards turned back into rates) against a NumPy
    Monte Carlo of the same allocations on its own draws; rate and regret modes agree on the same key."""
    from jaxdiff_rl.train.rollout import optimum_fractions

    env, params = envs.make("msr-3-lowsnr")
    assert params.reward_mode == "regret"
    ours = optimum_fractions(env, params, jax.random.key(0), 8192)
    env_rate, params_rate = envs.make("msr-3-lowsnr", reward_mode="rate")
    ours_rate = optimum_fractions(env_rate, params_rate, jax.random.key(0), 8192)
    for name in ours:
        assert ours[name] == pytest.approx(ours_rate[name], abs=2e-5), name
    rng = np.random.default_rng(0)
    g = rng.uniform(0.1, 2.0, (20000, 3))
    opt = np.array([msr_rate_loop(water_filling_bisection(row, 1.0, 1.0), row, 1.0) for row in g[:4000]])
    rate = lambda p: np.sum(np.log2(1 + g[:4000] * p), -1)
    best = np.eye(3)[np.argmax(g[:4000], -1)]
    numpy_fracs = {
        "equal-power": rate(np.full(3, 1 / 3)).sum() / opt.sum(),
        "best-channel": rate(best).sum() / opt.sum(),
        "gain-proportional": rate(g[:4000] / g[:4000].sum(-1, keepdims=True)).sum() / opt.sum(),
    }
    for name, value in numpy_fracs.items():
        assert ours[name] == pytest.approx(value, abs=0.01), name
    assert ours["water-filling"] == pytest.approx(1.0, abs=1e-5)
    assert ours["random"] < ours["equal-power"] < ours["best-channel"] < ours["gain-proportional"] < 0.97
