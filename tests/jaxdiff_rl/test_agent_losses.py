"""The agents' losses against NumPy re-computations of their formulas (same network outputs, same keys), and
the optimizer step against a NumPy Adam with coupled L2 (PyTorch's `Adam(weight_decay=...)`)."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_rl import agents
from jaxdiff_rl.agents.base import adam_init, adam_step, init_agent, make_critic, polyak
from jaxdiff_rl.agents.networks import actor_forward
from jaxdiff_rl.agents import sac, td3
from jaxdiff_rl.train.buffer import Batch


def _batch(key, b, obs_dim, action_dim, discrete):
    k = jax.random.split(key, 5)
    action = (jax.random.randint(k[1], (b,), 0, action_dim) if discrete
              else jax.random.uniform(k[1], (b, action_dim), minval=-1, maxval=1))
    return Batch(obs=jax.random.normal(k[0], (b, obs_dim)), action=action, reward=jax.random.normal(k[2], (b,)),
                 next_obs=jax.random.normal(k[3], (b, obs_dim)),
                 discount=jnp.where(jax.random.uniform(k[4], (b,)) < 0.3, 0.0, 0.95 ** 3))


def test_d2sac_discrete_critic_and_actor_losses_match_numpy():
    cfg = agents.default_config("d2sac")
    cfg = cfg.replace(actor=dataclasses.replace(cfg.actor, hidden_dims=(16, 16), diffusion_steps=3),
                      critic_hidden_dims=(16, 16))
    hp = agents.default_hparams("d2sac")
    obs_dim, n_act, b = 6, 5, 32
    state = init_agent(jax.random.key(0), cfg, hp, obs_dim, n_act, True)
    # make the target networks differ from the online ones
    state = state.replace(target_critic=jax.tree_util.tree_map(lambda p: p * 1.1, state.critic),
                          target_actor=jax.tree_util.tree_map(lambda p: p * 0.9, state.actor))
    batch = _batch(jax.random.key(1), b, obs_dim, n_act, True)
    key = jax.random.key(2)
    _, metrics = jax.jit(sac.update, static_argnums=(1, 5, 6))(key, cfg, state, batch, hp, n_act, True)

    k_next, k_pi = jax.random.split(key)
    critic = make_critic(cfg, n_act, True)
    probs_next = np.asarray(actor_forward(cfg.actor, state.target_actor, k_next, batch.next_obs, n_act, True).probs)
    q_next = np.asarray(critic.apply(state.target_critic, batch.next_obs)).min(axis=0)  # [B, A]
    y = np.asarray(batch.reward) + np.asarray(batch.discount) * (probs_next * q_next).sum(-1)  # no entropy term
    q = np.asarray(critic.apply(state.critic, batch.obs))  # [2, B, A]
    q_taken = q[:, np.arange(b), np.asarray(batch.action)]
    critic_loss = sum(np.mean((q_taken[i] - y) ** 2) for i in range(2))
    np.testing.assert_allclose(float(metrics["critic_loss"]), critic_loss, rtol=1e-5)

    probs = np.asarray(actor_forward(cfg.actor, state.actor, k_pi, batch.obs, n_act, True).probs)
    entropy = -(probs * np.log(np.clip(probs, 1e-8, 1))).sum(-1)
    actor_loss = -np.mean(0.05 * entropy + (probs * q.min(axis=0)).sum(-1))
    np.testing.assert_allclose(float(metrics["actor_loss"]), actor_loss, rtol=1e-5)
    np.testing.assert_allclose(float(metrics["entropy"]), entropy.mean(), rtol=1e-5)


def test_td3_target_with_clipped_smoothing_and_delay_match_numpy():
    cfg = agents.default_config("td3")
    cfg = cfg.replace(actor=dataclasses.replace(cfg.actor, hidden_dims=(16,)), critic_hidden_dims=(16,))
    hp = agents.default_hparams("td3")
    obs_dim, a_dim, b = 4, 2, 16
    state = init_agent(jax.random.key(0), cfg, hp, obs_dim, a_dim, False)
    batch = _batch(jax.random.key(1), b, obs_dim, a_dim, False)
    key = jax.random.key(5)
    update = jax.jit(td3.update, static_argnums=(1, 5, 6))
    new, metrics = update(key, cfg, state, batch, hp, a_dim, False)

    k_next, k_smooth, _, _ = jax.random.split(key, 4)
    critic = make_critic(cfg, a_dim, False)
    mu = np.asarray(actor_forward(cfg.actor, state.target_actor, k_next, batch.next_obs, a_dim, False).action)
    noise = np.clip(0.2 * np.asarray(jax.random.normal(k_smooth, mu.shape)), -0.5, 0.5)
    a_next = np.clip(mu + noise, -1, 1)
    q_next = np.asarray(critic.apply(state.target_critic, batch.next_obs, jnp.asarray(a_next))).min(axis=0)
    y = np.asarray(batch.reward) + np.asarray(batch.discount) * q_next
    q = np.asarray(critic.apply(state.critic, batch.obs, batch.action))
    np.testing.assert_allclose(float(metrics["critic_loss"]), sum(np.mean((q[i] - y) ** 2) for i in range(2)), rtol=1e-5)
    np.testing.assert_allclose(float(metrics["target_mean"]), y.mean(), rtol=1e-5, atol=1e-6)
    # update 0: the actor and targets move (0 % 2 == 0); update 1: they must not (policy delay 2)
    moved = lambda a, b: any(not np.array_equal(x, y) for x, y in zip(jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)))
    assert moved(new.actor, state.actor) and moved(new.target_critic, state.target_critic)
    newer, _ = update(key, cfg, new, batch, hp, a_dim, False)
    assert not moved(newer.actor, new.actor) and not moved(newer.target_actor, new.target_actor)
    assert moved(newer.critic, new.critic)


def test_adam_with_coupled_l2_and_polyak_match_numpy():
    rng = np.random.default_rng(0)
    p = rng.normal(size=(3, 4)).astype(np.float32)
    grads = [rng.normal(size=(3, 4)).astype(np.float32) for _ in range(5)]
    lr, wd, b1, b2, eps = 1e-2, 1e-4, 0.9, 0.999, 1e-8
    params, opt = jnp.asarray(p), adam_init(jnp.asarray(p))
    ref, m, v = p.astype(np.float64), 0.0, 0.0
    for t, g in enumerate(grads, start=1):
        params, opt = adam_step(params, jnp.asarray(g), opt, lr, wd)
        g = g + wd * ref  # coupled L2: decay enters the moments (torch.optim.Adam(weight_decay=wd))
        m = b1 * m + (1 - b1) * g
        v = b2 * v + (1 - b2) * g * g
        ref = ref - lr * (m / (1 - b1**t)) / (np.sqrt(v / (1 - b2**t)) + eps)
    np.testing.assert_allclose(np.asarray(params), ref, rtol=1e-5, atol=1e-6)
    target = polyak(jnp.zeros(3), jnp.ones(3), 0.005)
    np.testing.assert_allclose(np.asarray(target), 0.005)


def test_best_of_n_keeps_the_candidate_with_the_highest_min_q():
    import pytest

    from jaxdiff_rl.agents.base import best_of_n as _best_of_n

    best_of_n = jax.jit(_best_of_n, static_argnums=(1, 4, 5))
    forward = jax.jit(actor_forward, static_argnums=(0, 4, 5))
    cfg = agents.default_config("dm_ddpg")
    cfg = cfg.replace(actor=dataclasses.replace(cfg.actor, hidden_dims=(16,), diffusion_steps=3),
                      critic_hidden_dims=(16,))
    obs_dim, dim, b, n = 4, 3, 5, 8
    state = init_agent(jax.random.key(0), cfg, agents.default_hparams("dm_ddpg"), obs_dim, dim, False)
    obs = jax.random.normal(jax.random.key(1), (b, obs_dim))
    key = jax.random.key(2)
    action, q = best_of_n(key, cfg, state, obs, dim, n)
    assert action.shape == (b, dim) and q.shape == (b,)

    # NumPy re-selection from the same candidates: row b * n + i of the repeated batch is candidate i of obs b
    repeated = np.repeat(np.asarray(obs), n, axis=0)
    cands = np.asarray(forward(cfg.actor, state.actor, key, jnp.asarray(repeated), dim, False).action)
    q_all = np.asarray(make_critic(cfg, dim, False).apply(state.critic, repeated, cands)).min(0).reshape(b, n)
    best = q_all.argmax(1)
    np.testing.assert_allclose(np.asarray(action), cands.reshape(b, n, dim)[np.arange(b), best], atol=1e-6)
    np.testing.assert_allclose(np.asarray(q), q_all.max(1), rtol=1e-5)
    assert len(set(best.tolist())) > 1 or b == 1  # the pick depends on the row, not a fixed index
    assert np.all(q_all.std(1) > 0)  # the chains differ, so the selection means something

    # one candidate is one plain draw of the actor
    one, _ = best_of_n(key, cfg, state, obs, dim, 1)
    np.testing.assert_allclose(np.asarray(one), np.asarray(forward(cfg.actor, state.actor, key, obs, dim, False).action),
                               atol=1e-6)
    # AgentConfig.action_candidates routes the agent's own actions (greedy and behaviour) through the same pick
    from jaxdiff_rl.agents.base import act

    cfg_n = cfg.replace(action_candidates=n)
    hp = agents.default_hparams("dm_ddpg")
    k_pi = jax.random.split(key, 4)[0]
    greedy = jax.jit(act, static_argnums=(1, 5, 6, 7))(key, cfg_n, state, obs, hp, dim, False, False)
    np.testing.assert_allclose(np.asarray(greedy), np.asarray(best_of_n(k_pi, cfg, state, obs, dim, n)[0]), atol=1e-6)
    with pytest.raises(ValueError, match="candidates"):
        _best_of_n(key, cfg, state, obs, dim, 0)
    with pytest.raises(ValueError, match="obs"):
        _best_of_n(key, cfg, state, obs[0], dim, 2)
