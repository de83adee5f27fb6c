"""PyTorch networks of the reference: the Diffusion-QL/D2SAC denoiser, twin critics, the VP schedule and the DDPM
reverse loop (a Python `for` over the T steps, as in the papers' code). Same architecture as
`jaxdiff_rl.nets.Denoiser` and `jaxdiff_rl.agents.networks.DoubleCritic` (Mish MLPs; time embedding sinusoidal(16)
-> Linear(32) -> Mish -> Linear(16); trunk on [x_t, temb, state]; tanh output)."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


def sinusoidal(t: torch.Tensor, dim: int) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) / (half - 1) * torch.arange(half, dtype=torch.float32))
    args = t.float()[:, None] * freqs[None]
    return torch.cat([args.sin(), args.cos()], dim=-1)


def mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.Mish()]
        in_dim = width
    return nn.Sequential(*layers, nn.Linear(in_dim, out_dim))


class Denoiser(nn.Module):
    """eps_theta(x_t [B, A], t [B] long, state [B, S]) -> [B, A]."""

    def __init__(self, action_dim: int, obs_dim: int, hidden: tuple[int, ...], time_dim: int = 16,
                 out_tanh: bool = True):
        super().__init__()
        self.time_dim, self.out_tanh = time_dim, out_tanh
        self.time_mlp = nn.Sequential(nn.Linear(time_dim, 2 * time_dim), nn.Mish(), nn.Linear(2 * time_dim, time_dim))
        self.trunk = mlp(action_dim + time_dim + obs_dim, hidden, action_dim)

    def forward(self, x: torch.Tensor, t: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        temb = self.time_mlp(sinusoidal(t, self.time_dim))
        out = self.trunk(torch.cat([x, temb, state], dim=-1))
        return torch.tanh(out) if self.out_tanh else out


class DoubleCritic(nn.Module):
    """Continuous: Q(s, a) -> [2, B]. Discrete: Q(s, .) -> [2, B, A]."""

    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...], discrete: bool):
        super().__init__()
        self.discrete = discrete
        in_dim = obs_dim if discrete else obs_dim + action_dim
        out = action_dim if discrete else 1
        self.q1, self.q2 = mlp(in_dim, hidden, out), mlp(in_dim, hidden, out)

    def forward(self, obs: torch.Tensor, action: torch.Tensor | None = None) -> torch.Tensor:
        h = obs if self.discrete else torch.cat([obs, action], dim=-1)
        q = torch.stack([self.q1(h), self.q2(h)])
        return q if self.discrete else q[..., 0]


class VPSchedule:
    """Diffusion-QL's VP schedule, beta_t = 1 - exp(-b_min / T - (b_max - b_min)(2t - 1) / (2 T^2)), b = (0.1, 10),
    and the DDPM posterior coefficients (clipped log-variance)."""

    def __init__(self, num_steps: int, b_min: float = 0.1, b_max: float = 10.0):
        t = np.arange(1, num_steps + 1, dtype=np.float64)
        betas = 1.0 - np.exp(-b_min / num_steps - 0.5 * (b_max - b_min) * (2 * t - 1) / num_steps**2)
        abar = np.cumprod(1.0 - betas)
        abar_prev = np.concatenate([[1.0], abar[:-1]])
        post_var = betas * (1.0 - abar_prev) / (1.0 - abar)
        log_var = np.log(np.concatenate([[post_var[1] if num_steps > 1 else betas[0]], post_var[1:]]))
        f = lambda a: torch.tensor(a, dtype=torch.float32)
        self.T = num_steps
        self.sqrt_recip_abar, self.sqrt_recipm1_abar = f(np.sqrt(1.0 / abar)), f(np.sqrt(1.0 / abar - 1.0))
        self.coef1 = f(betas * np.sqrt(abar_prev) / (1.0 - abar))
        self.coef2 = f((1.0 - abar_prev) * np.sqrt(1.0 - betas) / (1.0 - abar))
        self.std = f(np.exp(0.5 * log_var))


def ddpm_sample(model: Denoiser, schedule: VPSchedule, state: torch.Tensor, action_dim: int,
                clip: bool) -> torch.Tensor:
    """x_0 [B, A] by T ancestral steps from x_T ~ N(0, I); `clip` clips x_t to [-1, 1] after every step (Box
    actions), with a straight-through gradient as jaxdiff_rl's default `ActorConfig.clip_gradient`.
    Differentiable (the actor's gradient flows through all T steps)."""
    batch = state.shape[0]
    x = torch.randn(batch, action_dim)
    for i in reversed(range(schedule.T)):
        t = torch.full((batch,), i, dtype=torch.long)
        eps = model(x, t, state)
        x0 = schedule.sqrt_recip_abar[i] * x - schedule.sqrt_recipm1_abar[i] * eps
        x = schedule.coef1[i] * x0 + schedule.coef2[i] * x
        if i > 0:
            x = x + schedule.std[i] * torch.randn_like(x)
        if clip:
            x = x + (x.clamp(-1.0, 1.0) - x).detach()
    return x
