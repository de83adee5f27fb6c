"""SAC (Haarnoja et al.) for continuous actions and discrete SAC (Christodoulou 2019) for discrete ones; the loss
that D2SAC (`d2sac.py`) reuses with a diffusion actor.

Losses, with Q_min = min(Q1, Q2) and y = G_n + discount * V(s') (n-step return and discount from the buffer):

    continuous: V(s') = Q'_min(s', a') - alpha log pi(a'|s'),  a' ~ pi(.|s')
                actor  = E[alpha log pi(a|s) - Q_min(s, a)],    a ~ pi(.|s) (reparameterised)
    discrete:   V(s') = sum_a pi(a|s') (Q'_min(s', a) - alpha log pi(a|s'))
                actor  = -E[alpha H(pi(.|s)) + sum_a pi(a|s) Q_min(s, a)]
    critic = sum over the critics of MSE(Q_i(s, a), y)
    alpha (auto) = -log alpha * (target_entropy - H) (continuous: H estimated by -log pi(a|s))

`entropy_in_target=False` drops the alpha term from V (D2SAC's reference); `target_actor=True` draws a' from a
Polyak copy of the actor. A continuous diffusion actor has no tractable log-density: by default its actor loss
is -E[Q_min(s, a)] with a from the (stochastic) reverse chain, and exploration comes from the chain's noise plus
`explore_noise` (the GDMOPT convention). With `AgentConfig.entropy_samples` = N > 0 it gets the entropy terms
from a Gaussian-mixture estimate over N draws per state (`jaxdiff_rl.diffusion.entropy`, DACER):

    continuous diffusion: V(s') = mean_n Q'_min(s', a'_n) + alpha H_hat(s'),  a'_n ~ pi(.|s')
                          actor  = -E[mean_n Q_min(s, a_n) + alpha H_hat(s)]   (H_hat pathwise-differentiated)
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff_rl.agents.base import (
    AgentConfig,
    AgentState,
    Hparams,
    adam_step,
    critic_step,
    layer_grad_norms,
    make_critic,
    polyak,
)
from jaxdiff_rl.agents.networks import ActorConfig, actor_forward
from jaxdiff_rl.diffusion.entropy import gmm_entropy
from jaxdiff_rl.train.buffer import Batch

__all__ = ["default_config", "default_hparams", "update", "target_entropy"]


def default_config(**overrides: Any) -> AgentConfig:
    """SAC with a tanh-Gaussian (continuous) or softmax (discrete) actor, learned temperature."""
    base = dict(algo="sac", actor=ActorConfig(kind="gaussian"), auto_alpha=True, entropy_in_target=True)
    return AgentConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> Hparams:
    return Hparams(**{**dict(lr_actor=3e-4, lr_critic=3e-4, gamma=0.99, tau=0.005, alpha=0.2), **overrides})


def target_entropy(config: AgentConfig, hparams: Hparams, action_dim: int, discrete: bool) -> jax.Array:
    """-A for continuous actions; target_entropy_scale * log(A) for discrete ones (or config.target_entropy)."""
    if config.target_entropy is not None:
        return jnp.float32(config.target_entropy)
    if discrete:
        return hparams.target_entropy_scale * jnp.float32(math.log(action_dim))
    return jnp.float32(-action_dim)


def _entropy(probs: jax.Array) -> jax.Array:
    return -jnp.sum(probs * jnp.log(jnp.clip(probs, 1e-8, 1.0)), axis=-1)


def sample_with_entropy(config: AgentConfig, params: Any, key: jax.Array, obs: jax.Array, action_dim: int
                        ) -> tuple[jax.Array, jax.Array]:
    """N = config.entropy_samples draws of a continuous diffusion actor per state and their mixture entropy
    estimate: obs [B, S] -> (actions [B, N, A], H_hat [B] nats)."""
    n = config.entropy_samples
    actions = actor_forward(config.actor, params, key, jnp.repeat(obs, n, axis=0), action_dim, False).action
    actions = actions.reshape(obs.shape[0], n, action_dim)
    return actions, gmm_entropy(actions, config.entropy_components)


def update(
    key: jax.Array,
    config: AgentConfig,
    state: AgentState,
    batch: Batch,
    hparams: Hparams,
    action_dim: int,
    discrete: bool,
) -> tuple[AgentState, dict[str, jax.Array]]:
    """One gradient update of critics, actor, temperature and targets on a minibatch. Pure."""
    critic_net = make_critic(config, action_dim, discrete)
    k_next, k_pi = jax.random.split(key)
    alpha = jnp.exp(state.log_alpha)

    # ---- critic
    next_params = state.target_actor if config.target_actor else state.actor
    ent_w = alpha if config.entropy_in_target else 0.0
    mixture = config.entropy_samples > 0 and not discrete
    # min-Q of N actions per state: actions [B, N, A] -> [B, N]
    q_min_n = lambda params, obs, actions: jnp.min(
        jax.vmap(lambda a: critic_net.apply(params, obs, a), in_axes=1, out_axes=2)(actions), axis=0)
    nxt = None if mixture else actor_forward(config.actor, next_params, k_next, batch.next_obs, action_dim, discrete)
    if mixture:
        next_actions, next_h = sample_with_entropy(config, next_params, k_next, batch.next_obs, action_dim)
        v_next = jnp.mean(q_min_n(state.target_critic, batch.next_obs, next_actions), axis=1) + ent_w * next_h
    elif discrete:
        q_next = jnp.min(critic_net.apply(state.target_critic, batch.next_obs), axis=0)  # [B, A]
        log_p = jnp.log(jnp.clip(nxt.probs, 1e-8, 1.0))
        v_next = jnp.sum(nxt.probs * (q_next - ent_w * log_p), axis=-1)
    else:
        q_next = jnp.min(critic_net.apply(state.target_critic, batch.next_obs, nxt.action), axis=0)
        v_next = q_next - (ent_w * nxt.log_prob if nxt.log_prob is not None else 0.0)
    y = jax.lax.stop_gradient(batch.reward + batch.discount * v_next)

    critic, critic_opt, critic_loss, q, critic_grads = critic_step(critic_net, state, batch, y, hparams, discrete)

    # ---- actor (against the online critics before this update's step, as in the reference implementations)
    def actor_loss_fn(params):
        if mixture:
            actions, h = sample_with_entropy(config, params, k_pi, batch.obs, action_dim)
            return -jnp.mean(jnp.mean(q_min_n(state.critic, batch.obs, actions), axis=1) + alpha * h), h
        out = actor_forward(config.actor, params, k_pi, batch.obs, action_dim, discrete)
        if discrete:
            q_pi = jax.lax.stop_gradient(jnp.min(critic_net.apply(state.critic, batch.obs), axis=0))
            entropy = _entropy(out.probs)
            loss = -jnp.mean(alpha * entropy + jnp.sum(out.probs * q_pi, axis=-1))
            return loss, entropy
        q_pi = jnp.min(critic_net.apply(state.critic, batch.obs, out.action), axis=0)
        if out.log_prob is None:  # diffusion actor: no tractable density
            return -jnp.mean(q_pi), jnp.zeros(q_pi.shape)
        return jnp.mean(alpha * out.log_prob - q_pi), -out.log_prob

    (actor_loss, entropy), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor)
    actor, actor_opt = adam_step(state.actor, actor_grads, state.actor_opt, hparams.lr_actor, hparams.weight_decay)

    # ---- temperature
    log_alpha, alpha_opt = state.log_alpha, state.alpha_opt
    if config.auto_alpha:
        gap = jax.lax.stop_gradient(target_entropy(config, hparams, action_dim, discrete) - jnp.mean(entropy))
        alpha_grad = -gap  # d/dlog_alpha of -log_alpha * gap
        log_alpha, alpha_opt = adam_step(state.log_alpha, alpha_grad, state.alpha_opt, hparams.lr_alpha)

    new_state = AgentState(
        actor=actor,
        critic=critic,
        target_actor=polyak(state.target_actor, actor, hparams.tau) if config.target_actor else actor,
        target_critic=polyak(state.target_critic, critic, hparams.tau),
        actor_opt=actor_opt,
        critic_opt=critic_opt,
        log_alpha=log_alpha,
        alpha_opt=alpha_opt,
        updates=state.updates + 1,
    )
    metrics = {
        "critic_loss": critic_loss,
        "actor_loss": actor_loss,
        "q_mean": jnp.mean(q),
        "target_mean": jnp.mean(y),
        "entropy": jnp.mean(entropy),
        "alpha": alpha,
        **layer_grad_norms(actor_grads, "grad_norm/actor"),
        **layer_grad_norms(critic_grads, "grad_norm/critic"),
    }
    return new_state, metrics
