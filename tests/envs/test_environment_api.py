"""The gymnax 1.x contract for every registered environment, and interchangeability with gymnax."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.environment import Box, Discrete

NAMES = envs.names()


def test_names_and_unknown_name():
    assert NAMES == sorted(NAMES) and {"msr-3", "msr-80", "msr-gdmopt", "aigc"} <= set(NAMES)
    with pytest.raises(ValueError, match="msr-3.*msr-80|aigc"):
        envs.make("msr-4")


def generic_rollout(env, params, key, num_steps, num_envs):
    """Rollout code written against the gymnax API only (random actions, vmapped, scanned)."""

    def step(carry, key):
        obs, state = carry
        k_act, k_step = jax.random.split(key)
        actions = jax.vmap(env.action_space(params).sample)(jax.random.split(k_act, num_envs))
        obs, state, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_step, num_envs), state, actions, params
        )
        return (obs, state), (obs, reward, terminated, truncated, info["final_observation"])

    k_reset, k_scan = jax.random.split(key)
    init = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, num_envs), params)
    return jax.lax.scan(step, init, jax.random.split(k_scan, num_steps))


@pytest.mark.parametrize("name", NAMES)
def test_jit_vmap_4096_lanes_spaces_and_determinism(name):
    env, params = envs.make(name)
    run = jax.jit(lambda k: generic_rollout(env, params, k, 3, 4096))
    (obs_last, _), (obs, reward, term, trunc, final_obs) = run(jax.random.key(0))
    assert obs.shape == (3, 4096, *env.observation_space(params).shape)
    assert reward.shape == (3, 4096) and reward.dtype == jnp.float32 and term.dtype == jnp.bool_
    assert np.all(np.isfinite(np.asarray(reward)))
    contains = jax.vmap(jax.vmap(env.observation_space(params).contains))
    assert bool(jnp.all(contains(obs))) and bool(jnp.all(contains(final_obs)))
    # determinism: same key, same bits; another key, other bits
    (_, _), (obs2, reward2, *_) = run(jax.random.key(0))
    np.testing.assert_array_equal(np.asarray(reward), np.asarray(reward2))
    np.testing.assert_array_equal(np.asarray(obs), np.asarray(obs2))
    (_, _), (_, reward3, *_) = run(jax.random.key(1))
    assert not np.array_equal(np.asarray(reward), np.asarray(reward3))


@pytest.mark.parametrize("name", NAMES)
def test_auto_reset_contract(name):
    """step == step_env, replaced by auto_reset(key_reset, ...) exactly when terminated or truncated.

    (Compared to float32 rounding: `step` and `step_env` are compiled separately and XLA may fuse differently.)"""
    close = lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)
    overrides = {"horizon": 2e4} if name == "aigc" else {"max_steps_in_episode": 2}
    env, params = envs.make(name, **overrides)
    obs, state = env.reset(jax.random.key(0), params)
    seen_done = 0
    for i in range(60):
        key = jax.random.key(100 + i)
        action = env.action_space(params).sample(jax.random.key(200 + i))
        assert env.action_space(params).contains(action)
        obs2, state2, reward, term, trunc, info = env.step(key, state, action, params)
        k_step, k_reset = jax.random.split(key)
        obs_st, state_st, reward_st, term_st, _ = env.step_env(k_step, state, action, params)
        close(info["final_observation"], obs_st)
        close(reward, reward_st)
        assert bool(term) == bool(term_st)
        if bool(term) or bool(trunc):
            seen_done += 1
            obs_re, state_re = env.auto_reset(k_reset, obs_st, state_st, params)
            assert int(state_re.time) == 0
            close(obs2, obs_re)
            jax.tree_util.tree_map(close, state2, state_re)
        else:
            close(obs2, obs_st)
        obs, state = obs2, state2
    assert seen_done >= 2


def test_auto_reset_hooks():
    """AIGC restarts idle with the task the step drew; MSR (i.i.d. instances) continues from the drawn instance."""
    env, params = envs.make("aigc")
    obs, state = env.reset(jax.random.key(0), params)
    obs, state, *_ = env.step(jax.random.key(2), state, 3, params)
    obs_re, state_re = env.auto_reset(jax.random.key(1), obs, state, params)
    obs0, state0 = env.reset_env(jax.random.key(1), params)
    assert float(state_re.size) == float(state.size) and int(state.task_size.sum()) > 0
    state0 = state0.replace(size=state.size)
    jax.tree_util.tree_map(np.testing.assert_array_equal, state_re, state0)
    env, params = envs.make("msr-3", max_steps_in_episode=1)
    obs, state = env.reset(jax.random.key(0), params)
    obs2, state2, *_ = env.step(jax.random.key(1), state, jnp.ones(3), params)
    obs_st, state_st, *_ = env.step_env(jax.random.split(jax.random.key(1))[0], state, jnp.ones(3), params)
    np.testing.assert_allclose(state2.gains, state_st.gains, rtol=1e-6)
    assert int(state2.time) == 0 and int(state_st.time) == 1


def test_spaces():
    box = Box(-1.0, 1.0, (3,))
    x = box.sample(jax.random.key(0))
    assert x.shape == (3,) and bool(box.contains(x))
    assert not bool(box.contains(jnp.array([0.0, 2.0, 0.0]))) and not bool(box.contains(jnp.array([jnp.nan, 0, 0])))
    assert not bool(box.contains(jnp.zeros(4)))
    d = Discrete(5)
    samples = jax.vmap(d.sample)(jax.random.split(jax.random.key(0), 5000))
    assert set(np.unique(np.asarray(samples))) == set(range(5))
    assert bool(d.contains(4)) and not bool(d.contains(5)) and not bool(d.contains(-1))
    with pytest.raises(ValueError, match="num_categories"):
        Discrete(0)


def test_num_actions_and_repr():
    env, params = envs.make("aigc")
    assert env.num_actions == 20
    env, params = envs.make("msr-80")
    assert env.num_actions == 80 and "shape=(80,)" in repr(env.action_space(params))


# --- interchangeability with gymnax (test-only dependency) ----------------------------------------------------------
gymnax = pytest.importorskip("gymnax")


def test_gymnax_and_ours_in_the_same_rollout_code():
    for env, params in [gymnax.make("CartPole-v1"), gymnax.make("Pendulum-v1"), envs.make("aigc", horizon=1e5), envs.make("msr-3")]:
        (_, _), (obs, reward, term, trunc, final_obs) = jax.jit(
            lambda k: generic_rollout(env, params, k, 250, 8)
        )(jax.random.key(0))
        assert obs.shape[:2] == (250, 8) and reward.shape == (250, 8)
        assert final_obs.shape == obs.shape
        assert bool(np.asarray(term | trunc).any())  # every env ended episodes (CartPole falls, Pendulum truncates at 200)


def test_gymnax_wrapper_accepts_our_env():
    from gymnax.wrappers.purerl import LogWrapper

    env, params = envs.make("msr-3", max_steps_in_episode=4)
    wrapped = LogWrapper(env)
    obs, state = wrapped.reset(jax.random.key(0), params)
    total = 0.0
    for i in range(8):
        action = wrapped.action_space(params).sample(jax.random.key(i))
        obs, state, reward, term, trunc, info = wrapped.step(jax.random.key(10 + i), state, action, params)
        total += float(reward)
        if i == 3:
            assert bool(info["returned_episode"]) and float(info["returned_episode_returns"]) == pytest.approx(total, rel=1e-5)
    assert obs.shape == (4,)


def test_concrete_action_inside_a_trace():
    """A concrete action closed over by a scan body is validated without staging ops (regression)."""
    for name, action in [("msr-3", jnp.array([0.1, 0.2, 0.3])), ("aigc", 3)]:
        env, params = envs.make(name)
        obs, state = env.reset(jax.random.key(0), params)

        def body(state, key):
            _, state, reward, *_ = env.step(key, state, action, params)
            return state, reward

        _, rewards = jax.lax.scan(body, state, jax.random.split(jax.random.key(1), 4))
        assert rewards.shape == (4,) and bool(jnp.all(jnp.isfinite(rewards)))


def test_environments_compare_by_class_so_compiled_programs_are_reused():
    (a, pa), (b, pb) = envs.make("msr-3"), envs.make("msr-3", total_power=5.0)
    assert a == b and hash(a) == hash(b) and a != envs.make("aigc")[0]
    g = jax.jit(lambda env, params, key: env.reset(key, params)[0], static_argnums=0)
    g(a, pa, jax.random.key(0))
    np.testing.assert_allclose(g(b, pb, jax.random.key(0))[-1], 5.0)  # params are arguments, not baked in
    assert g._cache_size() == 1
