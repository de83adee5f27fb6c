"""DM-DDPG (seed 003, D2RL "Mode I" action exploration): the actor is the GDM reverse process itself — Gaussian
noise x_P and the state go through P denoising steps of the action-exploration noise predictor (AENPNN) to give
the action — trained like DDPG by backpropagating min(Q1, Q2)(s, x_0(s)) through the whole chain; double critic
with Polyak targets; epsilon-greedy exploration (a uniform random action with probability epsilon).

Defaults are seed 003's Table II: 4 hidden layers of 256, P = 6 diffusion steps, actor lr 5e-5, weight decay
7e-5, tau 5e-3, epsilon 0.1, batch 256, buffer 1e5. Table II's gamma = 1 suits its one-shot rounds; the default
here is 0.99 so that continuing tasks stay bounded (set gamma=1.0 to match the paper)."""

from __future__ import annotations

from typing import Any

from jaxdiff_rl.agents.base import AgentConfig, Hparams
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.agents.td3 import update

__all__ = ["default_config", "default_hparams", "update"]


def default_config(**overrides: Any) -> AgentConfig:
    base = dict(
        algo="dm_ddpg",
        actor=ActorConfig(kind="diffusion", hidden_dims=(256, 256, 256, 256), diffusion_steps=6, schedule="vp"),
        target_actor=True, num_critics=2, policy_delay=1, target_smoothing=False, actor_q="min",
        exploration="epsilon", batch_size=256, buffer_size=100_000,
    )
    return AgentConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> Hparams:
    base = dict(lr_actor=5e-5, lr_critic=5e-4, weight_decay=7e-5, gamma=0.99, tau=5e-3, epsilon=0.1)
    return Hparams(**{**base, **overrides})
