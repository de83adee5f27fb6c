"""State exploration (seed 003 section IV-C2, Algorithm 1, "Mode II" on states): the SENPNN and the chi schedule.

The SENPNN eps_w is a GDM of the observed states S^0, trained with the noise-prediction loss of eq. (22)
(= eq. 8, `diffusion_loss`). Mode II generates an explored state by running the forward process on S^0 to step P
and the reverse process back: S_hat^0 = reverse_w(q(x_P | S^0)). With the vp schedule and P = 6,
alpha_bar_P = 0.0064, so S_hat^0 is essentially a fresh sample of the learned state distribution (diverse states),
not a denoised copy of S^0. `ExploreConfig.state_forward_steps` = p < P noises S^0 only to step p and runs the
last p reverse steps (a partial forward process, as in SDEdit), so S_hat^0 stays near S^0: a reading of the
paper's "S_hat^0 may not closely resemble S^0 during the early stages of SENPNN training" under which a trained
SENPNN's states do resemble the observed ones.

The agent acts on S_hat^0 instead of S^0 with the substitute probability chi; chi starts at 0 and grows as
chi <- min(chi + eta, M) each epoch in which the SENPNN's loss is below the threshold T (Table II: 5e-4), so
synthetic states only enter once the generator has learned the states. The environment still rewards the action on
the true state (the substitution happens at the agent's input), and the replay buffer records (S_t, A_t, S_t+1, R_t)
with S_t the state the agent saw.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdiff_rl.diffusion import SamplerConfig, diffusion_loss, make_schedule, q_sample, sample
from jaxdiff_rl.explore.config import ExploreConfig
from jaxdiff_rl.nets import Denoiser

__all__ = ["state_module", "state_init", "state_loss", "explore_states", "update_chi", "substitute"]


def state_module(config: ExploreConfig, obs_dim: int) -> nn.Module:
    return Denoiser(out_dim=obs_dim, cond_dim=0, hidden_dims=config.state_hidden_dims, time_dim=config.time_dim,
                    activation=config.activation)


def state_init(key: jax.Array, config: ExploreConfig, obs_dim: int) -> Any:
    """SENPNN parameters, or None without state exploration."""
    if not config.state_exploration:
        return None
    return state_module(config, obs_dim).init(key, jnp.zeros((1, obs_dim), jnp.float32), jnp.zeros((1,), jnp.int32))


def _model_fn(config: ExploreConfig, params: Any, obs_dim: int):
    module = state_module(config, obs_dim)
    return lambda x, t, cond, use_cond: module.apply(params, x, t)


def state_loss(config: ExploreConfig, params: Any, key: jax.Array, states: jax.Array) -> jax.Array:
    """Eq. (22): E_{p, eps} ||eps - eps_w(sqrt(abar_p) S + sqrt(1 - abar_p) eps, p)||^2 over states [B, S]."""
    schedule = make_schedule(config.senpnn_schedule, config.diffusion_steps)
    return diffusion_loss(key, _model_fn(config, params, states.shape[-1]), schedule, states)


def explore_states(config: ExploreConfig, params: Any, key: jax.Array, states: jax.Array) -> jax.Array:
    """Mode II: forward-noise states [B, S] to step p (`state_forward_steps`, default P), then p reverse steps of
    the SENPNN -> S_hat^0 [B, S]."""
    schedule = make_schedule(config.senpnn_schedule, config.diffusion_steps)
    forward = schedule.num_steps if config.state_forward_steps is None else config.state_forward_steps
    k_forward, k_reverse = jax.random.split(key)
    last = jnp.full(states.shape[:1], forward - 1, jnp.int32)
    x_p = q_sample(schedule, states, last, jax.random.normal(k_forward, states.shape, states.dtype))
    return sample(k_reverse, _model_fn(config, params, states.shape[-1]), schedule, states.shape, x_init=x_p,
                  config=SamplerConfig(method="ddpm"), start_step=forward - 1)


def update_chi(chi: jax.Array, loss: jax.Array, threshold: jax.Array, rate: jax.Array, maximum: jax.Array) -> jax.Array:
    """Algorithm 1: chi <- min(chi + eta, M) if the SENPNN loss < T, else chi unchanged (all may be traced)."""
    return jnp.where(loss < threshold, jnp.minimum(chi + rate, maximum), chi)


def substitute(key: jax.Array, states: jax.Array, explored: jax.Array, chi: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per row, the explored state with probability chi (uniform r < chi, so chi = 0 never substitutes), else the
    observed one. Returns (states the agent sees [B, S], substituted [B] bool)."""
    picked = jax.random.uniform(key, states.shape[:1]) < chi
    return jnp.where(picked[:, None], explored, states), picked
