"""Seed 003's Table II as ready-made settings: D2RL = DM-DDPG (action exploration) + `ExploreConfig`."""

from __future__ import annotations

from typing import Any

from jaxdiff_rl.agents import dm_ddpg
from jaxdiff_rl.agents.base import AgentConfig, Hparams, validate_hparams
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.explore.config import ExploreConfig

__all__ = ["d2rl_config", "d2rl_hparams"]

TABLE_II_WIDTH = 256


def d2rl_config(
    reward: str = "designed",
    state_exploration: bool = False,
    action_gdm: bool = True,
    width: int = TABLE_II_WIDTH,
    clip_gradient: str = "straight_through",
    state_forward_steps: int | None = None,
    state_schedule: str | None = None,
    **overrides: Any,
) -> AgentConfig:
    """DM-DDPG with D2RL's exploration networks (Table II: 4 x `width` AENPNN/SENPNN, 5 x `width` RENPNN, P = 6,
    batch 256, buffer 1e5, epsilon-greedy, double critic). `action_gdm=False` gives the "A. w/o GDM" baseline
    (a deterministic 4 x `width` MLP actor trained by the same DDPG loss). `width` scales all networks at once
    (the CPU reproduction uses smaller ones); `state_forward_steps` and `state_schedule` set Mode II's noising depth and
    schedule (None: all P steps of the vp schedule, see `ExploreConfig`); `overrides` go to `AgentConfig`."""
    hidden4, hidden5 = (width,) * 4, (width,) * 5
    actor = (ActorConfig(kind="diffusion", hidden_dims=hidden4, diffusion_steps=6, schedule="vp",
                         clip_gradient=clip_gradient) if action_gdm
             else ActorConfig(kind="deterministic", hidden_dims=hidden4))
    explore = ExploreConfig(reward=reward, state_exploration=state_exploration, reward_hidden_dims=hidden5,
                            state_hidden_dims=hidden4, diffusion_steps=6,
                            state_forward_steps=state_forward_steps, state_schedule=state_schedule)
    base = dict(actor=actor, critic_hidden_dims=(width, width), explore=explore,
                algo="dm_ddpg" if action_gdm else "ddpg")
    return dm_ddpg.default_config(**{**base, **overrides})


def d2rl_hparams(**overrides: Any) -> Hparams:
    """Table II: lr 5e-5 (AENPNN, RENPNN), 1e-4 (SENPNN), weight decay 7e-5, T = 5e-4, epsilon 0.1, tau 5e-3,
    gamma 1 (the FD-ISAC rounds are one-shot: use `FDParams(one_shot=True)`). M and eta default to the paper's
    best for Designed R. (0.9, 0.001)."""
    base = dict(lr_actor=5e-5, lr_reward=5e-5, lr_state=1e-4, weight_decay=7e-5, state_threshold=5e-4,
                epsilon=0.1, tau=5e-3, gamma=1.0, chi_max=0.9, chi_rate=1e-3)
    return validate_hparams(dm_ddpg.default_hparams(**{**base, **overrides}))
