"""AIGC environment: NumPy cross-check, hand-computed transitions, arrival process, heuristics, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.aigc import AIGCState, crash_avoid_policy, prophet_policy, running_time
from tests.envs.helpers import record_transitions
from tests.envs.reference_numpy import AIGC_TABLE, AIGCLoop, AIGCVectorized, aigc_duration


def _mixed_policy(key, obs, state, params):
    """70% crash-avoid (fills providers up, exercises releases), 30% random (crashes)."""
    k1, k2 = jax.random.split(key)
    random_action = jax.random.randint(k1, (), 0, 20)
    return jnp.where(jax.random.uniform(k2) < 0.3, random_action, crash_avoid_policy(key, obs, state, params))


@pytest.mark.parametrize("horizon", [1e6, 3e4])
def test_aigc_matches_numpy_loop_on_transitions(horizon):
    env, params = envs.make("aigc", horizon=horizon)
    num_steps = 1500
    rec = record_transitions(env, params, jax.random.key(int(horizon)), num_steps, _mixed_policy)
    prophet = np.asarray(jax.vmap(prophet_policy, in_axes=(None, 0, 0, None))(jax.random.key(0), rec["obs"], rec["state"], params))
    avoid = np.asarray(jax.vmap(crash_avoid_policy, in_axes=(None, 0, 0, None))(jax.random.key(0), rec["obs"], rec["state"], params))

    ref = AIGCLoop(horizon=horizon)
    np.testing.assert_allclose(ref.reset(float(rec["initial_state"].size)), rec["initial_obs"], rtol=1e-6)
    rewards, obs, term = [], [], []
    crashes = 0
    for t in range(num_steps):
        if t > 0 and term[-1]:
            np.testing.assert_allclose(ref.reset(float(rec["reset_state"].size[t - 1])), rec["obs"][t], rtol=1e-6)
        assert prophet[t] == ref.prophet() and avoid[t] == ref.crash_avoid()
        nxt = rec["next_state"]
        o, r, d = ref.step(int(rec["action"][t]), int(nxt.now[t]), float(nxt.size[t]))
        crashes += r < 0
        rewards.append(r), obs.append(o), term.append(d)
    np.testing.assert_allclose(rec["reward"], rewards, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rec["next_obs"], np.array(obs), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rec["terminated"], term)
    assert crashes > (20 if horizon > 1e5 else 3)  # the check covered crash penalties ...
    assert (np.asarray(rec["obs"])[:, 1:40:2] < 0.5).any()  # ... and heavily loaded providers
    if horizon < 1e5:
        assert np.sum(term) > 20  # ... and many episode ends


def _state(task_sizes, arrivals, now, size):
    """A state with tasks on provider 0 only."""
    ts = np.zeros((9, 20), np.float32)  # [slot, provider]
    te = np.zeros((9, 20), np.float32)
    ts[: len(task_sizes), 0] = task_sizes
    te[: len(arrivals), 0] = np.asarray(arrivals) + aigc_duration(np.asarray(task_sizes, np.float64))
    cap = np.array([row[4] for row in AIGC_TABLE], np.float32)
    return AIGCState(
        task_size=jnp.asarray(ts), task_end=jnp.asarray(te), avail=jnp.asarray(cap - ts.sum(0)),
        now=jnp.int32(now), frac=jnp.float32(0.25), size=jnp.float32(size), time=jnp.int32(5),
    )


def test_crash_reward_hand_computed():
    env, params = envs.make("aigc")
    # provider 0 (cap 400) runs 150 (arrived t=1000) and 200 (arrived t=9000); now = 11000; a 100 task crashes it
    state = _state([150.0, 200.0], [1000, 9000], 11000, 100.0)
    d150, d200 = aigc_duration(150.0), aigc_duration(200.0)
    expected = -2.0 * (1.0 + (1 - 10000 / d150) + (1 - 2000 / d200))
    obs, nxt, reward, term, info = env.step_env(jax.random.key(0), state, jnp.int32(0), params)
    assert float(reward) == pytest.approx(expected, rel=1e-6)
    assert bool(info["crashed"])
    assert float(nxt.task_size[:, 0].sum()) == 0.0 and float(nxt.avail[0]) == 400.0  # all tasks on provider 0 killed, new one dropped


def test_quality_reward_hand_computed_and_task_started():
    env, params = envs.make("aigc")
    # provider 1: ax=80, ay=0.45, bx=200, by=0.60 -> u(130) = 0.15/120 * 50
    state = _state([], [], 500, 130.0)
    obs, nxt, reward, term, info = env.step_env(jax.random.key(0), state, jnp.int32(1), params)
    assert float(reward) == pytest.approx(0.15 / 120 * 50, rel=1e-6)
    assert float(nxt.task_size[0, 1]) == 130 and float(nxt.task_end[0, 1]) == 500 + aigc_duration(130.0)
    assert float(nxt.avail[1]) == 500 - 130
    # saturation above bx: provider 6 (bx=160, by-ay=0.70) with a 250 task
    _, _, reward, _, _ = env.step_env(jax.random.key(0), _state([], [], 0, 250.0), jnp.int32(6), params)
    assert float(reward) == pytest.approx(0.70, rel=1e-6)
    assert running_time(100.0) == pytest.approx(14760.0) and running_time(250.0) == pytest.approx(40410.0)


def test_arrival_process_is_poisson():
    env, params = envs.make("aigc")
    batch, steps = 256, 1250

    def run(key):
        def body(carry, k):
            obs, state = carry
            obs, state2, r, term, trunc, info = env.step(k, state, jnp.int32(3), params)
            clock = state.now.astype(jnp.float32) + state.frac
            return (obs, state2), (term, clock, state.size)

        init = env.reset(key, params)
        return jax.lax.scan(body, init, jax.random.split(key, steps))[1]

    term, clock, size = jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(5), batch))
    term, clock, size = map(np.asarray, (term, clock, size))
    first_end = np.argmax(term, axis=1) + 1  # episode length N = 1 + Poisson(1000)
    assert term.any(axis=1).all()
    assert first_end.mean() == pytest.approx(1001.0, abs=4 * np.sqrt(1000 / batch))
    assert first_end.var() == pytest.approx(1000.0, rel=0.25)
    in_first = np.arange(steps - 1)[None, :] < (first_end - 1)[:, None]
    gaps = np.diff(clock, axis=1)[in_first]  # inter-arrival times inside the first episode
    x = np.sort(gaps / 1000.0)
    cdf = 1 - np.exp(-x)
    ks = np.max(np.abs(np.arange(1, len(x) + 1) / len(x) - cdf))
    assert ks < 2.0 / np.sqrt(len(x))
    counts = np.bincount(((size.ravel() - 100) / 10).astype(int), minlength=16)
    assert counts.shape == (16,) and size.min() == 100 and size.max() == 250
    np.testing.assert_allclose(counts / counts.sum(), 1 / 16, atol=0.003)


def test_vectorized_numpy_reference_is_statistically_equivalent():
    """The vectorised NumPy env (benchmark baseline) gives the same mean crash-avoid reward per step."""
    env, params = envs.make("aigc")
    rng = np.random.default_rng(0)
    vec = AIGCVectorized(512, rng)
    rewards = []
    for _ in range(300):
        avail = vec.cap[None] - vec.size_.sum(-1)
        _, r, _ = vec.step(np.argmax(avail, -1))
        rewards.append(r)

    def run(key):
        def body(carry, k):
            obs, state = carry
            a = crash_avoid_policy(k, obs, state, params)
            obs, state, r, *_ = env.step(k, state, a, params)
            return (obs, state), r

        return jax.lax.scan(body, env.reset(key, params), jax.random.split(key, 300))[1]

    jr = np.asarray(jax.jit(jax.vmap(run))(jax.random.split(jax.random.key(1), 512)))
    ours, theirs = jr[:, 100:].mean(), np.array(rewards)[100:].mean()
    assert ours == pytest.approx(theirs, abs=0.01)


def test_heuristic_ranking():
    """Prophet >= crash-avoid > random on the reference instance (4 episodes each, full length)."""
    env, params = envs.make("aigc")
    policies = env.policies()

    def episode_return(policy, key):
        def body(carry, k):
            obs, state, done, total = carry
            a = policy(k, obs, state, params)
            obs, state, r, term, trunc, _ = env.step(k, state, a, params)
            total = total + jnp.where(done, 0.0, r)
            return (obs, state, jnp.logical_or(done, term), total), None

        obs, state = env.reset(key, params)
        init = (obs, state, jnp.asarray(False), jnp.float32(0))
        return jax.lax.scan(body, init, jax.random.split(key, 1200))[0][3]

    keys = jax.random.split(jax.random.key(9), 4)
    result = {n: float(jax.jit(jax.vmap(lambda k: episode_return(p, k)))(keys).mean()) for n, p in policies.items()}
    assert result["prophet"] > result["crash-avoid"] > result["random"]
    assert result["round-robin"] > result["random"]


def test_provider_generator():
    env, p1 = envs.make("aigc", provider_seed=1)
    _, p1b = envs.make("aigc", provider_seed=1)
    _, p2 = envs.make("aigc", provider_seed=2, num_providers=7)
    np.testing.assert_array_equal(p1.cap, p1b.cap)
    assert not np.array_equal(p1.ax, envs.make("aigc")[1].ax)
    assert p2.cap.shape == (7,) and env.action_space(p2).n == 7 and env.observation_space(p2).shape == (16,)
    for v, grid in [(p1.ax, np.arange(0, 91, 10)), (p1.cap, np.arange(400, 901, 100)), (p1.bx, np.arange(150, 241, 10))]:
        assert np.isin(np.asarray(v), grid).all()
    assert np.isin(np.round(np.asarray(p1.by) * 20), np.arange(10, 20)).all()


@pytest.mark.parametrize(
    "overrides,err,field",
    [
        ({"cap": [1000.0] * 20}, ValueError, "max_tasks_per_provider"),
        ({"cap": [400.0] * 19}, ValueError, "same length"),
        ({"arrival_rate": 0.0}, ValueError, "arrival_rate"),
        ({"horizon": -1.0}, ValueError, "horizon"),
        ({"crash_penalty": -1.0}, ValueError, "crash_penalty"),
        ({"bx": [0.0] * 20}, ValueError, "ax < bx"),
        ({"size_step": 7}, ValueError, "size_step"),
        ({"provider_seed": 1.5}, TypeError, "provider_seed"),
        ({"num_providers": 5}, ValueError, "provider_seed"),
    ],
)
def test_bad_params(overrides, err, field):
    with pytest.raises(err, match=field):
        envs.make("aigc", **overrides)


def test_bad_actions():
    env, params = envs.make("aigc")
    obs, state = env.reset(jax.random.key(0), params)
    with pytest.raises(ValueError, match=r"\[0, 20\)"):
        env.step(jax.random.key(1), state, 20, params)
    with pytest.raises(TypeError, match="integer"):
        env.step(jax.random.key(1), state, 2.0, params)
    with pytest.raises(ValueError, match="shape"):
        env.step(jax.random.key(1), state, jnp.array([1, 2]), params)
