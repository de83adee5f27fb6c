"""The training loops, each returning the same `Trainer` (init / run / train / evaluate; pure, vmappable over keys,
hparams and env params), so the runner, sweeps, checkpoints, CLI and plots know no loop in particular:

- `off_policy`: SAC, TD3, DDPG and their diffusion versions (D2SAC, DM-TD3, DM-DDPG), replay buffer on device;
- `on_policy`: PPO, A2C and DM-PPO (GAE, clipped surrogate, minibatch epochs);
- `multi_agent`: MADDPG, DM-MADDPG (centralised critics, decentralised actors), QMIX, DM-QMIX and the mean-field
  MFAC / DM-MFAC on `envs.multi_agent` envs;
- `multi_agent_on_policy`: IPPO and MAPPO, the on-policy iteration over agent lanes (a `PPOConfig` with
  algo "ippo" / "mappo");
- `offline`: BC, TD3+BC, IQL, Diffusion-QL and FQL on a fixed dataset (periodic greedy evaluation in the env);
- beside them the pieces every loop shares: `buffer` (device replay buffer), `rollout` (vectorised episodes,
  timed rollouts, optimum fractions) and `sweep` (seed / grid stacking and sharding of hparams).

`make_trainer` / `make_train` pick the loop from the config's type (`AgentConfig`, `PPOConfig` (IPPO / MAPPO by its algo),
`MAConfig` or `OfflineConfig`, which also takes the dataset).
"""

from __future__ import annotations

from typing import Any, Callable

from jaxdiff_rl.agents.offline_base import OfflineConfig
from jaxdiff_rl.agents.ppo import MULTI_AGENT_ON_POLICY, PPOConfig
from jaxdiff_rl.agents.maddpg import MAConfig
from jaxdiff_rl.train import multi_agent, multi_agent_on_policy, off_policy, offline, on_policy
from jaxdiff_rl.train.off_policy import (ActionSpec, RunnerState, Trainer, action_spec, check_finite,
                                         greedy_evaluation, optimum_fraction)
from jaxdiff_rl.train.on_policy import OnPolicyState

__all__ = ["ActionSpec", "RunnerState", "OnPolicyState", "Trainer", "make_trainer", "make_train", "action_spec",
           "check_finite", "optimum_fraction", "greedy_evaluation", "off_policy", "on_policy", "offline", "multi_agent"]


def make_trainer(config: Any, env: Any, env_params: Any, dataset: Any = None) -> Trainer:
    """The `Trainer` of a run: the on-policy loop for a `PPOConfig`, the off-policy loop for an `AgentConfig`, the
    offline loop for an `OfflineConfig` (which needs `dataset`, an `envs.offline_data.OfflineDataset`).
    Validates config against the environment before anything compiles (TypeError for any other config)."""
    if isinstance(config, OfflineConfig):
        if dataset is None:
            raise ValueError(f"{config.algo} is an offline algorithm: pass dataset=OfflineDataset(...)")
        return offline.make_trainer(config, env, env_params, dataset)
    if dataset is not None:
        raise ValueError(f"dataset is for offline algorithms; {type(config).__name__} collects its own data")
    if isinstance(config, PPOConfig):
        if config.algo in MULTI_AGENT_ON_POLICY:
            return multi_agent_on_policy.make_trainer(config, env, env_params)
        return on_policy.make_trainer(config, env, env_params)
    if isinstance(config, MAConfig):
        return multi_agent.make_trainer(config, env, env_params)
    return off_policy.make_trainer(config, env, env_params)


def make_train(config: Any, env: Any, env_params: Any, dataset: Any = None) -> Callable:
    """`train(key, hparams, env_params=None) -> (state, metrics)`: a whole run, jittable end to end."""
    return make_trainer(config, env, env_params, dataset).train
