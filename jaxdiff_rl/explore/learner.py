"""The exploration networks' state and the three hooks the training loop calls when `AgentConfig.explore` is set:

    observe(...)  before acting:   S_t = S_hat^0 with probability chi, else S^0       (Algorithm 1)
    reward(...)   after the step:  R_t = base(C, R') + c(S_t, A_t)                     (section IV-C4)
    update(...)   per gradient step, after the agent's update: one Adam step of the RENPNN / MLP correction and
                  of the SENPNN on the same minibatch (Algorithm 2)
    end_epoch(...) per iteration:  chi <- min(chi + eta, M) if the epoch's mean SENPNN loss < T

All pure; `ExploreState` is part of the `RunnerState` pytree (checkpointed, vmapped over seeds and sweeps).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

from jaxdiff_rl.agents.base import AgentState, Hparams, adam_init, adam_step, make_critic
from jaxdiff_rl.agents.networks import actor_forward
from jaxdiff_rl.explore.config import ExploreConfig
from jaxdiff_rl.explore.reward import advantage, base_reward, reward_correction, reward_init, reward_loss
from jaxdiff_rl.explore.state import explore_states, state_init, state_loss, substitute, update_chi

__all__ = ["ExploreState", "init", "observe", "reward", "update", "end_epoch"]


@struct.dataclass
class ExploreState:
    """reward / reward_opt: correction network (RENPNN or MLP) parameters and Adam state, None if the design has
    none; state / state_opt: SENPNN parameters and Adam state, None without state exploration; chi: the
    substitute probability (float32 scalar)."""

    reward: Any
    reward_opt: Any
    state: Any
    state_opt: Any
    chi: jax.Array


def init(key: jax.Array, config: ExploreConfig, obs_dim: int, action_dim: int) -> ExploreState:
    k_reward, k_state = jax.random.split(key)
    reward = reward_init(k_reward, config, obs_dim, action_dim)
    state = state_init(k_state, config, obs_dim)
    return ExploreState(
        reward=reward, reward_opt=None if reward is None else adam_init(reward),
        state=state, state_opt=None if state is None else adam_init(state),
        chi=jnp.float32(0.0),
    )


def observe(config: ExploreConfig, es: ExploreState, key: jax.Array, obs: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(states the agent acts on [N, S], substituted [N] bool) for observed states obs [N, S]."""
    if not config.state_exploration:
        return obs, jnp.zeros(obs.shape[:1], bool)
    k_gen, k_sub = jax.random.split(key)
    return substitute(k_sub, obs, explore_states(config, es.state, k_gen, obs), es.chi)


def reward(
    config: ExploreConfig, es: ExploreState, key: jax.Array, obs: jax.Array, action: jax.Array,
    objective: jax.Array, upper_bound: jax.Array, hparams: Hparams,
) -> jax.Array:
    """The designed reward [N] of actions [N, A] taken on states obs [N, S]: base(C, R') + c(s, a)."""
    correction = reward_correction(config, es.reward, key, obs, action, hparams.reward_scale)
    return base_reward(config, objective, upper_bound) + correction


def update(
    agent_config: Any, es: ExploreState, key: jax.Array, agent: AgentState, batch: Any, hparams: Hparams,
    action_dim: int,
) -> tuple[ExploreState, dict[str, jax.Array]]:
    """One Adam step of each exploration network on the minibatch (after the agent's own update).

    The correction is trained against the freshly updated critic and actor (`reward.reward_loss`); the SENPNN on
    the batch's next states, which are always observed states (substitution only touches S_t)."""
    config: ExploreConfig = agent_config.explore
    k_pi, k_reward, k_state = jax.random.split(key, 3)
    metrics: dict[str, jax.Array] = {}
    if config.reward_net is not None:
        critic_net = make_critic(agent_config, action_dim, False)
        policy_action = actor_forward(agent_config.actor, agent.actor, k_pi, batch.obs, action_dim, False).action
        adv = advantage(critic_net, agent.critic, batch.obs, batch.action, jax.lax.stop_gradient(policy_action))
        loss, grads = jax.value_and_grad(lambda p: reward_loss(config, p, k_reward, batch.obs, batch.action, adv))(
            es.reward)
        params, opt = adam_step(es.reward, grads, es.reward_opt, hparams.lr_reward, hparams.weight_decay)
        es = es.replace(reward=params, reward_opt=opt)
        metrics["reward_net_loss"] = loss
    if config.state_exploration:
        loss, grads = jax.value_and_grad(lambda p: state_loss(config, p, k_state, batch.next_obs))(es.state)
        params, opt = adam_step(es.state, grads, es.state_opt, hparams.lr_state, hparams.weight_decay)
        es = es.replace(state=params, state_opt=opt)
        metrics["state_net_loss"] = loss
    return es, metrics


def end_epoch(config: ExploreConfig, es: ExploreState, state_net_loss: jax.Array, hparams: Hparams) -> ExploreState:
    """chi <- min(chi + eta, M) if the epoch's mean SENPNN loss is below T (NaN, before updates start: no change)."""
    if not config.state_exploration:
        return es
    return es.replace(chi=update_chi(es.chi, state_net_loss, hparams.state_threshold, hparams.chi_rate,
                                     hparams.chi_max))
