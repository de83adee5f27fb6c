"""TD3+BC (Fujimoto & Gu 2021), the Gaussian-free minimalist offline baseline: TD3 on the dataset with a
behaviour-cloning term in the actor loss.

    a' = clip(mu'(s') + clip(N(0, target_noise^2), -noise_clip, noise_clip), -1, 1)     (discrete: argmax mu'(s'))
    y  = r + gamma (1 - terminal) min_i Q'_i(s', a');      critic = sum_i MSE(Q_i(s, a), y)
    actor (every policy_delay updates) = -lambda mean Q_1(s, mu(s)) + mean ||mu(s) - a||^2,
    lambda = td3_alpha / stop_grad(mean |Q_1(s, mu(s))|)     (the paper's alpha = 2.5)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff_rl.agents.base import adam_step, critic_step, polyak
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.agents.offline_base import (OfflineConfig, OfflineHparams, OfflineState, actor_vectors, bc_target,
                                            clip_by_norm, make_critic, q_policy, td_target)
from jaxdiff_rl.train.buffer import Batch

__all__ = ["default_config", "default_hparams", "update"]


def default_config(**overrides: Any) -> OfflineConfig:
    """The paper's settings: 2 x 256 actor and critics, policy delay 2."""
    base = dict(algo="td3_bc", actor=ActorConfig(kind="deterministic", hidden_dims=(256, 256), activation="relu"),
                critic_hidden_dims=(256, 256), critic_activation="relu", policy_delay=2)
    return OfflineConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> OfflineHparams:
    base = dict(lr_actor=3e-4, lr_critic=3e-4, gamma=0.99, tau=0.005, td3_alpha=2.5, target_noise=0.2,
                noise_clip=0.5)
    return OfflineHparams(**{**base, **overrides})


def update(key: jax.Array, config: OfflineConfig, state: OfflineState, batch: Batch, hparams: OfflineHparams,
           action_dim: int, discrete: bool) -> tuple[OfflineState, dict[str, jax.Array]]:
    """One critic update and, every `policy_delay`, one actor + target update. Pure."""
    critic_net = make_critic(config, action_dim, discrete)
    k_next, k_smooth = jax.random.split(key)
    next_x = actor_vectors(k_next, config, state, state.target_actor, batch.next_obs, action_dim)
    if not discrete:
        noise = jnp.clip(hparams.target_noise * jax.random.normal(k_smooth, next_x.shape),
                         -hparams.noise_clip, hparams.noise_clip)
        next_x = jnp.clip(next_x + noise, -1.0, 1.0)
    y = td_target(config, state, batch, next_x, action_dim, discrete)
    critic, critic_opt, critic_loss, q, _ = critic_step(critic_net, state, batch, y, hparams, discrete)

    target = bc_target(batch.action, action_dim, discrete)

    def actor_loss_fn(params):
        x = actor_vectors(key, config, state, params, batch.obs, action_dim)
        q_pi = q_policy(critic_net, state.critic, batch.obs, x, discrete, config.logit_scale)[0]
        lam = hparams.td3_alpha / jax.lax.stop_gradient(jnp.mean(jnp.abs(q_pi)) + 1e-8)
        bc = jnp.mean(jnp.sum((x - target) ** 2, axis=-1))
        return -lam * jnp.mean(q_pi) + bc, bc

    (actor_loss, bc), grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor)
    grads, norm = clip_by_norm(grads, hparams.max_grad_norm)
    actor_new, actor_opt_new = adam_step(state.actor, grads, state.actor_opt, hparams.lr_actor, hparams.weight_decay)
    do = (state.updates % config.policy_delay) == 0  # a select: under vmap both branches run anyway
    pick = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(do, a, b), new, old)
    actor = pick(actor_new, state.actor)
    new_state = state.replace(
        actor=actor, actor_opt=pick(actor_opt_new, state.actor_opt), critic=critic, critic_opt=critic_opt,
        target_actor=pick(polyak(state.target_actor, actor, hparams.tau), state.target_actor),
        target_critic=pick(polyak(state.target_critic, critic, hparams.tau), state.target_critic),
        updates=state.updates + 1)
    return new_state, {"critic_loss": critic_loss, "actor_loss": actor_loss, "bc_loss": bc, "q_mean": jnp.mean(q),
                       "target_mean": jnp.mean(y), "grad_norm/actor": norm}
