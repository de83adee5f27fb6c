"""D2SAC and DM-DDPG update rules in PyTorch, mirroring `jaxdiff_rl.agents.sac.update` (discrete, fixed alpha, no
entropy in the target, target actor) and `jaxdiff_rl.agents.td3.update` (DM-DDPG: no smoothing, no delay,
min-Q actor, epsilon-greedy). torch.optim.Adam(weight_decay=...) is the same coupled L2 as `adam_step`."""

from __future__ import annotations

import copy
import dataclasses

import torch

from benchmarks.torch_reference.nets import Denoiser, DoubleCritic, VPSchedule, ddpm_sample


@dataclasses.dataclass(frozen=True)
class TorchConfig:
    """The settings `jaxdiff_rl.agents.<algo>.default_config/default_hparams` use (see `from_jax`)."""

    algo: str  # "d2sac" | "dm_ddpg"
    obs_dim: int
    action_dim: int
    actor_hidden: tuple[int, ...]
    critic_hidden: tuple[int, ...]
    diffusion_steps: int
    batch_size: int
    buffer_size: int
    n_step: int
    lr_actor: float
    lr_critic: float
    weight_decay: float
    gamma: float
    tau: float
    alpha: float = 0.0
    epsilon: float = 0.0
    time_dim: int = 16

    @property
    def discrete(self) -> bool:
        return self.algo == "d2sac"

    @classmethod
    def from_jax(cls, config, hparams, obs_dim: int, action_dim: int) -> "TorchConfig":
        f = lambda v: float(v)
        return cls(
            algo=config.algo, obs_dim=obs_dim, action_dim=action_dim, actor_hidden=tuple(config.actor.hidden_dims),
            critic_hidden=tuple(config.critic_hidden_dims), diffusion_steps=config.actor.diffusion_steps,
            batch_size=config.batch_size, buffer_size=config.buffer_size, n_step=config.n_step,
            lr_actor=f(hparams.lr_actor), lr_critic=f(hparams.lr_critic), weight_decay=f(hparams.weight_decay),
            gamma=f(hparams.gamma), tau=f(hparams.tau), alpha=f(hparams.alpha), epsilon=f(hparams.epsilon),
            time_dim=config.actor.time_dim,
        )


class Agent:
    def __init__(self, c: TorchConfig):
        self.c = c
        self.schedule = VPSchedule(c.diffusion_steps)
        self.actor = Denoiser(c.action_dim, c.obs_dim, c.actor_hidden, c.time_dim)
        self.critic = DoubleCritic(c.obs_dim, c.action_dim, c.critic_hidden, c.discrete)
        self.target_actor, self.target_critic = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr_actor, weight_decay=c.weight_decay)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.lr_critic, weight_decay=c.weight_decay)

    def _chain(self, model: Denoiser, obs: torch.Tensor) -> torch.Tensor:
        return ddpm_sample(model, self.schedule, obs, self.c.action_dim, clip=not self.c.discrete)

    @torch.no_grad()
    def act(self, obs, explore: bool = True):
        """Actions for obs [N, obs_dim] (NumPy): [N] ints (D2SAC) or [N, A] in [-1, 1] (DM-DDPG)."""
        obs = torch.as_tensor(obs, dtype=torch.float32)
        x0 = self._chain(self.actor, obs)
        if self.c.discrete:
            if not explore:
                return x0.argmax(-1).numpy()
            return torch.distributions.Categorical(logits=x0).sample().numpy()
        if explore:
            pick = torch.rand(obs.shape[0]) < self.c.epsilon
            x0 = torch.where(pick[:, None], torch.rand_like(x0) * 2.0 - 1.0, x0)
        return x0.numpy()

    def _soft_update(self) -> None:
        for net, target in ((self.actor, self.target_actor), (self.critic, self.target_critic)):
            for p, tp in zip(net.parameters(), target.parameters()):
                tp.data.mul_(1.0 - self.c.tau).add_(self.c.tau * p.data)

    def update(self, batch) -> dict[str, float]:
        obs, action, ret, next_obs, discount = batch
        c = self.c
        with torch.no_grad():
            next_x0 = self._chain(self.target_actor, next_obs)
            if c.discrete:
                q_next = self.target_critic(next_obs).min(0).values  # [B, A]
                v_next = (torch.softmax(next_x0, -1) * q_next).sum(-1)
            else:
                v_next = self.target_critic(next_obs, next_x0).min(0).values
            y = ret + discount * v_next
        if c.discrete:
            q_all = self.critic(obs)  # [2, B, A]
            q = q_all.gather(-1, action[None, :, None].expand(2, -1, 1)).squeeze(-1)
            q_pi = q_all.detach().min(0).values  # the critics before this update's step, as in ours
        else:
            q = self.critic(obs, action)
        critic_loss = ((q - y[None]) ** 2).mean(-1).sum()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()

        x0 = self._chain(self.actor, obs)
        if c.discrete:
            probs = torch.softmax(x0, -1)
            entropy = -(probs * probs.clamp(1e-8, 1.0).log()).sum(-1)
            actor_loss = -(c.alpha * entropy + (probs * q_pi).sum(-1)).mean()
        else:
            actor_loss = -self.critic(obs, x0).min(0).values.mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        self._soft_update()
        return {"critic_loss": float(critic_loss), "actor_loss": float(actor_loss)}
