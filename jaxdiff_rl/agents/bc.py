"""Behaviour cloning, the offline baseline without a critic: fit the dataset's actions, act like the data.

    deterministic (MLP):  L = mean ||mu(s) - a||^2             (the conditional mean: one mode, averaged)
    gaussian:             L = -mean log pi(a | s)               (tanh-squashed Gaussian, one mode with spread)
    diffusion / flow:     L = the generator's loss of a given s (DDPM denoising or flow matching: every mode)

Discrete actions are cloned as the vectors 2 onehot(a) - 1 (`offline_base.bc_target`), so argmax of the MLP's
output is the most frequent action of a state and a diffusion policy reproduces the action frequencies.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff_rl.agents.base import adam_step
from jaxdiff_rl.agents.networks import ActorConfig, actor_module
from jaxdiff_rl.agents.offline_base import (OfflineConfig, OfflineHparams, OfflineState, bc_target, clip_by_norm,
                                            module_for, policy_log_prob)
from jaxdiff_rl.diffusion import generator_loss
from jaxdiff_rl.train.buffer import Batch

__all__ = ["default_config", "default_hparams", "update", "bc_loss"]


def default_config(**overrides: Any) -> OfflineConfig:
    """BC with a 2 x 256 Mish MLP (pass actor=ActorConfig(kind="diffusion", ...) for diffusion / flow BC)."""
    base = dict(algo="bc", actor=ActorConfig(kind="deterministic", hidden_dims=(256, 256)))
    return OfflineConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> OfflineHparams:
    return OfflineHparams(**{**dict(lr_actor=3e-4), **overrides})


def bc_loss(key: jax.Array, config: OfflineConfig, params: Any, obs: jax.Array, action: jax.Array, action_dim: int,
            discrete: bool) -> jax.Array:
    """The behaviour-cloning loss of the actor kind (module docstring) on a batch: obs [B, S], dataset actions
    [B, A] in [-1, 1] or [B] int -> scalar."""
    target = bc_target(action, action_dim, discrete)
    kind = config.actor.kind
    if kind == "diffusion":
        model_fn = module_for(config, action_dim, obs.shape[-1])(params)
        return generator_loss(key, config.actor.generator_config, model_fn, target, cond=obs)
    if kind == "gaussian":
        return -jnp.mean(policy_log_prob(config, params, obs, action, action_dim, discrete))
    mu = jnp.tanh(actor_module(config.actor, action_dim, obs.shape[-1]).apply(params, obs))
    return jnp.mean(jnp.sum((mu - target) ** 2, axis=-1))


def update(key: jax.Array, config: OfflineConfig, state: OfflineState, batch: Batch, hparams: OfflineHparams,
           action_dim: int, discrete: bool) -> tuple[OfflineState, dict[str, jax.Array]]:
    """One Adam step on the BC loss. Pure."""
    loss, grads = jax.value_and_grad(
        lambda p: bc_loss(key, config, p, batch.obs, batch.action, action_dim, discrete))(state.actor)
    grads, norm = clip_by_norm(grads, hparams.max_grad_norm)
    actor, actor_opt = adam_step(state.actor, grads, state.actor_opt, hparams.lr_actor, hparams.weight_decay)
    return state.replace(actor=actor, target_actor=actor, actor_opt=actor_opt, updates=state.updates + 1), {
        "bc_loss": loss, "actor_loss": loss, "grad_norm/actor": norm}
