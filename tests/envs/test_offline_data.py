"""Offline datasets: collected transitions agree with the environments' reward functions and dynamics, the schema
round-trips through .npz and rejects bad files with the field named, and D4RL-style dicts load correctly."""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.datasets import objective_fn, repair_fn
from envs.offline_data import FIELDS, OfflineDataset, collect, from_d4rl


@pytest.fixture(scope="module")
def msr3():
    env, params = envs.make("msr-3")
    return env, params, collect(jax.random.key(0), env, params, {"noisy-optimum": 0.75, "random": 0.25}, 8, 6,
                                noise_std=0.1, env_name="msr-3", seed=0)


def test_msr_rewards_match_the_reward_function_and_lanes_split_by_weight(msr3):
    env, params, data = msr3
    assert data.size == 48 and data.actions.shape == (48, 3) and data.observations.shape == (48, 4)
    f, repair = objective_fn("msr-3"), repair_fn("msr-3")
    rate = jax.vmap(lambda x, a: f(x, repair(x, a)))(jnp.asarray(data.observations), jnp.asarray(data.actions))
    np.testing.assert_allclose(data.rewards, rate, rtol=1e-5)  # reward = sum rate of the stored (s, a)
    assert data.terminals.all() and not data.truncations.any()  # one-instance episodes end naturally
    assert data.metadata["policy"] == {"noisy-optimum": 0.75, "random": 0.25}
    # a mixture gives lanes 0..5 to the first policy and 6..7 to the second; the env keys do not depend on the
    # policy, so every lane sees the same instances as in a single-policy run
    mix = collect(jax.random.key(0), env, params, {"water-filling": 0.75, "best-channel": 0.25}, 8, 6)
    opt = collect(jax.random.key(0), env, params, "water-filling", 8, 6).rewards.reshape(8, 6)
    best = collect(jax.random.key(0), env, params, "best-channel", 8, 6).rewards.reshape(8, 6)
    np.testing.assert_allclose(mix.rewards.reshape(8, 6)[:6], opt[:6], rtol=1e-6)
    np.testing.assert_allclose(mix.rewards.reshape(8, 6)[6:], best[6:], rtol=1e-6)
    assert best.sum() < 0.95 * opt.sum()
    frac = data.rewards.reshape(8, 6).sum(1) / opt.sum(1)
    assert frac[:6].min() > 0.95 and np.all(frac <= 1.0 + 1e-6)  # noisy optimum: close to, never above, the optimum


def test_pendulum_next_observations_chain_within_episodes():
    env, params = gymnax.make("Pendulum-v1")
    data = collect(jax.random.key(1), env, params, "random", 3, 250)
    obs, nxt = data.observations.reshape(3, 250, -1), data.next_observations.reshape(3, 250, -1)
    ends = data.truncations.reshape(3, 250)
    assert ends[:, 199].all() and ends.sum() == 3 and not data.terminals.any()  # 200-step time limit
    inside = ~ends[:, :-1]
    np.testing.assert_allclose(nxt[:, :-1][inside], obs[:, 1:][inside], atol=1e-6)
    # an independent check of the stored reward: -(theta^2 + 0.1 thdot^2 + 0.001 u^2) from (cos, sin, thdot)
    theta = np.arctan2(data.observations[:, 1], data.observations[:, 0])
    u = np.clip(data.actions[:, 0], -2.0, 2.0)
    np.testing.assert_allclose(data.rewards, -(theta**2 + 0.1 * data.observations[:, 2] ** 2 + 0.001 * u**2),
                               rtol=1e-4, atol=1e-4)
    returns = data.episode_returns()
    np.testing.assert_allclose(returns, data.rewards.reshape(3, 250)[:, :200].sum(1), rtol=1e-5)


def test_round_trip_and_schema_errors(msr3, tmp_path):
    _, _, data = msr3
    path = data.save(tmp_path / "msr3")
    assert path.suffix == ".npz"
    loaded = OfflineDataset.load(path)
    assert all(np.array_equal(getattr(loaded, k), getattr(data, k)) for k in FIELDS)
    assert loaded.metadata == data.metadata and loaded.metadata["env_params"]["total_power"] == 10.0
    arrays = data.arrays()
    np.savez(tmp_path / "nofield.npz", schema=np.asarray("jaxdiff-rl/offline-v1"),
             **{k: v for k, v in arrays.items() if k != "rewards"})
    with pytest.raises(ValueError, match="rewards"):
        OfflineDataset.load(tmp_path / "nofield.npz")
    np.savez(tmp_path / "other.npz", **arrays)
    with pytest.raises(ValueError, match="schema"):
        OfflineDataset.load(tmp_path / "other.npz")
    with pytest.raises(ValueError, match="rewards"):
        OfflineDataset(**{**arrays, "rewards": arrays["rewards"][:-1]})
    with pytest.raises(ValueError, match="next_observations"):
        OfflineDataset(**{**arrays, "next_observations": arrays["next_observations"][:, :2]})
    with pytest.raises(ValueError, match="actions"):
        OfflineDataset(**{**arrays, "actions": np.full_like(arrays["actions"], np.nan)})
    with pytest.raises(FileNotFoundError):
        OfflineDataset.load(tmp_path / "missing.npz")


def test_collect_bad_input():
    env, params = envs.make("msr-3")
    with pytest.raises(ValueError, match="unknown behaviour policy.*valid"):
        collect(jax.random.key(0), env, params, "expert", 2, 2)
    with pytest.raises(ValueError, match="num_envs"):
        collect(jax.random.key(0), env, params, "random", 0, 2)
    with pytest.raises(ValueError, match="weights"):
        collect(jax.random.key(0), env, params, {"random": -1.0}, 2, 2)


def test_from_d4rl_builds_next_observations_and_drops_timeouts():
    obs = np.arange(12, dtype=np.float32).reshape(6, 2)
    d = {"observations": obs, "actions": np.linspace(-1, 1, 6, dtype=np.float32)[:, None],
         "rewards": np.arange(6, dtype=np.float32), "terminals": np.array([0, 1, 0, 0, 0, 0], bool),
         "timeouts": np.array([0, 0, 0, 1, 0, 0], bool)}
    data = from_d4rl(d, env="custom")
    # rows: 0 (-> 1), 1 terminal (placeholder), 2 (-> 3), 3 timeout dropped, 4 (-> 5), 5 last row dropped
    np.testing.assert_array_equal(data.rewards, [0, 1, 2, 4])
    np.testing.assert_array_equal(data.next_observations, obs[[1, 1, 3, 5]])
    np.testing.assert_array_equal(data.terminals, [False, True, False, False])
    assert data.metadata["env"] == "custom" and data.actions.shape == (4, 1)
    minari = from_d4rl({**{k: v for k, v in d.items() if k != "timeouts"}, "truncations": d["timeouts"],
                        "next_observations": obs + 100})
    assert minari.size == 6 and minari.truncations[3] and np.array_equal(minari.next_observations, obs + 100)
    with pytest.raises(ValueError, match="rewards"):
        from_d4rl({k: v for k, v in d.items() if k != "rewards"})
