"""TD3 (Fujimoto et al. 2018): deterministic actor, clipped double Q, target policy smoothing, delayed actor and
target updates; the loss that DDPG, DM-TD3 and DM-DDPG (`ddpg.py`, `dm_td3.py`, `dm_ddpg.py`) reuse.

    a' = clip(mu'(s') + clip(N(0, target_noise^2), -noise_clip, noise_clip), -1, 1)   (smoothing on)
    y  = G_n + discount * min_i Q'_i(s', a')                                            (one critic: Q'_1)
    critic = sum_i MSE(Q_i(s, a), y)
    actor  = -E[Q_1(s, mu(s))]  (or min_i, `actor_q="min"`)  + bc_weight * the generator's loss of replay actions
             (DDPM denoising, flow matching or consistency training)
             every `policy_delay` critic updates, together with the Polyak target updates.

With a diffusion actor mu(s) is the reverse chain's output, and the actor gradient flows through all T
denoising steps (seed 003 Mode I).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff_rl.agents.base import (
    AgentConfig,
    AgentState,
    Hparams,
    adam_step,
    critic_step,
    layer_grad_means,
    layer_grad_norms,
    make_critic,
    polyak,
)
from jaxdiff_rl.agents.networks import ActorConfig, actor_forward, actor_module
from jaxdiff_rl.train.buffer import Batch
from jaxdiff_rl.diffusion import generator_loss

__all__ = ["default_config", "default_hparams", "update"]


def default_config(**overrides: Any) -> AgentConfig:
    """TD3: deterministic tanh actor, twin critics, smoothing, policy delay 2, Gaussian exploration."""
    base = dict(
        algo="td3", actor=ActorConfig(kind="deterministic"), target_actor=True, num_critics=2, policy_delay=2,
        target_smoothing=True, actor_q="first", exploration="gaussian",
    )
    return AgentConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> Hparams:
    base = dict(lr_actor=3e-4, lr_critic=3e-4, gamma=0.99, tau=0.005, explore_noise=0.1, target_noise=0.2,
                noise_clip=0.5)
    return Hparams(**{**base, **overrides})


def update(
    key: jax.Array,
    config: AgentConfig,
    state: AgentState,
    batch: Batch,
    hparams: Hparams,
    action_dim: int,
    discrete: bool,
) -> tuple[AgentState, dict[str, jax.Array]]:
    """One critic update and (every `policy_delay`) one actor + target update. Pure."""
    if discrete:
        raise ValueError(f"{config.algo} needs a continuous (Box) action space")
    critic_net = make_critic(config, action_dim, discrete)
    k_next, k_smooth, k_pi, k_bc = jax.random.split(key, 4)

    next_action = actor_forward(config.actor, state.target_actor, k_next, batch.next_obs, action_dim, False).action
    if config.target_smoothing:
        noise = jnp.clip(hparams.target_noise * jax.random.normal(k_smooth, next_action.shape),
                         -hparams.noise_clip, hparams.noise_clip)
        next_action = jnp.clip(next_action + noise, -1.0, 1.0)
    q_next = jnp.min(critic_net.apply(state.target_critic, batch.next_obs, next_action), axis=0)
    y = jax.lax.stop_gradient(batch.reward + batch.discount * q_next)

    critic, critic_opt, critic_loss, q, critic_grads = critic_step(critic_net, state, batch, y, hparams, False)

    def actor_loss_fn(params):
        action = actor_forward(config.actor, params, k_pi, batch.obs, action_dim, False).action
        q_pi = critic_net.apply(state.critic, batch.obs, action)
        q_pi = q_pi[0] if config.actor_q == "first" else jnp.min(q_pi, axis=0)
        loss = -jnp.mean(q_pi)
        bc = jnp.float32(0.0)
        if config.bc_loss:
            module = actor_module(config.actor, action_dim, batch.obs.shape[-1])
            model_fn = lambda x, t, cond, use_cond: module.apply(params, x, t, cond, use_cond)
            bc = generator_loss(k_bc, config.actor.generator_config, model_fn, batch.action, cond=batch.obs)
        return loss + hparams.bc_weight * bc, bc

    (actor_loss, bc_loss), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor)
    actor_new, actor_opt_new = adam_step(state.actor, actor_grads, state.actor_opt, hparams.lr_actor, hparams.weight_decay)

    # delayed policy and target updates; a select (not cond) because under vmap both branches run anyway
    do = (state.updates % config.policy_delay) == 0
    pick = lambda new, old: jax.tree_util.tree_map(lambda a, b: jnp.where(do, a, b), new, old)
    actor = pick(actor_new, state.actor)
    new_state = AgentState(
        actor=actor,
        critic=critic,
        target_actor=pick(polyak(state.target_actor, actor, hparams.tau), state.target_actor),
        target_critic=pick(polyak(state.target_critic, critic, hparams.tau), state.target_critic),
        actor_opt=pick(actor_opt_new, state.actor_opt),
        critic_opt=critic_opt,
        log_alpha=state.log_alpha,
        alpha_opt=state.alpha_opt,
        updates=state.updates + 1,
    )
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": actor_loss,
        "bc_loss": bc_loss,
        "q_mean": jnp.mean(q),
        "target_mean": jnp.mean(y),
        **layer_grad_norms(actor_grads, "grad_norm/actor"),
        **layer_grad_norms(critic_grads, "grad_norm/critic"),
        # seed 003's per-layer gradient weight / bias statistics, only for D2RL runs (they cost a few small ops)
        **(layer_grad_means(actor_grads, "grad_mean/actor") if config.explore is not None else {}),
        **(layer_grad_means(critic_grads, "grad_mean/critic") if config.explore is not None else {}),
    }
    return new_state, metrics
