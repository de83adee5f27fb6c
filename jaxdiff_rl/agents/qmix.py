"""QMIX (Rashid et al. 2018): per-agent utilities mixed by a monotone network; discrete actions, cooperative reward.

Agent i's utility Q_i(o_i, .) [A] is an MLP on its local observation (shared parameters with a one-hot agent id
by default, `MAConfig.share_parameters`); the mixer turns the chosen utilities q [K] into

    Q_tot(q, s) = w2(s)^T elu(W1(s)^T q + b1(s)) + V(s),    W1 = |hyper_1(s)| [K, E], w2 = |hyper_2(s)| [E]

whose weights come from hypernetworks of the global state s and are made nonnegative by an absolute value, so
dQ_tot / dq_i >= 0 for every agent (monotone: the argmax of Q_tot is every agent's own argmax, the decentralised
greedy policy). Target (double Q): a'_i = argmax Q_i(o'_i, .) from the online utilities, evaluated by the target
utilities and mixer; y = r + discount Q'_tot; loss = mean (Q_tot - y)^2 with r the agents' mean reward (equal for a
cooperative team reward). Exploration: epsilon-greedy with `Hparams.epsilon`. Targets are Polyak averages (tau).

DM-QMIX (`algo="dm_qmix"`; our construction, stated because seed 000 gives none): the same utilities and mixer, plus
each agent's policy pi_i(. | o_i) = softmax(logit_scale x_0), x_0 the shared diffusion actor's chain on o_i (D2SAC's
discrete actor, shared parameters with agent ids). The utilities are trained by the mixed TD loss above, with the
next utilities taken in expectation under the policy, q'_i = sum_a pi_i(a | o'_i) Q'_i(o'_i, a) (D2SAC's discrete
target), and the policy by D2SAC's discrete actor loss against its own utility,
    sum_i sum_a pi_i(a | o_i) (alpha log pi_i(a | o_i) - Q_i(o_i, a)),
which raises Q_tot because the mixer is monotone. Agents act by sampling pi_i (greedy: its argmax).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdiff_rl.agents.base import AgentState, Hparams, adam_step, commit_update, fresh_state
from jaxdiff_rl.nets import MLP

__all__ = ["Mixer", "utility_net", "init", "policy", "update", "default_hparams", "dm_init", "dm_policy", "dm_update"]


class Mixer(nn.Module):
    """Monotone mixing network: utilities q [B, K] and global state s [B, S] -> Q_tot [B]."""

    embed: int = 32

    @nn.compact
    def __call__(self, q: jax.Array, s: jax.Array) -> jax.Array:
        k = q.shape[-1]
        w1 = jnp.abs(nn.Dense(k * self.embed, name="hyper_w1")(s)).reshape(s.shape[:-1] + (k, self.embed))
        b1 = nn.Dense(self.embed, name="hyper_b1")(s)
        h = nn.elu(jnp.einsum("...k,...ke->...e", q, w1) + b1)
        w2 = jnp.abs(nn.Dense(self.embed, name="hyper_w2")(s))
        v = nn.Dense(1, name="value_out")(nn.relu(nn.Dense(self.embed, name="value_hidden")(s)))[..., 0]
        return jnp.sum(h * w2, axis=-1) + v


def utility_net(config: Any, num_actions: int) -> MLP:
    return MLP(out_dim=num_actions, hidden_dims=tuple(config.actor.hidden_dims), activation=config.actor.activation)


def default_hparams(**overrides: Any) -> Hparams:
    base = dict(lr_critic=5e-4, lr_actor=3e-4, gamma=0.99, tau=0.01, epsilon=0.1, alpha=0.05)
    return Hparams(**{**base, **overrides})


def _with_ids(config: Any, local: jax.Array) -> jax.Array:
    from jaxdiff_rl.agents.maddpg import with_agent_ids

    return with_agent_ids(config, local)


def utilities(config: Any, params: Any, local: jax.Array, num_actions: int) -> jax.Array:
    """Q_i(o_i, .) for local observations [B, K, o] -> [B, K, A]."""
    obs = _with_ids(config, local)
    net = utility_net(config, num_actions)
    if config.share_parameters:
        return net.apply(params, obs)
    return jax.vmap(net.apply, in_axes=(0, 1), out_axes=1)(params, obs)


def init(key: jax.Array, config: Any, hparams: Hparams, num_agents: int, obs_dim: int, state_dim: int,
         num_actions: int) -> AgentState:
    k_util, k_mix = jax.random.split(key)
    width = obs_dim + (num_agents if config.share_parameters else 0)
    net = utility_net(config, num_actions)
    if config.share_parameters:
        util = net.init(k_util, jnp.zeros((1, width)))
    else:
        util = jax.vmap(lambda kk: net.init(kk, jnp.zeros((1, width))))(jax.random.split(k_util, num_agents))
    mixer = Mixer(config.mixer_embed).init(k_mix, jnp.zeros((1, num_agents)), jnp.zeros((1, state_dim)))
    return fresh_state(util, mixer)


def policy(config: Any, params: Any, key: jax.Array, local: jax.Array, num_actions: int, epsilon: Any = 0.0) -> jax.Array:
    """Epsilon-greedy joint action [B, K] int32 (greedy with epsilon = 0)."""
    greedy = jnp.argmax(utilities(config, params, local, num_actions), axis=-1).astype(jnp.int32)
    k_pick, k_rand = jax.random.split(key)
    random = jax.random.randint(k_rand, greedy.shape, 0, num_actions, jnp.int32)
    return jnp.where(jax.random.uniform(k_pick, greedy.shape) < epsilon, random, greedy)


def update(key: jax.Array, config: Any, state: AgentState, batch: Any, hparams: Hparams,
           num_actions: int) -> tuple[AgentState, dict[str, jax.Array]]:
    """One TD update of the utilities and the mixer (module docstring). Pure."""
    del key
    local, s = batch.obs["local"], batch.obs["global"]
    next_local, next_s = batch.next_obs["local"], batch.next_obs["global"]
    mixer = Mixer(config.mixer_embed)
    next_online = utilities(config, state.actor, next_local, num_actions)
    next_a = jnp.argmax(next_online, axis=-1)
    next_q = jnp.take_along_axis(utilities(config, state.target_actor, next_local, num_actions), next_a[..., None],
                                 -1)[..., 0]
    reward = jnp.mean(batch.reward, axis=-1) if batch.reward.ndim > 1 else batch.reward
    y = jax.lax.stop_gradient(reward + batch.discount * mixer.apply(state.target_critic, next_q, next_s))

    def loss_fn(params):
        util, mix = params
        q = jnp.take_along_axis(utilities(config, util, local, num_actions), batch.action[..., None].astype(jnp.int32),
                                -1)[..., 0]
        q_tot = mixer.apply(mix, q, s)
        return jnp.mean((q_tot - y) ** 2), q_tot

    (loss, q_tot), (g_util, g_mix) = jax.value_and_grad(loss_fn, has_aux=True)((state.actor, state.critic))
    util = adam_step(state.actor, g_util, state.actor_opt, hparams.lr_critic, hparams.weight_decay)
    mix = adam_step(state.critic, g_mix, state.critic_opt, hparams.lr_critic, hparams.weight_decay)
    new_state = commit_update(state, util, mix, hparams.tau)
    return new_state, {"critic_loss": loss, "q_mean": jnp.mean(q_tot), "target_mean": jnp.mean(y)}


# --- DM-QMIX ------------------------------------------------------------------------------------------------
def _policy_probs(config: Any, params: Any, key: jax.Array, local: jax.Array, num_actions: int) -> jax.Array:
    """pi_i(. | o_i) [B, K, A] from the diffusion actor (one chain per agent and row)."""
    from jaxdiff_rl.agents.networks import actor_forward

    obs = _with_ids(config, local)
    b, k, w = obs.shape
    out = actor_forward(config.actor, params, key, obs.reshape(b * k, w), num_actions, True)
    return out.probs.reshape(b, k, num_actions)


def dm_init(key: jax.Array, config: Any, hparams: Hparams, num_agents: int, obs_dim: int, state_dim: int,
            num_actions: int) -> AgentState:
    """actor: the diffusion policy (shared); critic: (utilities, mixer); targets of both."""
    from jaxdiff_rl.agents.networks import actor_init

    k_actor, k_rest = jax.random.split(key)
    width = obs_dim + num_agents
    base = init(k_rest, config.replace(share_parameters=True), hparams, num_agents, obs_dim, state_dim, num_actions)
    actor = actor_init(k_actor, config.actor, width, num_actions)
    critic = (base.actor, base.critic)
    return fresh_state(actor, critic)


def dm_policy(config: Any, params: Any, key: jax.Array, local: jax.Array, num_actions: int,
              greedy: bool = False) -> jax.Array:
    """Joint action [B, K] int32: a sample of each agent's diffusion policy (greedy: its most probable action)."""
    k_chain, k_pick = jax.random.split(key)
    probs = _policy_probs(config, params, k_chain, local, num_actions)
    if greedy:
        return jnp.argmax(probs, axis=-1).astype(jnp.int32)
    return jax.random.categorical(k_pick, jnp.log(jnp.maximum(probs, 1e-12)), axis=-1).astype(jnp.int32)


def dm_update(key: jax.Array, config: Any, state: AgentState, batch: Any, hparams: Hparams,
              num_actions: int) -> tuple[AgentState, dict[str, jax.Array]]:
    """One TD update of (utilities, mixer) and one policy update of the diffusion actor (module docstring)."""
    shared = config.replace(share_parameters=True)
    local, s = batch.obs["local"], batch.obs["global"]
    next_local, next_s = batch.next_obs["local"], batch.next_obs["global"]
    mixer = Mixer(config.mixer_embed)
    k_next, k_pi = jax.random.split(key)
    next_pi = _policy_probs(config, state.target_actor, k_next, next_local, num_actions)
    util_t, mix_t = state.target_critic
    next_q = jnp.sum(next_pi * utilities(shared, util_t, next_local, num_actions), axis=-1)
    reward = jnp.mean(batch.reward, axis=-1) if batch.reward.ndim > 1 else batch.reward
    y = jax.lax.stop_gradient(reward + batch.discount * mixer.apply(mix_t, next_q, next_s))

    def critic_loss_fn(params):
        util, mix = params
        q = jnp.take_along_axis(utilities(shared, util, local, num_actions), batch.action[..., None].astype(jnp.int32),
                                -1)[..., 0]
        return jnp.mean((mixer.apply(mix, q, s) - y) ** 2)

    critic_loss, g_critic = jax.value_and_grad(critic_loss_fn)(state.critic)
    critic, critic_opt = adam_step(state.critic, g_critic, state.critic_opt, hparams.lr_critic, hparams.weight_decay)
    q_all = jax.lax.stop_gradient(utilities(shared, critic[0], local, num_actions))  # [B, K, A]

    def actor_loss_fn(params):
        pi = _policy_probs(config, params, k_pi, local, num_actions)
        log_pi = jnp.log(jnp.maximum(pi, 1e-12))
        return jnp.mean(jnp.sum(pi * (hparams.alpha * log_pi - q_all), axis=-1)), -jnp.sum(pi * log_pi, -1).mean()

    (actor_loss, entropy), g_actor = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor)
    actor = adam_step(state.actor, g_actor, state.actor_opt, hparams.lr_actor, hparams.weight_decay)
    new_state = commit_update(state, actor, (critic, critic_opt), hparams.tau)
    return new_state, {"critic_loss": critic_loss, "actor_loss": actor_loss, "entropy": entropy,
                       "target_mean": jnp.mean(y)}
