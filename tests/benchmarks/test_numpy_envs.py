"""The vectorised NumPy environments of the PyTorch PPO reference step like the JAX ones: CartPoleVec against
gymnax's CartPole-v1 transition by transition, MSRVec's reward and optimum against `envs` msr-80. No torch needed."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from benchmarks.torch_reference.envs_numpy import CartPoleVec, MSRVec

gymnax = pytest.importorskip("gymnax")


def test_cartpole_vec_matches_gymnax_step_by_step():
    env, params = gymnax.make("CartPole-v1")
    ref = CartPoleVec(64, seed=3)
    ref.reset()
    ref.state[:8] = np.linspace(-0.19, 0.19, 8)[:, None] * [10.0, 1.0, 1.0, 1.0]  # some lanes start near the edge
    ref.time[-4:] = 497  # and some near the time limit
    rng = np.random.default_rng(0)

    def gymnax_step(state, time, action):
        s = env.reset(jax.random.key(0), params)[1].replace(
            x=jnp.float32(state[0]), x_dot=jnp.float32(state[1]), theta=jnp.float32(state[2]),
            theta_dot=jnp.float32(state[3]), time=jnp.int32(time))
        _, _, reward, terminated, truncated, info = env.step(jax.random.key(0), s, action, params)
        return info["final_observation"], reward, terminated, truncated

    step = jax.jit(jax.vmap(gymnax_step))
    checked_terminal = checked_truncation = 0
    for _ in range(40):
        actions = rng.integers(0, 2, ref.n)
        state, time = ref.state.copy(), ref.time.copy()
        want_state, want_reward, want_term, want_trunc = step(state.astype(np.float32), time, actions)
        _, reward, terminated, truncated, final, _ = ref.step(actions)
        np.testing.assert_allclose(final, np.asarray(want_state), rtol=1e-5, atol=1e-6)
        np.testing.assert_array_equal(reward, np.asarray(want_reward))
        np.testing.assert_array_equal(terminated, np.asarray(want_term))
        np.testing.assert_array_equal(terminated | truncated, np.asarray(want_term | want_trunc))
        checked_terminal += int(terminated.sum())
        checked_truncation += int(truncated.sum())
        reset = terminated | truncated
        assert np.all(ref.time[reset] == 0) and np.all(np.abs(ref.state[reset]) <= 0.05)
    assert checked_terminal >= 8 and checked_truncation == 4  # both kinds of episode end were exercised


def test_msr_vec_reward_and_optimum_match_envs():
    env, params = envs.make("msr-80")
    ref = MSRVec(16, seed=1, num_channels=80, total_power=float(params.total_power))
    obs = ref.reset()
    gains = ref.gains.copy()
    actions = np.random.default_rng(2).uniform(-1, 1, (16, 80))
    _, reward, terminated, _, final, optimum = ref.step(actions)
    want_rate = np.array([float(envs.msr.sum_rate(jnp.asarray(params.total_power * np.abs(a) / np.abs(a).sum()),
                                                  jnp.asarray(g), 1.0)) for a, g in zip(actions, gains)])
    want_opt = np.array([float(envs.msr.sum_rate(envs.msr.water_filling(jnp.asarray(g), 1.0, params.total_power),
                                                 jnp.asarray(g), 1.0)) for g in gains])
    np.testing.assert_allclose(reward, want_rate, rtol=1e-5)
    np.testing.assert_allclose(optimum, want_opt, rtol=1e-5)
    np.testing.assert_allclose(final[:, :80], gains, rtol=1e-6)
    np.testing.assert_array_equal(obs[:, 80], params.total_power)
    assert terminated.all() and not np.allclose(ref.gains, gains)  # one-shot: every step draws a new instance


def test_icpower_vec_observes_and_rewards_like_envs_ic_power():
    """benchmarks/multi_agent_speed.py's NumPy ic-power: the same 6 local features, global state and sum rate as
    `envs.make("ic-power")` on the same gains."""
    from benchmarks.torch_reference.envs_numpy import ICPowerVec
    env, params = envs.make("ic-power", num_links=4)
    vec = ICPowerVec(np.random.default_rng(0), num_envs=1, num_links=4)
    vec.reset()
    _, state = env.reset(jax.random.PRNGKey(0), params)
    powers = np.array([[0.3, 1.0, 0.0, 0.7]])
    vec.gains = np.asarray(state.gains, np.float64)[None]
    _, _, reward = vec.step(powers)
    obs, state2, rewards, _, _ = env.step(jax.random.PRNGKey(1), state, {a: powers[0, i:i + 1].astype(np.float32)
                                                                         for i, a in enumerate(env.agents)}, params)
    np.testing.assert_allclose(reward[0], float(rewards["tx_0"]), rtol=1e-5)
    vec.gains = np.asarray(state2.gains, np.float64)[None]
    local, glob = vec._observe()
    np.testing.assert_allclose(local[0], np.stack([np.asarray(obs[a]) for a in env.agents]), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(glob[0], np.asarray(env.get_state(state2, params)), rtol=1e-5, atol=1e-5)
