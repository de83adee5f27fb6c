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
from jaxdiff_rl.buffer import Batch


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
