"""Agents, one file each. Off-policy: SAC (continuous and discrete), TD3, DDPG and their diffusion versions
D2SAC, DM-TD3, DM-DDPG; each module exposes `default_config`, `default_hparams` and `update`. On-policy: PPO and
A2C (`ppo.py`: `PPOConfig`, `PPOHparams`, the losses). Offline (`offline_base.py`: `OfflineConfig`,
`OfflineHparams`): BC, TD3+BC, IQL, Diffusion-QL (with EDP's action approximation) and flow Q-learning (FQL).
Multi-agent (`maddpg.py`: `MAConfig`): MADDPG, DM-MADDPG, QMIX and DM-QMIX (`qmix.py`).
`make_train` (in `jaxdiff_rl.train`) turns any of them into one jittable `train(key, hparams)`."""

from __future__ import annotations

from types import ModuleType
from typing import Any

from jaxdiff_rl.agents import d2sac, ddpg, dm_ddpg, dm_td3, ppo, sac, td3
from jaxdiff_rl.agents import bc, diffusion_ql, fql, iql, td3_bc
from jaxdiff_rl.agents import base, maddpg, offline_base, qmix
from jaxdiff_rl.agents.maddpg import MA_ALGORITHMS, MAConfig
from jaxdiff_rl.agents.base import ALGORITHMS, AgentConfig, AgentState, Hparams, act, init_agent
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.agents.offline_base import OFFLINE_ALGORITHMS, OfflineConfig, OfflineHparams
from jaxdiff_rl.agents.ppo import ON_POLICY_ALGORITHMS, PPOConfig, PPOHparams

__all__ = ["ALGORITHMS", "ON_POLICY_ALGORITHMS", "MA_ALGORITHMS", "MAConfig", "OFFLINE_ALGORITHMS", "OfflineConfig", "OfflineHparams", "PPOConfig", "PPOHparams", "AgentConfig", "AgentState", "ActorConfig", "Hparams", "act", "init_agent", "module",
           "default_config", "default_hparams", "validate_hparams"]

_MODULES: dict[str, ModuleType] = {
    "sac": sac, "d2sac": d2sac, "td3": td3, "ddpg": ddpg, "dm_td3": dm_td3, "dm_ddpg": dm_ddpg,
    "bc": bc, "td3_bc": td3_bc, "iql": iql, "diffusion_ql": diffusion_ql, "fql": fql,
}


def module(algo: str) -> ModuleType:
    """The module implementing `algo`. Raises ValueError listing the valid names."""
    if algo in ON_POLICY_ALGORITHMS:
        return ppo
    if algo in MA_ALGORITHMS:
        return qmix if algo in ("qmix", "dm_qmix") else maddpg
    if algo not in _MODULES:
        raise ValueError(f"unknown algorithm {algo!r}; valid: {sorted([*_MODULES, *ON_POLICY_ALGORITHMS, *MA_ALGORITHMS])}")
    return _MODULES[algo]


def default_config(algo: str, /, **overrides: Any) -> AgentConfig | PPOConfig | OfflineConfig:
    """The algorithm's reference static settings with `overrides` replaced (validated). An `algo` override
    keeps these defaults under another name (e.g. the discrete-SAC baseline with D2SAC's settings).
    On-policy algorithms ("ppo", "a2c") give a `PPOConfig`."""
    if algo in ON_POLICY_ALGORITHMS:
        return ppo.default_config(overrides.pop("algo", algo), **overrides)
    if algo in MA_ALGORITHMS:
        return maddpg.default_config(overrides.pop("algo", algo), **overrides)
    bad = sorted(set(overrides) & set(ppo.ON_POLICY_ONLY))
    if bad:
        raise ValueError(f"{algo} is off-policy: {bad} are on-policy settings (use num_envs, steps_per_iter, "
                         f"updates_per_iter, num_iterations, batch_size, buffer_size)")
    return module(algo).default_config(**overrides)


def validate_hparams(hparams: Hparams | PPOHparams) -> Hparams | PPOHparams:
    """Range-check the concrete fields of off-policy `Hparams` or on-policy `PPOHparams` (any shape: a sweep's
    stacked values); ValueError names the field and the range, TypeError for any other type."""
    if isinstance(hparams, PPOHparams):
        return ppo.validate_ppo_hparams(hparams)
    if isinstance(hparams, OfflineHparams):
        return offline_base.validate_offline_hparams(hparams)
    return base.validate_hparams(hparams)


def default_hparams(algo: str, /, **overrides: Any) -> Hparams | PPOHparams:
    """The algorithm's reference hyperparameters with `overrides` replaced (validated)."""
    if algo in ON_POLICY_ALGORITHMS:
        return ppo.default_hparams(algo, **overrides)
    if algo in OFFLINE_ALGORITHMS:
        return offline_base.validate_offline_hparams(module(algo).default_hparams(**overrides))
    if algo in MA_ALGORITHMS:
        return validate_hparams((qmix if algo in ("qmix", "dm_qmix") else maddpg).default_hparams(**overrides))
    return validate_hparams(module(algo).default_hparams(**overrides))
