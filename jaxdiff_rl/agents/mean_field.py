"""Mean-field actor-critic (Yang et al., ICML 2018) and its diffusion variant, for very many homogeneous agents.

MADDPG's centralised critic reads the global state and all K actions, so its width, and the cost of a step, grow with
K (quadratically on ic-power, whose global state holds the K x K gain matrix). The mean-field approximation replaces
the other agents by their mean action: agent i's critic is Q(o~_i, a_i, abar_{-i}), one network shared by every agent,
with

    abar_{-i} = (sum_j a_j - a_i) / (K - 1)                                   [B, K, A]
    y_i    = r_i + discount * min_c Q'_c(o~'_i, mu'(o~'_i), abar'_{-i})      abar' from the target actions mu'
    critic = sum_c mean_{b,i} (Q_c(o~_i, a_i, abar_{-i}) - y_i)^2
    actor  = -mean_{b,i} Q_1(o~_i, mu(o~_i), abar_{-i})                       (abar_{-i} from the buffer actions)

so every network sees a fixed width and a step costs O(K). The actor's input o~_i = [o_i, abar(t-1)] is the local
observation with the previous slot's mean action of all agents appended (the loop adds it, zero after a reset): the
policy is conditioned on the mean action, as the mean-field Q policy of Yang et al. is. `algo="mfac"` uses a tanh
actor; `algo="dm_mfac"` the shared diffusion actor (the reverse chain conditioned on o~_i, gradient through every
denoising step, as in DM-MADDPG). Agents share all parameters and get no agent id (a one-hot id would make the width
grow with K again; mean-field agents are exchangeable by assumption).

Shapes: local observations (augmented) [B, K, o + A], actions [B, K, A] in [-1, 1], rewards [B, K],
discount [B]. `batch.obs["global"]` is ignored (the loop stores a [B, 1] placeholder).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxdiff_rl.agents.base import AgentState, Hparams, adam_step, commit_update, fresh_state
from jaxdiff_rl.agents.maddpg import smooth_target
from jaxdiff_rl.agents.networks import DoubleCritic, actor_forward, actor_init

__all__ = ["mean_of_others", "augment", "critic_input", "make_critic", "init", "policy", "update"]


def mean_of_others(action: jax.Array) -> jax.Array:
    """abar_{-i}: [B, K, A] -> [B, K, A], the mean of the other K - 1 agents' actions."""
    k = action.shape[-2]
    return (jnp.sum(action, axis=-2, keepdims=True) - action) / (k - 1)


def augment(local_obs: jax.Array, mean_action: jax.Array) -> jax.Array:
    """o~_i = [o_i, abar]: local observations [N, K, o] and the previous mean action [N, A] -> [N, K, o + A]."""
    k = local_obs.shape[-2]
    mean = jnp.broadcast_to(mean_action[..., None, :], mean_action.shape[:-1] + (k, mean_action.shape[-1]))
    return jnp.concatenate([local_obs, mean.astype(local_obs.dtype)], axis=-1)


def critic_input(local_obs: jax.Array, action: jax.Array, mean_others: jax.Array) -> jax.Array:
    """[.., K, o~] , [.., K, A], [.., K, A] -> [.., K, o~ + 2A]."""
    return jnp.concatenate([local_obs, action, mean_others], axis=-1)


def make_critic(config: Any) -> DoubleCritic:
    """The shared Q(o~_i, a_i, abar_{-i}): [.., o~ + 2A] -> [C, ..]."""
    return DoubleCritic(out_dim=1, hidden_dims=tuple(config.critic_hidden_dims), activation=config.critic_activation,
                        num_critics=config.num_critics, matmul_dtype=config.actor.matmul_dtype)


def _q(critic_net: DoubleCritic, params: Any, x: jax.Array) -> jax.Array:
    return critic_net.apply(params, x)[..., 0]  # [C, .., K]


def policy(config: Any, params: Any, key: jax.Array, local_obs: jax.Array, action_dim: int,
           greedy: bool = False) -> jax.Array:
    """Every agent's action from the shared actor: augmented observations [B, K, o~] -> [B, K, A] in [-1, 1]."""
    batch, k, width = local_obs.shape
    out = actor_forward(config.actor, params, key, local_obs.reshape(batch * k, width), action_dim, False)
    return (out.mean_action if greedy else out.action).reshape(batch, k, action_dim)


def init(key: jax.Array, config: Any, hparams: Hparams, num_agents: int, obs_dim: int, state_dim: int,
         action_dim: int) -> AgentState:
    """Shared actor on [o + A] (the augmented observation), shared critic on [o + 3A]; targets and Adam states.
    `num_agents` and `state_dim` do not enter any shape (the point of the mean-field approximation)."""
    k_actor, k_critic = jax.random.split(key)
    width = obs_dim + action_dim
    actor = actor_init(k_actor, config.actor, width, action_dim)
    critic = make_critic(config).init(k_critic, jnp.zeros((1, width + 2 * action_dim)))
    return fresh_state(actor, critic)


def update(key: jax.Array, config: Any, state: AgentState, batch: Any, hparams: Hparams,
           action_dim: int) -> tuple[AgentState, dict[str, jax.Array]]:
    """One critic and one actor update (module docstring). batch.obs / next_obs: {"local": [B, K, o~], ...};
    batch.action [B, K, A]; batch.reward [B, K]; batch.discount [B]. Pure."""
    local, next_local = batch.obs["local"], batch.next_obs["local"]
    critic_net = make_critic(config)
    k_next, k_smooth, k_pi = jax.random.split(key, 3)

    next_action = policy(config, state.target_actor, k_next, next_local, action_dim)
    if config.target_smoothing:
        next_action = smooth_target(k_smooth, next_action, hparams)
    q_next = jnp.min(_q(critic_net, state.target_critic,
                        critic_input(next_local, next_action, mean_of_others(next_action))), axis=0)  # [B, K]
    y = jax.lax.stop_gradient(batch.reward + batch.discount[:, None] * q_next)
    others = mean_of_others(batch.action)

    def critic_loss_fn(params):
        q = _q(critic_net, params, critic_input(local, batch.action, others))  # [C, B, K]
        return jnp.sum(jnp.mean((q - y[None]) ** 2, axis=(1, 2))), q

    (critic_loss, q), critic_grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(state.critic)
    critic, critic_opt = adam_step(state.critic, critic_grads, state.critic_opt, hparams.lr_critic, hparams.weight_decay)

    def actor_loss_fn(params):
        mu = policy(config, params, k_pi, local, action_dim)
        return -jnp.mean(_q(critic_net, critic, critic_input(local, mu, others))[0]), mu

    (actor_loss, mu), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor)
    actor = adam_step(state.actor, actor_grads, state.actor_opt, hparams.lr_actor, hparams.weight_decay)
    new_state = commit_update(state, actor, (critic, critic_opt), hparams.tau)
    metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "q_mean": jnp.mean(q), "target_mean": jnp.mean(y),
               "action_abs_mean": jnp.mean(jnp.abs(mu))}
    return new_state, metrics
