"""Diffusion-QL (Wang, Hunt & Zhou 2023; seed 000 sec. II-B1, eqs. 10-11): a state-conditioned DDPM policy
trained by behaviour cloning plus Q maximisation, with the reference settings (T = 5, VP schedule, 3 x 256 Mish
networks, EMA actor, best-of-N action selection by Q at evaluation).

    critic: y = r + gamma (1 - terminal) min_i Q'_i(s', a'),  a' = the EMA actor's reverse chain at s'
    actor:  L = L_bc + eta L_q,   L_bc = E_{t, eps} ||eps - eps_theta(sqrt(abar_t) a + sqrt(1 - abar_t) eps, t, s)||^2
            L_q = -mean Q_i(s, a_pi) / stop_grad(mean |Q_j(s, a_pi)|),  (i, j) = (1, 2) or (2, 1) at random
    a_pi:   the full T-step reverse chain (gradients through every step), or with `OfflineConfig.edp` EDP's action
            approximation: the one-step estimate x0_hat = (a_t - sqrt(1 - abar_t) eps_theta) / sqrt(abar_t) of the
            noised dataset action the BC term already evaluated (one network pass per update instead of T + 1)
    EMA:    every `ema_every` updates ema <- ema_decay ema + (1 - ema_decay) theta (a copy for the first
            `ema_start` updates); targets and evaluation use the EMA actor; Polyak target critics every update.

The chain's [-1, 1] clip passes no gradient where it is active (the reference's `clamp`): with a straight-through
clip the Q term keeps pushing saturated actions outwards and the denoiser's outputs diverge (aigc: BC loss 3e2 ->
6e8 in 400 updates). Differences from the reference code, deliberate: argmax (not a softmax draw) among the N candidates; the gradient
clip (`max_grad_norm`) applies to the actor only; no learning-rate decay.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff_rl.agents.base import adam_step, critic_step, polyak
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.agents.offline_base import (OfflineConfig, OfflineHparams, OfflineState, actor_vectors, bc_target,
                                            clip_by_norm, make_critic, module_for, normalised_q_loss, q_policy,
                                            td_target)
from jaxdiff_rl.diffusion import make_schedule
from jaxdiff_rl.diffusion.ema import ema_update
from jaxdiff_rl.diffusion.losses import diffusion_loss
from jaxdiff_rl.train.buffer import Batch

__all__ = ["default_config", "default_hparams", "update", "actor_loss"]


def default_config(**overrides: Any) -> OfflineConfig:
    """The reference: T = 5 VP DDPM, 3 x 256 Mish denoiser and critics, best of 50 candidates at evaluation."""
    base = dict(algo="diffusion_ql",
                actor=ActorConfig(kind="diffusion", hidden_dims=(256, 256, 256), diffusion_steps=5, schedule="vp",
                                  output_tanh=False, clip_gradient="zero"),
                critic_hidden_dims=(256, 256, 256), critic_activation="mish", action_candidates=50)
    return OfflineConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> OfflineHparams:
    base = dict(lr_actor=3e-4, lr_critic=3e-4, gamma=0.99, tau=0.005, eta=1.0, ema_decay=0.995, max_grad_norm=5.0)
    return OfflineHparams(**{**base, **overrides})


def actor_loss(model_fn: Any, q_fn: Any, schedule: Any, obs: jax.Array, target: jax.Array, t: jax.Array,
               noise: jax.Array, chain_action: jax.Array | None, eta: jax.Array, key_pick: jax.Array
               ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    """L_bc + eta L_q (module docstring) for explicit draws: obs [B, S], target actions [B, A], steps t [B],
    noise [B, A]; q_fn(x [B, A]) -> Q [C, B]; chain_action [B, A] the reverse chain's action (or None: EDP, the
    clipped one-step estimate x0_hat). Returns (loss, (L_bc, L_q))."""
    bc, x0_hat = diffusion_loss(None, model_fn, schedule, target, obs, t=t, noise=noise, return_x0=True)
    action = jnp.clip(x0_hat, -1.0, 1.0) if chain_action is None else chain_action
    q_loss = normalised_q_loss(key_pick, q_fn(action))
    return bc + eta * q_loss, (bc, q_loss)


def update(key: jax.Array, config: OfflineConfig, state: OfflineState, batch: Batch, hparams: OfflineHparams,
           action_dim: int, discrete: bool) -> tuple[OfflineState, dict[str, jax.Array]]:
    """One critic update, one actor update, the EMA and the target critics (module docstring). Pure."""
    critic_net = make_critic(config, action_dim, discrete)
    k_next, k_t, k_eps, k_chain, k_pick = jax.random.split(key, 5)
    next_x = actor_vectors(k_next, config, state, state.target_actor, batch.next_obs, action_dim)
    y = td_target(config, state, batch, next_x, action_dim, discrete)
    critic, critic_opt, critic_loss, q, _ = critic_step(critic_net, state, batch, y, hparams, discrete)

    schedule = make_schedule(config.actor.schedule, config.actor.diffusion_steps)
    target = bc_target(batch.action, action_dim, discrete)
    t = jax.random.randint(k_t, (target.shape[0],), 0, schedule.num_steps)
    noise = jax.random.normal(k_eps, target.shape, jnp.float32)
    q_fn = lambda x: q_policy(critic_net, critic, batch.obs, x, discrete, config.logit_scale)
    make_model = module_for(config, action_dim, batch.obs.shape[-1])

    def loss_fn(params):
        chain = None if config.edp else actor_vectors(k_chain, config, state, params, batch.obs, action_dim)
        return actor_loss(make_model(params), q_fn, schedule, batch.obs, target, t, noise, chain, hparams.eta, k_pick)

    (loss, (bc, q_loss)), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.actor)
    grads, norm = clip_by_norm(grads, hparams.max_grad_norm)
    actor, actor_opt = adam_step(state.actor, grads, state.actor_opt, hparams.lr_actor, hparams.weight_decay)

    step = state.updates
    tick = (step % config.ema_every) == 0
    ema = jax.tree_util.tree_map(
        lambda e, a, u: jnp.where(tick, jnp.where(step < config.ema_start, a, u), e),
        state.target_actor, actor, ema_update(state.target_actor, actor, hparams.ema_decay))
    new_state = state.replace(actor=actor, actor_opt=actor_opt, target_actor=ema, critic=critic, critic_opt=critic_opt,
                              target_critic=polyak(state.target_critic, critic, hparams.tau), updates=step + 1)
    return new_state, {"critic_loss": critic_loss, "actor_loss": loss, "bc_loss": bc, "q_loss": q_loss,
                       "q_mean": jnp.mean(q), "target_mean": jnp.mean(y), "grad_norm/actor": norm}
