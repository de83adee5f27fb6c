"""DM-TD3 (seed 000): TD3 with the shared diffusion actor. The action is the reverse chain's x_0 (DDPM, T
steps, clipped to [-1, 1] at every step); the actor loss -E[Q_1(s, x_0(s))] backpropagates through the chain,
plus the optional DDPM loss of replay actions (`bc_loss=True`, weight `bc_weight`) that keeps the actor close to
the data as in Diffusion-QL. Clipped double Q, target smoothing and delay 2 as in TD3."""

from __future__ import annotations

from typing import Any

from jaxdiff_rl.agents.base import AgentConfig, Hparams
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.agents.td3 import update

__all__ = ["default_config", "default_hparams", "update"]


def default_config(**overrides: Any) -> AgentConfig:
    base = dict(
        algo="dm_td3", actor=ActorConfig(kind="diffusion", diffusion_steps=5, schedule="vp", output_tanh=True),
        target_actor=True, num_critics=2, policy_delay=2, target_smoothing=True, actor_q="first",
        exploration="gaussian", bc_loss=False,
    )
    return AgentConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> Hparams:
    base = dict(lr_actor=3e-4, lr_critic=3e-4, gamma=0.99, tau=0.005, explore_noise=0.1, target_noise=0.2,
                noise_clip=0.5, bc_weight=0.1)
    return Hparams(**{**base, **overrides})
