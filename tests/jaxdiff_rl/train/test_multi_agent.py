"""The multi-agent loop and MADDPG / DM-MADDPG: losses vs an explicit per-agent reference, the centralised critic's
inputs, parameter sharing, sweeps, a JaxMARL environment trained unmodified, learning on ic-power, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.multi_agent import from_jaxmarl
from jaxdiff_rl.agents import maddpg
from jaxdiff_rl.agents.networks import ActorConfig, actor_forward
from jaxdiff_rl.train import make_trainer
from jaxdiff_rl.train.buffer import Batch
from jaxdiff_rl.train.multi_agent import evaluate_reference

SMALL = dict(critic_hidden_dims=(32, 32), num_envs=4, batch_size=32, num_iterations=3)


def small_config(algo="maddpg", **kw):
    kind = "diffusion" if algo == "dm_maddpg" else "deterministic"
    return maddpg.default_config(algo, actor=ActorConfig(kind=kind, hidden_dims=(32, 32), diffusion_steps=3),
                                 **{**SMALL, **kw})


def random_batch(key, b, k, o, s, a):
    ks = jax.random.split(key, 6)
    obs = {"local": jax.random.normal(ks[0], (b, k, o)), "global": jax.random.normal(ks[1], (b, s))}
    nxt = {"local": jax.random.normal(ks[2], (b, k, o)), "global": jax.random.normal(ks[3], (b, s))}
    return Batch(obs=obs, action=jax.random.uniform(ks[4], (b, k, a), minval=-1, maxval=1),
                 reward=jax.random.normal(ks[5], (b, k)), next_obs=nxt, discount=jnp.full((b,), 0.9))


@pytest.mark.parametrize("share", [True, False])
def test_losses_equal_the_per_agent_maddpg_definition(share):
    """Critic and actor losses against a loop over agents that builds each agent's joint action explicitly."""
    b, k, o, s, a = 16, 3, 4, 7, 2
    config = small_config(share_parameters=share, num_critics=2)
    hp = maddpg.default_hparams()
    state = maddpg.init(jax.random.PRNGKey(0), config, hp, k, o, s, a)
    batch = random_batch(jax.random.PRNGKey(1), b, k, o, s, a)
    key = jax.random.PRNGKey(2)
    new, metrics = jax.jit(maddpg.update, static_argnums=(1, 5))(key, config, state, batch, hp, a)
    critic = maddpg.make_critic(config, k)
    ids = jnp.eye(k)

    def act(params, kk, local):  # agent by agent, the way a reader would write it
        outs = []
        for i in range(k):
            p = params if share else jax.tree_util.tree_map(lambda x: x[i], params)
            inp = jnp.concatenate([local[:, i], jnp.broadcast_to(ids[i], (b, k))], -1) if share else local[:, i]
            ki = kk if share else jax.random.split(kk, k)[i]
            outs.append(actor_forward(config.actor, p, ki, inp, a, False).action)
        return jnp.stack(outs, 1)

    k_next, _, k_pi = jax.random.split(key, 3)
    next_a = act(state.target_actor, k_next, batch.next_obs["local"])
    q_next = critic.apply(state.target_critic, jnp.concatenate([batch.next_obs["global"], next_a.reshape(b, -1)], -1)).min(0)
    y = batch.reward + 0.9 * q_next
    q = critic.apply(state.critic, jnp.concatenate([batch.obs["global"], batch.action.reshape(b, -1)], -1))
    np.testing.assert_allclose(float(metrics["critic_loss"]), float(jnp.sum(jnp.mean((q - y) ** 2, (1, 2)))), rtol=1e-5)
    mu = act(state.actor, k_pi, batch.obs["local"]) if not share else None
    if share:
        width = o + k
        flat = jnp.concatenate([batch.obs["local"], jnp.broadcast_to(ids, (b, k, k))], -1).reshape(b * k, width)
        mu = actor_forward(config.actor, state.actor, k_pi, flat, a, False).action.reshape(b, k, a)
    critic_new = new.critic
    terms = []
    for i in range(k):
        joint = batch.action.at[:, i].set(mu[:, i])
        q_i = critic.apply(critic_new, jnp.concatenate([batch.obs["global"], joint.reshape(b, -1)], -1))[0, :, i]
        terms.append(-jnp.mean(q_i))
    np.testing.assert_allclose(float(metrics["actor_loss"]), float(np.mean(terms)), rtol=1e-5)
    # the critic sees exactly the joint state and actions: its first layer takes S + K A inputs, it has K heads
    kernels = [leaf.shape for path, leaf in jax.tree_util.tree_flatten_with_path(state.critic)[0]
               if "kernel" in str(path[-1])]
    assert kernels[0] == (2, s + k * a, 32) and kernels[-1] == (2, 32, k)
    actor_in = [leaf.shape for path, leaf in jax.tree_util.tree_flatten_with_path(state.actor)[0]
                if "kernel" in str(path[-1])][0]
    assert actor_in == ((o + k, 32) if share else (k, o, 32))


def test_actor_gradient_of_agent_i_flows_only_through_its_own_action():
    b, k, o, s, a = 8, 3, 2, 5, 1
    config = small_config(share_parameters=False)
    hp = maddpg.default_hparams(lr_critic=0.0)
    state = maddpg.init(jax.random.PRNGKey(0), config, hp, k, o, s, a)
    batch = random_batch(jax.random.PRNGKey(1), b, k, o, s, a)
    critic = maddpg.make_critic(config, k)
    # make agent 2's Q head ignore everything: agent 2's actor then gets no gradient, the others do
    head = jax.tree_util.tree_map(lambda x: x, state.critic)
    last = [p for p in jax.tree_util.tree_flatten_with_path(head)[0] if "kernel" in str(p[0][-1])][-1][0]
    params = head["params"]
    name = [n for n in params if "MLP" in n or "VmapMLP" in n][0]
    layers = params[name]
    last_layer = sorted(layers)[-1]
    layers[last_layer]["kernel"] = layers[last_layer]["kernel"].at[:, :, 2].set(0.0)
    layers[last_layer]["bias"] = layers[last_layer]["bias"].at[:, 2].set(0.0)
    state = state.replace(critic=head)
    new, _ = jax.jit(maddpg.update, static_argnums=(1, 5))(jax.random.PRNGKey(2), config, state, batch, hp, a)
    moved = [float(jnp.max(jnp.abs(jax.tree_util.tree_leaves(new.actor)[0][i] - jax.tree_util.tree_leaves(state.actor)[0][i])))
             for i in range(k)]
    del last, critic
    assert moved[0] > 0 and moved[1] > 0 and moved[2] == 0.0


@pytest.mark.heavy
def test_vmap_over_seeds_equals_separate_runs_and_same_key_same_bits():
    env, params = envs.make("ic-power", num_links=3)
    trainer = make_trainer(small_config("dm_maddpg"), env, params)
    hp = maddpg.default_hparams(gamma=0.0)
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    stacked = jax.tree_util.tree_map(lambda x: jnp.stack([x, x]), hp)
    _, m_vmap = jax.jit(jax.vmap(trainer.train))(keys, stacked)
    train = jax.jit(trainer.train)
    _, m0 = train(keys[0], hp)
    _, m0b = train(keys[0], hp)
    _, m1 = train(keys[1], hp)
    for name in ("critic_loss", "actor_loss", "reward_mean"):
        np.testing.assert_array_equal(np.asarray(m0[name]), np.asarray(m0b[name]))
        np.testing.assert_allclose(np.asarray(m_vmap[name][0]), np.asarray(m0[name]), rtol=2e-5, atol=1e-6)
        np.testing.assert_allclose(np.asarray(m_vmap[name][1]), np.asarray(m1[name]), rtol=2e-5, atol=1e-6)


@pytest.mark.heavy
def test_maddpg_learns_on_ic_power_beyond_random_powers():
    """K = 3 Rayleigh links: the learned power control must clearly beat random powers and reach full power's sum
    rate (the point MADDPG settles at on this budget; WMMSE is better, see experiments/multi_agent/README.md)."""
    env, params = envs.make("ic-power", num_links=3)
    config = maddpg.default_config("maddpg", actor=ActorConfig(kind="deterministic", hidden_dims=(64, 64)),
                                   critic_hidden_dims=(64, 64), num_envs=16, batch_size=128, num_iterations=700,
                                   learning_starts=256)
    hp = maddpg.default_hparams(gamma=0.0, lr_actor=1e-3, explore_noise=0.2)
    trainer = make_trainer(config, env, params)
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0), hp)
    key = jax.random.PRNGKey(9)
    learned = jax.jit(lambda s: trainer.evaluate(s, key, hp, 64, num_envs=64))(state)
    rand, full, wm = (evaluate_reference(env, params, name, key, 64, 64) for name in ("random", "max_power", "wmmse"))
    print({n: float(r["reference_fraction"]) for n, r in (("maddpg", learned), ("random", rand), ("max", full),
                                                          ("wmmse", wm))})
    np.testing.assert_allclose(float(wm["reference_fraction"]), 1.0, rtol=1e-6)
    assert float(learned["reward_mean"]) > float(rand["reward_mean"]) * 1.05
    assert float(learned["reward_mean"]) > float(full["reward_mean"]) * 0.97


def test_a_jaxmarl_environment_trains_unmodified():
    jaxmarl = pytest.importorskip("jaxmarl")
    raw = jaxmarl.make("MPE_simple_spread_v3", action_type="Continuous")
    env = from_jaxmarl(raw, dones_are_truncations=True)
    trainer = make_trainer(small_config(num_envs=2, num_iterations=30, batch_size=16), env, None)
    hp = maddpg.default_hparams()
    state, metrics = jax.jit(trainer.train)(jax.random.PRNGKey(0), hp)
    k = len(raw.agents)
    assert state.obs.shape == (2, k, raw.observation_space(raw.agents[0]).shape[0])
    assert state.buffer.data.action.shape[-2:] == (k, 5) and state.buffer.data.reward.shape[-1] == k
    updating = np.asarray(metrics["updating"]) > 0
    assert updating.any() and np.all(np.isfinite(np.asarray(metrics["critic_loss"])[updating]))
    # MPE episodes end at max_steps (25): truncations, and the runner's return_mean sees them
    assert float(np.sum(metrics["episodes"])) == 2 and np.isfinite(np.nanmean(metrics["return_mean"]))
    ev = jax.jit(lambda s: trainer.evaluate(s, jax.random.PRNGKey(1), hp, 30))(state)
    assert float(ev["episodes"]) == 2 and np.isfinite(float(ev["return_mean"]))


def test_bad_input_is_a_clear_error():
    env, params = envs.make("ic-power", num_links=3)
    with pytest.raises(ValueError, match="actor.kind must be 'diffusion'"):
        maddpg.MAConfig(algo="dm_maddpg")
    with pytest.raises(ValueError, match="MAConfig.algo"):
        maddpg.MAConfig(algo="vdn")
    with pytest.raises(ValueError, match="batch_size"):
        small_config(batch_size=10, buffer_size=5)
    with pytest.raises(TypeError, match="MAConfig"):
        from jaxdiff_rl.train import multi_agent
        multi_agent.make_trainer(object(), env, params)
    from jaxdiff_rl.app.experiment import TrainSpec, build
    with pytest.raises(ValueError, match="multi-agent environment"):
        build(TrainSpec(algo="maddpg", env="msr-3"))
    with pytest.raises(ValueError, match="single-agent environment"):
        build(TrainSpec(algo="ddpg", env="ic-power"))
    with pytest.raises(ValueError, match="not its settings"):
        build(TrainSpec(algo="maddpg", env="ic-power", static={"n_step": 3}))


def test_qmix_mixer_is_monotone_in_every_utility():
    from jaxdiff_rl.agents.qmix import Mixer

    mixer = Mixer(16)
    params = mixer.init(jax.random.PRNGKey(0), jnp.zeros((1, 5)), jnp.zeros((1, 9)))
    q = jax.random.normal(jax.random.PRNGKey(1), (256, 5)) * 3
    s = jax.random.normal(jax.random.PRNGKey(2), (256, 9)) * 3
    grads = jax.vmap(jax.grad(lambda qq, ss: mixer.apply(params, qq[None], ss[None])[0]))(q, s)
    assert np.all(np.asarray(grads) >= 0) and np.mean(np.asarray(grads) > 0) > 0.5
    # and a finite-difference check of one direction, so the gradient is the mixer's
    eps = 1e-3
    up = mixer.apply(params, q.at[:, 2].add(eps), s)
    down = mixer.apply(params, q.at[:, 2].add(-eps), s)
    np.testing.assert_allclose(np.asarray((up - down) / (2 * eps)), np.asarray(grads[:, 2]), rtol=2e-2, atol=2e-3)


def test_qmix_td_loss_matches_the_definition():
    from jaxdiff_rl.agents import qmix

    b, k, o, s, a = 8, 3, 4, 6, 4
    config = maddpg.default_config("qmix", actor=ActorConfig(kind="categorical", hidden_dims=(16,)), mixer_embed=8)
    hp = qmix.default_hparams(gamma=0.9)
    state = qmix.init(jax.random.PRNGKey(0), config, hp, k, o, s, a)
    batch = random_batch(jax.random.PRNGKey(1), b, k, o, s, 1)
    batch = batch.replace(action=jax.random.randint(jax.random.PRNGKey(3), (b, k), 0, a))
    _, metrics = jax.jit(qmix.update, static_argnums=(1, 5))(jax.random.PRNGKey(2), config, state, batch, hp, a)
    net, mixer = qmix.utility_net(config, a), qmix.Mixer(8)
    ids = jnp.eye(k)
    total = 0.0
    for j in range(b):  # one transition at a time
        inp = lambda loc: jnp.concatenate([loc[j], ids], -1)
        q_next_online = net.apply(state.actor, inp(batch.next_obs["local"]))
        q_next_target = net.apply(state.target_actor, inp(batch.next_obs["local"]))
        chosen = q_next_target[jnp.arange(k), jnp.argmax(q_next_online, -1)]
        y = batch.reward[j].mean() + 0.9 * mixer.apply(state.target_critic, chosen[None], batch.next_obs["global"][j][None])[0]
        q = net.apply(state.actor, inp(batch.obs["local"]))[jnp.arange(k), batch.action[j]]
        total += (mixer.apply(state.critic, q[None], batch.obs["global"][j][None])[0] - y) ** 2
    np.testing.assert_allclose(float(metrics["critic_loss"]), float(total / b), rtol=1e-5)


@pytest.mark.heavy
def test_qmix_learns_channel_access_beyond_the_heuristics():
    from jaxdiff_rl.agents import qmix

    env, params = envs.make("mc-access", num_users=3, num_channels=2)
    config = maddpg.default_config("qmix", actor=ActorConfig(kind="categorical", hidden_dims=(64, 64)), num_envs=16,
                                   batch_size=128, num_iterations=800, learning_starts=256)
    hp = qmix.default_hparams(gamma=0.0)
    trainer = make_trainer(config, env, params)
    state, _ = jax.jit(trainer.train)(jax.random.PRNGKey(0), hp)
    key = jax.random.PRNGKey(4)
    learned = jax.jit(lambda s: trainer.evaluate(s, key, hp, 64, num_envs=64))(state)
    heuristic = evaluate_reference(env, params, "best_channel", key, 64, 64)
    print(float(learned["reference_fraction"]), float(heuristic["reference_fraction"]))
    assert float(learned["reference_fraction"]) > float(heuristic["reference_fraction"]) + 0.15
    with pytest.raises(ValueError, match="qmix needs discrete"):
        make_trainer(config, *envs.make("ic-power", num_links=3))
    with pytest.raises(ValueError, match="maddpg needs continuous"):
        make_trainer(small_config(), env, params)


def test_dm_qmix_losses_match_the_definition():
    from jaxdiff_rl.agents import qmix

    b, k, o, s, a = 8, 3, 4, 6, 3
    config = maddpg.default_config("dm_qmix", actor=ActorConfig(kind="diffusion", hidden_dims=(16,), diffusion_steps=3),
                                   mixer_embed=8)
    hp = qmix.default_hparams(gamma=0.9, alpha=0.1)
    state = qmix.dm_init(jax.random.PRNGKey(0), config, hp, k, o, s, a)
    batch = random_batch(jax.random.PRNGKey(1), b, k, o, s, 1)
    batch = batch.replace(action=jax.random.randint(jax.random.PRNGKey(3), (b, k), 0, a))
    key = jax.random.PRNGKey(2)
    new, metrics = jax.jit(qmix.dm_update, static_argnums=(1, 5))(key, config, state, batch, hp, a)
    k_next, k_pi = jax.random.split(key)
    ids = jnp.eye(k)
    net, mixer = qmix.utility_net(config, a), qmix.Mixer(8)
    with_ids = lambda loc: jnp.concatenate([loc, jnp.broadcast_to(ids, (b, k, k))], -1).reshape(b * k, -1)
    probs = lambda params, kk, loc: actor_forward(config.actor, params, kk, with_ids(loc), a, True).probs.reshape(b, k, a)
    util_t, mix_t = state.target_critic
    q_next = jnp.sum(probs(state.target_actor, k_next, batch.next_obs["local"])
                     * net.apply(util_t, with_ids(batch.next_obs["local"])).reshape(b, k, a), -1)
    y = batch.reward.mean(-1) + 0.9 * mixer.apply(mix_t, q_next, batch.next_obs["global"])
    util, mix = state.critic
    q = net.apply(util, with_ids(batch.obs["local"])).reshape(b, k, a)[jnp.arange(b)[:, None], jnp.arange(k), batch.action]
    np.testing.assert_allclose(float(metrics["critic_loss"]), float(jnp.mean((mixer.apply(mix, q, batch.obs["global"]) - y) ** 2)),
                               rtol=1e-5)
    q_all = net.apply(new.critic[0], with_ids(batch.obs["local"])).reshape(b, k, a)
    pi = probs(state.actor, k_pi, batch.obs["local"])
    expected = np.mean(np.sum(np.asarray(pi) * (0.1 * np.log(np.asarray(pi)) - np.asarray(q_all)), -1))
    np.testing.assert_allclose(float(metrics["actor_loss"]), expected, rtol=1e-4, atol=1e-6)


@pytest.mark.heavy
def test_dm_qmix_learns_channel_access_beyond_the_heuristics():
    from jaxdiff_rl.agents import qmix

    env, params = envs.make("mc-access", num_users=3, num_channels=2)
    config = maddpg.default_config("dm_qmix", num_envs=16, batch_size=128, num_iterations=800, learning_starts=256)
    hp = qmix.default_hparams(gamma=0.0)
    trainer = make_trainer(config, env, params)
    state, _ = jax.jit(trainer.train)(jax.random.PRNGKey(0), hp)
    learned = jax.jit(lambda s: trainer.evaluate(s, jax.random.PRNGKey(4), hp, 64, num_envs=64))(state)
    assert float(learned["reference_fraction"]) > 0.35 + 0.15  # best channel: 0.35 of the optimum here


def test_runner_checkpoints_and_resumes_bit_identically(tmp_path):
    import shutil

    from jaxdiff_rl.app.runner import run

    env, params = envs.make("ic-power", num_links=3)
    trainer = make_trainer(small_config("dm_maddpg", num_iterations=4), env, params)
    hp = maddpg.default_hparams(gamma=0.0)
    full = run(trainer, hp, jax.random.key(3), out_dir=tmp_path, chunk_iterations=1, progress=False)
    shutil.rmtree(tmp_path / "checkpoints" / "4")  # the last chunk never saved: resume from iteration 3
    resumed = run(trainer, hp, jax.random.key(3), out_dir=tmp_path, chunk_iterations=1, progress=False, resume=True)
    assert resumed.metrics["critic_loss"].shape == (1,)
    for a, b in zip(jax.tree_util.tree_leaves(full.state), jax.tree_util.tree_leaves(resumed.state)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
