"""Synthetic transitions: the codec round-trips exactly, and a generator fitted to transitions with a known
distribution and a known reward function reproduces the moments and the reward relation."""

import jax
import numpy as np

from envs.offline_data import OfflineDataset
from jaxdiff_rl.diffusion import GeneratorConfig
from jaxdiff_rl.train.off_policy import ActionSpec
from jaxdiff_rl.train.synthetic import SynthConfig, TransitionCodec, fidelity, fit_transition_model, \
    sample_transitions, upsample


def _data(n=4000, seed=0):
    """s ~ N([1, -2], diag(0.5^2, 2^2)), a ~ U(0, 4) (a Box [0, 4]), r = s_0 + a / 2, s' = s + 0.1, a constant
    budget feature 7 in s; terminal with probability 0.25."""
    rng = np.random.default_rng(seed)
    s = np.stack([rng.normal(1.0, 0.5, n), rng.normal(-2.0, 2.0, n), np.full(n, 7.0)], 1).astype(np.float32)
    a = rng.uniform(0.0, 4.0, (n, 1)).astype(np.float32)
    return OfflineDataset(observations=s, actions=a, rewards=s[:, 0] + 0.5 * a[:, 0], next_observations=s + 0.1,
                          terminals=rng.uniform(size=n) < 0.25, truncations=np.zeros(n, bool))


SPEC = ActionSpec(False, 1, 3, (0.0,), (4.0,))


def test_codec_round_trips_continuous_and_discrete():
    data = _data(50)
    codec = TransitionCodec.fit(data, SPEC)
    back = codec.decode(codec.encode(data))
    for name in ("observations", "actions", "rewards", "next_observations", "terminals"):
        np.testing.assert_allclose(getattr(back, name), getattr(data, name), atol=1e-5)
    assert codec.constant[2] and back.observations[:, 2].tolist() == [7.0] * 50
    rng = np.random.default_rng(1)
    disc = OfflineDataset(observations=data.observations, actions=rng.integers(0, 5, 50).astype(np.int32),
                          rewards=data.rewards, next_observations=data.next_observations, terminals=data.terminals,
                          truncations=data.truncations)
    dspec = ActionSpec(True, 5, 3)
    dcodec = TransitionCodec.fit(disc, dspec)
    assert dcodec.width == 2 * 3 + 5 + 2
    np.testing.assert_array_equal(dcodec.decode(dcodec.encode(disc)).actions, disc.actions)


def test_fitted_generator_reproduces_moments_and_the_reward_relation():
    data = _data()
    config = SynthConfig(generator=GeneratorConfig("ddpm", 30, "vp"), hidden_dims=(128, 128), steps=3000, lr=1e-3)
    model = fit_transition_model(jax.random.PRNGKey(0), config, data, SPEC)
    assert model.losses[-1] < 0.6 * model.losses[0]
    fake = sample_transitions(jax.random.PRNGKey(1), model, 4000)
    obs = fake.observations
    z = (obs[:, :2].mean(0) - [1.0, -2.0]) / [0.5, 2.0]  # mean errors in standard deviations
    assert np.all(np.abs(z) < 0.12), z
    np.testing.assert_allclose(obs[:, :2].std(0), [0.5, 2.0], rtol=0.15)
    assert np.all(obs[:, 2] == 7.0) and np.all((fake.actions >= 0) & (fake.actions <= 4))
    np.testing.assert_allclose(fake.actions.std(), 4 / np.sqrt(12), rtol=0.15)
    np.testing.assert_allclose(fake.terminals.mean(), 0.25, atol=0.05)
    score = fidelity(fake, data, reward_fn=lambda s, a: s[:, 0] + 0.5 * a[:, 0],
                     valid_fn=lambda s: np.abs(s[:, 2] - 7.0) < 1e-6)
    # the reward relation holds to ~1% of r's spread (std ~0.77; unrelated (s, a, r) would be off by ~0.9)
    assert score["reward_mae"] < 0.05 and score["valid_fraction"] == 1.0
    assert score["mean_gap"] < 0.1 and score["std_gap"] < 0.15
    big, _ = upsample(jax.random.PRNGKey(2), data.subset(500), SPEC, 800,
                      SynthConfig(generator=GeneratorConfig("ddpm", 10, "vp"), hidden_dims=(32,), steps=100))
    assert big.size == 800 and big.metadata["real"] == 500
    np.testing.assert_array_equal(big.observations[:500], data.subset(500).observations)


def test_mix_batch_keeps_the_real_rows_and_decodes_the_pool():
    import jax.numpy as jnp

    from jaxdiff_rl.train.buffer import Batch
    from jaxdiff_rl.train.synthetic import MixConfig, MixState, _vectors, mix_batch

    rng = np.random.default_rng(4)
    b, s, a, gamma = 8, 3, 2, 0.9
    make = lambda n: Batch(obs=jnp.asarray(rng.normal(size=(n, s)), jnp.float32),
                           action=jnp.asarray(rng.uniform(-1, 1, (n, a)), jnp.float32),
                           reward=jnp.asarray(rng.normal(size=n), jnp.float32),
                           next_obs=jnp.asarray(rng.normal(size=(n, s)), jnp.float32),
                           discount=jnp.asarray(gamma * (rng.uniform(size=n) < 0.5), jnp.float32))
    real, stored = make(b), make(1)  # a pool holding one transition: every generated row decodes to it
    x = _vectors(stored, a, False, gamma)
    mean, std = jnp.asarray(rng.normal(size=x.shape[1]), jnp.float32), jnp.full(x.shape[1], 2.0)
    mix = MixConfig(ratio=0.25, pool_size=1, refit_every=1)
    state = MixState(params=None, opt_state=None, pool=x, mean=mean, std=std, written=jnp.int32(1),
                     ready=jnp.bool_(True))
    out = mix_batch(mix, state, real, jax.random.PRNGKey(0), s, a, False, gamma)
    for name in ("obs", "action", "reward", "next_obs", "discount"):
        got, want = np.asarray(getattr(out, name)), np.asarray(getattr(real, name))
        np.testing.assert_allclose(got[:6], want[:6])
        np.testing.assert_allclose(got[6:], np.repeat(np.asarray(getattr(stored, name)), 2, axis=0), atol=1e-5)
    before = mix_batch(mix, state._replace(ready=jnp.bool_(False)), real, jax.random.PRNGKey(0), s, a, False, gamma)
    assert all(np.array_equal(np.asarray(getattr(before, n)), np.asarray(getattr(real, n))) for n in ("obs", "reward"))


def test_online_mixing_refits_and_trains():
    import envs
    from jaxdiff_rl import agents
    from jaxdiff_rl.agents.networks import ActorConfig
    from jaxdiff_rl.train import make_trainer
    from jaxdiff_rl.train.synthetic import MixConfig

    mix = MixConfig(ratio=0.5, pool_size=64, refit_every=3, fit_steps=4, stats_samples=64,
                    synth=SynthConfig(generator=GeneratorConfig("ddpm", 4, "vp"), hidden_dims=(16,), steps=1))
    config = agents.default_config("dm_ddpg", actor=ActorConfig(kind="diffusion", hidden_dims=(16,), diffusion_steps=2),
                                   critic_hidden_dims=(16,), num_envs=8, steps_per_iter=2, updates_per_iter=2,
                                   num_iterations=6, batch_size=32, buffer_size=256, synthetic=mix)
    env, params = envs.make("msr-3")
    state, m = jax.jit(make_trainer(config, env, params).train)(jax.random.PRNGKey(0), agents.default_hparams("dm_ddpg"))
    # updates start at iteration 1 (32 stored); 64 // 3 = 21 pool rows per iteration: the pool has turned over
    # once after iterations 1, 2, 3
    np.testing.assert_array_equal(m["synthetic_ready"], [0, 0, 0, 1, 1, 1])
    assert np.all(np.isfinite(m["critic_loss"][1:])) and np.all(np.isfinite(np.asarray(state.synthetic.pool)))
    import pytest

    with pytest.raises(ValueError, match="n_step=1"):
        config.replace(n_step=3)
