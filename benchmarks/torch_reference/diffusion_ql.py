"""Diffusion-QL's training step in PyTorch (Wang et al. 2023, the structure of the authors' `Diffusion_QL.train`),
with the same shapes and settings as `jaxdiff_rl.agents.diffusion_ql`: eps-prediction DDPM policy (T steps, VP
schedule) conditioned on the state, twin critics, target chain from the EMA actor, L = L_bc + eta L_q with the
normalised Q term through the whole reverse chain, actor gradient-norm clip, EMA every 5 updates, Polyak critics.
`edp=True`: the Q term at the one-step x0 estimate of the noised dataset action (EDP)."""

from __future__ import annotations

import copy

import torch

from benchmarks.torch_reference.nets import Denoiser, DoubleCritic, VPSchedule, ddpm_sample


class DiffusionQL:
    def __init__(self, obs_dim: int, action_dim: int, hidden: tuple[int, ...] = (256, 256, 256), steps: int = 5,
                 lr: float = 3e-4, eta: float = 1.0, gamma: float = 0.99, tau: float = 0.005,
                 ema_decay: float = 0.995, grad_norm: float = 5.0, ema_every: int = 5, ema_start: int = 1000,
                 edp: bool = False):
        self.actor = Denoiser(action_dim, obs_dim, hidden, out_tanh=False)
        self.ema = copy.deepcopy(self.actor)
        self.critic = DoubleCritic(obs_dim, action_dim, hidden, discrete=False)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr)
        self.schedule = VPSchedule(steps)
        t = torch.arange(1, steps + 1, dtype=torch.float64)
        betas = 1 - torch.exp(-0.1 / steps - 0.5 * 9.9 * (2 * t - 1) / steps**2)
        abar = torch.cumprod(1 - betas, 0)
        self.sqrt_abar, self.sqrt_1m_abar = abar.sqrt().float(), (1 - abar).sqrt().float()
        self.action_dim, self.eta, self.gamma, self.tau = action_dim, eta, gamma, tau
        self.ema_decay, self.grad_norm, self.ema_every, self.ema_start, self.edp = (
            ema_decay, grad_norm, ema_every, ema_start, edp)
        self.step = 0

    def update(self, obs, action, reward, next_obs, not_done) -> dict[str, float]:
        with torch.no_grad():
            next_a = ddpm_sample(self.ema, self.schedule, next_obs, self.action_dim, clip=True).clamp(-1, 1)
            target_q = self.critic_target(next_obs, next_a).min(0).values
            y = reward + not_done * self.gamma * target_q
        q = self.critic(obs, action)
        critic_loss = ((q - y[None]) ** 2).mean(-1).sum()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        b = obs.shape[0]
        t = torch.randint(0, self.schedule.T, (b,))
        noise = torch.randn_like(action)
        x_t = self.sqrt_abar[t, None] * action + self.sqrt_1m_abar[t, None] * noise
        eps = self.actor(x_t, t, obs)
        bc_loss = ((eps - noise) ** 2).mean()
        if self.edp:
            new_a = ((x_t - self.sqrt_1m_abar[t, None] * eps) / self.sqrt_abar[t, None]).clamp(-1, 1)
        else:
            new_a = ddpm_sample(self.actor, self.schedule, obs, self.action_dim, clip=True)
        q1, q2 = self.critic(obs, new_a)
        if torch.rand(()) > 0.5:
            q_loss = -q1.mean() / q2.abs().mean().detach()
        else:
            q_loss = -q2.mean() / q1.abs().mean().detach()
        actor_loss = bc_loss + self.eta * q_loss
        self.actor_opt.zero_grad()
        actor_loss.backward()
        if self.grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(self.actor.parameters(), max_norm=self.grad_norm)
        self.actor_opt.step()

        if self.step % self.ema_every == 0:
            with torch.no_grad():
                for e, p in zip(self.ema.parameters(), self.actor.parameters()):
                    if self.step < self.ema_start:
                        e.copy_(p)
                    else:
                        e.mul_(self.ema_decay).add_(p, alpha=1 - self.ema_decay)
        with torch.no_grad():
            for tp, p in zip(self.critic_target.parameters(), self.critic.parameters()):
                tp.mul_(1 - self.tau).add_(p, alpha=self.tau)
        self.step += 1
        return {"critic_loss": float(critic_loss), "actor_loss": float(actor_loss)}
