"""Off-policy agents, one file each: SAC (continuous and discrete), TD3, DDPG and their diffusion versions
D2SAC, DM-TD3, DM-DDPG. Each module exposes `default_config`, `default_hparams` and `update`; `make_train`
(in `jaxdiff_rl.train`) turns any of them into one jittable `train(key, hparams)`."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from jaxdiff_rl.agents import d2sac, ddpg, dm_ddpg, dm_td3, sac, td3
from jaxdiff_rl.agents.base import ALGORITHMS, AgentConfig, AgentState, Hparams, act, init_agent, validate_hparams
from jaxdiff_rl.agents.networks import ActorConfig

__all__ = ["ALGORITHMS", "AgentConfig", "AgentState", "ActorConfig", "Hparams", "act", "init_agent", "module",
           "default_config", "default_hparams", "validate_hparams"]

_MODULES: dict[str, ModuleType] = {
    "sac": sac, "d2sac": d2sac, "td3": td3, "ddpg": ddpg, "dm_td3": dm_td3, "dm_ddpg": dm_ddpg,
}


def module(algo: str) -> ModuleType:
    """The module implementing `algo`. Raises ValueError listing the valid names."""
    if algo not in _MODULES:
        raise ValueError(f"unknown algorithm {algo!r}; valid: {sorted(_MODULES)}")
    return _MODULES[algo]


def default_config(algo: str, /, **overrides: Any) -> AgentConfig:
    """The algorithm's reference static settings with `overrides` replaced (validated). An `algo` override
    keeps these defaults under another name (e.g. the discrete-SAC baseline with D2SAC's settings)."""
    return module(algo).default_config(**overrides)


def default_hparams(algo: str, /, **overrides: Any) -> Hparams:
    """The algorithm's reference hyperparameters with `overrides` replaced (validated)."""
    return validate_hparams(module(algo).default_hparams(**overrides))
