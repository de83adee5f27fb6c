"""DDPG (Lillicrap et al. 2016): deterministic tanh actor, one critic, Polyak targets, Gaussian exploration.
The TD3 loss of `td3.py` with its three additions switched off (one critic, no smoothing, no delay)."""

from __future__ import annotations

from typing import Any

from jaxdiff_rl.agents.base import AgentConfig, Hparams
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.agents.td3 import update

__all__ = ["default_config", "default_hparams", "update"]


def default_config(**overrides: Any) -> AgentConfig:
    base = dict(
        algo="ddpg", actor=ActorConfig(kind="deterministic"), target_actor=True, num_critics=1, policy_delay=1,
        target_smoothing=False, actor_q="first", exploration="gaussian",
    )
    return AgentConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> Hparams:
    base = dict(lr_actor=1e-4, lr_critic=1e-3, gamma=0.99, tau=0.005, explore_noise=0.1)
    return Hparams(**{**base, **overrides})
