"""Static settings of D2RL's exploration networks (seed 003, section IV-C and Table II).

`ExploreConfig` is a field of `AgentConfig` (`explore=None`: plain DRL). It switches the reward design and the
state exploration on and off and fixes the networks' shapes; everything swept (learning rates, the loss threshold
T, the maximum substitution probability M, its update rate eta, the correction scale) is a traced `Hparams` field.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from jaxdiff_rl.diffusion.schedules import check_schedule
from jaxdiff_rl.nets import ACTIVATIONS

__all__ = ["ExploreConfig", "REWARD_DESIGNS"]

#: the five reward designs of seed 003 section V-A3, as (use the upper bound R'?, learned correction network)
REWARD_DESIGNS: dict[str, tuple[bool, str | None]] = {
    "raw": (False, None),            # Raw R.:             R = C
    "designed": (True, None),        # Designed R.:        R = C - R'
    "designed_mlp": (True, "mlp"),   # Designed R. + MLP:  R = C - R' + c_MLP(s, a)
    "gdm": (False, "gdm"),           # GDM R.:             R = C + c_GDM(s, a)   (no expert bound; see reward.py)
    "designed_gdm": (True, "gdm"),   # Designed + GDM R.:  R = C - R' + c_GDM(s, a)
}


def _dims(name: str, value: Any) -> None:
    if not value or any(isinstance(w, bool) or not isinstance(w, int) or w < 1 for w in value):
        raise ValueError(f"ExploreConfig.{name} must be a non-empty tuple of positive integers, got {value!r}")


@dataclasses.dataclass(frozen=True)
class ExploreConfig:
    """D2RL's reward and state exploration (the action exploration is the DM-DDPG actor itself).

    Attributes:
        reward: one of REWARD_DESIGNS (C is the environment's objective, R' its upper bound `env.optimal_value`).
        state_exploration: substitute SENPNN-generated states for observed ones with probability chi (Algorithm 1).
        reward_hidden_dims: RENPNN trunk (Table II: 5 hidden layers of 256); also the MLP correction's.
        state_hidden_dims: SENPNN trunk (Table II: 4 hidden layers of 256).
        diffusion_steps: P of both GDMs (Table II: 6). schedule: their noise schedule.
        state_schedule: the SENPNN's own schedule, None: `schedule`. "linear" (beta 1e-4 .. 0.02, as DDPM's
            over 1000 steps) noises S^0 only slightly in P = 6 steps (sqrt(abar_6) = 0.97): S_hat^0 stays near S^0.
        state_forward_steps: how many forward (noising) steps Mode II applies to S^0 before as many reverse steps,
            1..P; None: all P (Algorithm 1 as written: with the vp schedule S^P keeps sqrt(abar_P) = 8% of S^0, so
            S_hat^0 is a fresh sample of the learned state distribution). Fewer steps keep S_hat^0 near S^0
            (p = 1: 93% of S^0 survives the noising, and one reverse step projects it back onto the learned states).
        activation, time_dim: as for the actor's denoiser.
    """

    reward: str = "designed"
    state_exploration: bool = False
    reward_hidden_dims: tuple[int, ...] = (256, 256, 256, 256, 256)
    state_hidden_dims: tuple[int, ...] = (256, 256, 256, 256)
    diffusion_steps: int = 6
    state_forward_steps: int | None = None
    schedule: str = "vp"
    state_schedule: str | None = None
    activation: str = "mish"
    time_dim: int = 16

    def __post_init__(self) -> None:
        if self.reward not in REWARD_DESIGNS:
            raise ValueError(f"ExploreConfig.reward must be one of {tuple(REWARD_DESIGNS)}, got {self.reward!r}")
        if not isinstance(self.state_exploration, bool):
            raise TypeError(f"ExploreConfig.state_exploration must be a bool, got {self.state_exploration!r}")
        _dims("reward_hidden_dims", self.reward_hidden_dims)
        _dims("state_hidden_dims", self.state_hidden_dims)
        steps = self.diffusion_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"ExploreConfig.diffusion_steps (P) must be an integer >= 1, got {steps!r}")
        forward = self.state_forward_steps
        if forward is not None and (isinstance(forward, bool) or not isinstance(forward, int)
                                    or not 1 <= forward <= steps):
            raise ValueError(f"ExploreConfig.state_forward_steps must be None or an integer in [1, P={steps}], "
                             f"got {forward!r}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"ExploreConfig.activation must be one of {sorted(ACTIVATIONS)}, got {self.activation!r}")
        if isinstance(self.time_dim, bool) or not isinstance(self.time_dim, int) or self.time_dim < 1:
            raise ValueError(f"ExploreConfig.time_dim must be an integer >= 1, got {self.time_dim!r}")
        check_schedule(self.schedule)
        if self.state_schedule is not None:
            check_schedule(self.state_schedule)

    @property
    def senpnn_schedule(self) -> str:
        """The SENPNN's noise schedule name."""
        return self.schedule if self.state_schedule is None else self.state_schedule

    @property
    def uses_upper_bound(self) -> bool:
        """Whether the reward subtracts the expert upper bound R' (needs `env.optimal_value`)."""
        return REWARD_DESIGNS[self.reward][0]

    @property
    def reward_net(self) -> str | None:
        """"mlp", "gdm" or None: the learned reward correction."""
        return REWARD_DESIGNS[self.reward][1]

    def replace(self, **changes: Any) -> "ExploreConfig":
        return dataclasses.replace(self, **changes)
