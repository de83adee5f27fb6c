"""D2SAC (AGOD, the diffusion-based SAC of seed 001's AIGC provider selection; spec: shared/specs/aigc.md).

The SAC loss of `sac.py` with the shared diffusion actor: an eps-prediction `Denoiser` conditioned on the state,
T = 5 VP-schedule DDPM steps from x_T ~ N(0, I), x_0 = action logits, pi = softmax(x_0) (discrete); twin
critics; n-step (3) targets sum_a pi_target(a|s') min Q'(s', a) with no entropy term; actor loss
-E[alpha H(pi) + sum_a pi Q_min] with fixed alpha = 0.05; Adam with coupled L2 1e-4; Polyak tau = 0.005 of the
target actor and critics after every update. On a Box action space the chain's x_0 (clipped to [-1, 1] at every
step) is the action and the actor loss is -E[Q_min] (see `sac.py`).

`default_config()` / `default_hparams()` are the spec's reference settings (1000 epochs x (1000 env steps +
1000 updates), batch 512, buffer 1e6): about 1e6 updates of ~2.7 GFLOP, hours on a CPU. Shorter runs override
`num_iterations`, widths and batch.
"""

from __future__ import annotations

from typing import Any

from jaxdiff_rl.agents.base import AgentConfig, Hparams
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.agents.sac import update

__all__ = ["default_config", "default_hparams", "update"]


def default_config(**overrides: Any) -> AgentConfig:
    base = dict(
        algo="d2sac",
        actor=ActorConfig(kind="diffusion", hidden_dims=(256, 256), diffusion_steps=5, schedule="vp", time_dim=16),
        critic_hidden_dims=(256, 256),
        num_envs=1, steps_per_iter=1000, updates_per_iter=1000, num_iterations=1000,
        batch_size=512, buffer_size=1_000_000, n_step=3, learning_starts=0,
        auto_alpha=False, entropy_in_target=False, target_actor=True, num_critics=2, exploration="policy",
    )
    return AgentConfig(**{**base, **overrides})


def default_hparams(**overrides: Any) -> Hparams:
    base = dict(lr_actor=1e-4, lr_critic=1e-3, weight_decay=1e-4, gamma=0.95, tau=0.005, alpha=0.05,
                explore_noise=0.1)
    return Hparams(**{**base, **overrides})
