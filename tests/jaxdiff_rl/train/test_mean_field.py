"""Mean-field actor-critic (MFAC, DM-MFAC): losses vs an agent-by-agent reference, network widths that do not grow
with K, the mean action the loop appends, learning on many-agent power control, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxdiff_rl.agents import maddpg, mean_field
from jaxdiff_rl.agents.networks import ActorConfig, actor_forward
from jaxdiff_rl.train import make_trainer
from jaxdiff_rl.train.buffer import Batch
from jaxdiff_rl.train.multi_agent import evaluate_policy, evaluate_reference


def small_config(algo="mfac", **kw):
    kind = "diffusion" if algo == "dm_mfac" else "deterministic"
    base = dict(critic_hidden_dims=(32, 32), num_envs=4, batch_size=32, num_iterations=3)
    return maddpg.default_config(algo, actor=ActorConfig(kind=kind, hidden_dims=(32, 32), diffusion_steps=3),
                                 **{**base, **kw})


def random_batch(key, b, k, o, a):
    ks = jax.random.split(key, 4)
    placeholder = {"global": jnp.zeros((b, 1))}
    return Batch(obs={"local": jax.random.normal(ks[0], (b, k, o)), **placeholder},
                 action=jax.random.uniform(ks[1], (b, k, a), minval=-1, maxval=1),
                 reward=jax.random.normal(ks[2], (b, k)),
                 next_obs={"local": jax.random.normal(ks[3], (b, k, o)), **placeholder},
                 discount=jnp.full((b,), 0.9))


def test_mean_of_others_matches_a_numpy_loop():
    a = np.asarray(jax.random.normal(jax.random.PRNGKey(0), (3, 5, 2)))
    expected = np.stack([np.mean(np.delete(a, i, axis=1), axis=1) for i in range(5)], axis=1)
    np.testing.assert_allclose(np.asarray(mean_field.mean_of_others(jnp.asarray(a))), expected, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("algo", ["mfac", "dm_mfac"])
def test_losses_equal_the_agent_by_agent_mean_field_definition(algo):
    """Critic and actor losses against a loop over agents i that forms abar_{-i} and Q(o_i, a_i, abar_{-i}) one by one."""
    b, k, o, a = 8, 4, 5, 2  # o: the augmented width (o + A of the environment)
    config = small_config(algo, num_critics=2)
    hp = maddpg.default_hparams()
    state = mean_field.init(jax.random.PRNGKey(0), config, hp, k, o - a, 1, a)
    batch = random_batch(jax.random.PRNGKey(1), b, k, o, a)
    key = jax.random.PRNGKey(2)
    new, metrics = jax.jit(mean_field.update, static_argnums=(1, 5))(key, config, state, batch, hp, a)
    critic = mean_field.make_critic(config)
    k_next, _, k_pi = jax.random.split(key, 3)
    act = lambda params, kk, local: actor_forward(config.actor, params, kk, local.reshape(b * k, o), a,
                                                  False).action.reshape(b, k, a)
    next_a = np.asarray(act(state.target_actor, k_next, batch.next_obs["local"]))
    q_sq, actor_terms = [], []
    mu = np.asarray(act(state.actor, k_pi, batch.obs["local"]))
    for i in range(k):
        others = [j for j in range(k) if j != i]
        nbar = next_a[:, others].mean(1)
        x_next = jnp.concatenate([batch.next_obs["local"][:, i], next_a[:, i], nbar], -1)
        y = batch.reward[:, i] + 0.9 * critic.apply(state.target_critic, x_next)[..., 0].min(0)
        abar = np.asarray(batch.action)[:, others].mean(1)
        x = jnp.concatenate([batch.obs["local"][:, i], batch.action[:, i], abar], -1)
        q_sq.append((critic.apply(state.critic, x)[..., 0] - y[None]) ** 2)  # [C, B]
        x_mu = jnp.concatenate([batch.obs["local"][:, i], mu[:, i], abar], -1)
        actor_terms.append(-critic.apply(new.critic, x_mu)[0, :, 0])
    expected_critic = float(jnp.sum(jnp.mean(jnp.stack(q_sq, -1), axis=(1, 2))))
    np.testing.assert_allclose(float(metrics["critic_loss"]), expected_critic, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["actor_loss"]), float(jnp.mean(jnp.stack(actor_terms))), rtol=1e-5)


def test_no_network_width_depends_on_the_number_of_agents():
    """The mean-field approximation's point: the same parameter shapes for K = 4 and K = 256 (MADDPG's centralised
    critic grows with K A + S)."""
    config = small_config()
    hp = maddpg.default_hparams()
    states = [mean_field.init(jax.random.PRNGKey(0), config, hp, k, 6, 7 * k * k, 1) for k in (4, 256)]
    shapes = [[leaf.shape for leaf in jax.tree_util.tree_leaves(s)] for s in states]
    assert shapes[0] == shapes[1]
    kernels = [leaf.shape for path, leaf in jax.tree_util.tree_flatten_with_path(states[0].critic)[0]
               if "kernel" in str(path[-1])]
    assert kernels[0] == (1, 6 + 1 + 2, 32)  # [o, abar(t-1)] + a_i + abar_{-i}


def test_the_loop_appends_the_previous_mean_action_and_zeroes_it_after_a_reset():
    env, params = envs.make("ic-power", num_links=4, max_steps_in_episode=3)
    config = small_config(num_envs=2, num_iterations=7, batch_size=8, buffer_size=64)
    trainer = make_trainer(config, env, params)
    state, _ = jax.jit(trainer.train)(jax.random.PRNGKey(0), maddpg.default_hparams())
    data = state.buffer.data
    steps = int(state.buffer.size)
    assert steps == 7
    local, nxt, action = (np.asarray(x[:steps]) for x in (data.obs["local"], data.next_obs["local"], data.action))
    assert local.shape == (7, 2, 4, 6 + 1) and data.obs["global"].shape[-1] == 1
    mean = action.mean(axis=2)  # [T, N, 1]
    for t in range(steps):
        expected_prev = np.zeros((2, 1)) if t % 3 == 0 else mean[t - 1]  # episodes of 3 slots
        np.testing.assert_allclose(local[t, :, :, -1], np.broadcast_to(expected_prev, (2, 4)), atol=1e-6)
        np.testing.assert_allclose(nxt[t, :, :, -1], np.broadcast_to(mean[t], (2, 4)), atol=1e-6)
    # the env part of the observation is untouched
    np.testing.assert_array_equal(local[1:, :, :, :6][np.arange(6) % 3 != 2], nxt[:-1, :, :, :6][np.arange(6) % 3 != 2])


def test_evaluation_memory_follows_the_same_rule():
    """evaluate_policy's recurrent form: the memory the policy sees is the last mean action, reset at episode ends."""
    env, params = envs.make("ic-power", num_links=3, max_steps_in_episode=2)
    seen = []

    def recurrent(key, local, env_state, memory):
        powers = jax.random.uniform(key, (local.shape[0], 3), maxval=params.p_max)
        jax.debug.callback(lambda m, p: seen.append((np.asarray(m), np.asarray(p))), memory, powers, ordered=True)
        actions = {agent: powers[:, i:i + 1] for i, agent in enumerate(env.agents)}
        return actions, jnp.mean(powers, axis=1, keepdims=True)

    evaluate_policy(env, params, recurrent, jax.random.PRNGKey(0), 5, 2, memory=jnp.full((2, 1), -7.0))
    jax.effects_barrier()
    for t, (memory, _) in enumerate(seen):
        expected = np.full((2, 1), -7.0) if t % 2 == 0 else seen[t - 1][1].mean(1, keepdims=True)
        np.testing.assert_allclose(memory, expected, rtol=1e-6)


@pytest.mark.slow
def test_mfac_learns_many_agent_power_control_beyond_full_power():
    """ic-power-64 (difference rewards): the shared mean-field actor must beat full power and random powers by a clear
    margin (full power reaches about 0.73 of WMMSE on this model; MFAC about 0.86-0.89 at this budget). Slow: about
    a minute (learning starts after some 3000 slots)."""
    env, params = envs.make("ic-power-64")
    config = maddpg.default_config("mfac", actor=ActorConfig(kind="deterministic", hidden_dims=(64, 64)),
                                   critic_hidden_dims=(128, 128), num_envs=8, batch_size=64, num_iterations=1000,
                                   learning_starts=256)
    hp = maddpg.default_hparams(gamma=0.0, lr_actor=1e-3, explore_noise=0.2)
    trainer = make_trainer(config, env, params)
    state, _ = jax.jit(trainer.train)(jax.random.PRNGKey(0), hp)
    key = jax.random.PRNGKey(9)
    learned = jax.jit(lambda s: trainer.evaluate(s, key, hp, 16, num_envs=16))(state)
    full, rand = (evaluate_reference(env, params, name, key, 16, 16) for name in ("max_power", "random"))
    print({n: float(r["reference_fraction"]) for n, r in (("mfac", learned), ("max", full), ("random", rand))})
    assert float(learned["reward_mean"]) > 1.10 * float(full["reward_mean"])
    assert float(learned["reward_mean"]) > 1.10 * float(rand["reward_mean"])


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="share_parameters must be True"):
        small_config(share_parameters=False)
    with pytest.raises(ValueError, match="actor.kind must be 'diffusion'"):
        maddpg.MAConfig(algo="dm_mfac")
    env, params = envs.make("mc-access")
    with pytest.raises(ValueError, match="continuous"):
        make_trainer(small_config(), env, params)
    with pytest.raises(TypeError, match="reward_per_link"):
        envs.make("ic-power", reward_per_link=1)


def test_many_agent_presets_and_the_per_link_reward():
    env, params = envs.make("ic-power-256")
    assert env.num_agents == 256 and params.area_m == pytest.approx(1600.0) and params.gain_model == "distance"
    key = jax.random.PRNGKey(0)
    obs, state = env.reset(key, params)
    powers = jnp.full(256, 0.05)
    _, _, rewards, _, info = env.step(key, state, {a: powers[i:i + 1] for i, a in enumerate(env.agents)}, params)
    from envs.ic_power import difference_rewards, wmmse, weighted_sum_rate
    np.testing.assert_allclose(float(info["team_reward"]), float(jnp.sum(info["rates"])) / 256, rtol=1e-6)
    d = difference_rewards(powers, state.gains, 10.0 ** -12.5)
    np.testing.assert_allclose([float(rewards[a]) for a in ("tx_0", "tx_255")], np.asarray(d)[[0, 255]], rtol=1e-5)
    expected_ref = weighted_sum_rate(wmmse(state.gains, 0.1, 10.0 ** -12.5), state.gains, 10.0 ** -12.5) / 256
    np.testing.assert_allclose(float(env.reference_value(state, params)), float(expected_ref), rtol=1e-5)


def test_the_cli_spec_builds_a_mean_field_run_on_the_many_agent_preset():
    from jaxdiff_rl.app.experiment import TrainSpec, build
    trainer, keys, hp, _ = build(TrainSpec(algo="dm_mfac", env="ic-power-64", num_seeds=2, hparams={"gamma": 0.0}))
    assert trainer.config.algo == "dm_mfac" and trainer.config.actor.kind == "diffusion"
    assert keys.shape[0] == 2 and np.all(np.asarray(hp.gamma) == 0.0)
    with pytest.raises(ValueError, match="continuous"):
        build(TrainSpec(algo="mfac", env="mc-access"))
