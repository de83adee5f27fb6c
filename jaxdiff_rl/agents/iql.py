"""IQL (Kostrikov et al. 2022): implicit Q-learning, never queries actions outside the dataset.

    L_V  = mean L2_tau(min_i Q'_i(s, a) - V(s)),   L2_tau(u) = |tau - 1(u < 0)| u^2        (expectile tau = 0.7)
    L_Q  = sum_i MSE(Q_i(s, a), r + gamma (1 - terminal) V(s'))
    L_pi = -mean min(exp(beta (min_i Q'_i(s, a) - V(s))), 100) log pi(a | s)              (AWR, beta = 3)

in that order within one update (V first, then the policy and Q with the new V, as the reference
implementation); Polyak target critics. The policy is a tanh-squashed Gaussian (continuous; greedy = tanh(mean))
or a categorical softmax(kappa tanh(MLP(s))) head (discrete; greedy = argmax).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff_rl.agents.base import adam_step, critic_step, polyak
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.agents.offline_base import (OfflineConfig, OfflineHparams, OfflineState, clip_by_norm, make_critic,
                                            make_value, policy_log_prob, q_dataset)
from jaxdiff_rl.train.buffer import Batch

__all__ = ["default_config", "default_hparams", "update", "expectile_loss"]

ADV_WEIGHT_MAX = 100.0


def default_config(discrete: bool = False, **overrides: Any) -> OfflineConfig:
    """The paper's settings: 2 x 256 ReLU networks; Gaussian policy (discrete: logits head)."""
    kind = "deterministic" if discrete else "gaussian"
    base = dict(algo="iql", actor=ActorConfig(kind=kind, hidden_dims=(256, 256), activation="relu"),
                critic_hidden_dims=(256, 256), critic_activation="relu")
    return OfflineConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> OfflineHparams:
    base = dict(lr_actor=3e-4, lr_critic=3e-4, lr_value=3e-4, gamma=0.99, tau=0.005, expectile=0.7, temperature=3.0)
    return OfflineHparams(**{**base, **overrides})


def expectile_loss(diff: jax.Array, expectile: jax.Array) -> jax.Array:
    """mean |tau - 1(u < 0)| u^2 over u = diff [B]."""
    weight = jnp.where(diff > 0, expectile, 1.0 - expectile)
    return jnp.mean(weight * diff**2)


def update(key: jax.Array, config: OfflineConfig, state: OfflineState, batch: Batch, hparams: OfflineHparams,
           action_dim: int, discrete: bool) -> tuple[OfflineState, dict[str, jax.Array]]:
    """One V, policy and Q update (module docstring). Pure."""
    del key
    critic_net, value_net = make_critic(config, action_dim, discrete), make_value(config)
    q_target = jax.lax.stop_gradient(q_dataset(critic_net, state.target_critic, batch.obs, batch.action,
                                               discrete).min(0))

    def value_loss_fn(params):
        v = value_net.apply(params, batch.obs)[:, 0]
        return expectile_loss(q_target - v, hparams.expectile), v

    (value_loss, v), v_grads = jax.value_and_grad(value_loss_fn, has_aux=True)(state.value)
    value, value_opt = adam_step(state.value, v_grads, state.value_opt, hparams.lr_value, hparams.weight_decay)

    v_new = jax.lax.stop_gradient(value_net.apply(value, batch.obs)[:, 0])
    weights = jnp.minimum(jnp.exp(hparams.temperature * (q_target - v_new)), ADV_WEIGHT_MAX)

    def actor_loss_fn(params):
        return -jnp.mean(weights * policy_log_prob(config, params, batch.obs, batch.action, action_dim, discrete))

    actor_loss, a_grads = jax.value_and_grad(actor_loss_fn)(state.actor)
    a_grads, norm = clip_by_norm(a_grads, hparams.max_grad_norm)
    actor, actor_opt = adam_step(state.actor, a_grads, state.actor_opt, hparams.lr_actor, hparams.weight_decay)

    y = jax.lax.stop_gradient(batch.reward + batch.discount * value_net.apply(value, batch.next_obs)[:, 0])
    critic, critic_opt, critic_loss, q, _ = critic_step(critic_net, state, batch, y, hparams, discrete)
    new_state = state.replace(actor=actor, target_actor=actor, actor_opt=actor_opt, value=value, value_opt=value_opt,
                              critic=critic, critic_opt=critic_opt,
                              target_critic=polyak(state.target_critic, critic, hparams.tau),
                              updates=state.updates + 1)
    return new_state, {"critic_loss": critic_loss, "value_loss": value_loss, "actor_loss": actor_loss,
                       "q_mean": jnp.mean(q), "v_mean": jnp.mean(v), "adv_weight_mean": jnp.mean(weights),
                       "grad_norm/actor": norm}
