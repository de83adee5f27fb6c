"""MADDPG in PyTorch with a NumPy ic-power, written the usual way, for `benchmarks/multi_agent_speed.py`.

The same shapes and rules as `jaxdiff_rl.agents.maddpg` with `share_parameters=True` and one critic: one tanh actor
shared by the K agents on [o_i, one-hot id] (mish MLP), a K-head critic on [global state, joint action], Adam,
Polyak targets, Gaussian exploration; each iteration steps N NumPy environments once (vectorised over environments
in NumPy, as a careful PyTorch user writes it), stores the joint transitions in a NumPy ring buffer and runs one
update on a minibatch. The environment is ic-power's Rayleigh model: gains [N, K, K] ~ Exp(1) redrawn every slot,
the 6 local features and the [K^2 + 2K] global state of `envs/ic_power.py`, team reward = sum rate.
"""

from __future__ import annotations

import copy
import time

import numpy as np
import torch
from torch import nn

from benchmarks.torch_reference.envs_numpy import ICPowerVec


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int) -> nn.Sequential:
    layers, d = [], in_dim
    for h in hidden:
        layers += [nn.Linear(d, h), nn.Mish()]
        d = h
    return nn.Sequential(*layers, nn.Linear(d, out_dim))


class TorchMADDPG:
    """Shared tanh actor on [o_i, id] and a K-head critic on [x, a_1..a_K] (module docstring)."""

    def __init__(self, num_agents: int, obs_dim: int, state_dim: int, actor_hidden: tuple[int, ...],
                 critic_hidden: tuple[int, ...], lr_actor: float, lr_critic: float, gamma: float, tau: float):
        self.k, self.gamma, self.tau = num_agents, gamma, tau
        self.actor = _mlp(obs_dim + num_agents, actor_hidden, 1)
        self.critic = _mlp(state_dim + num_agents, critic_hidden, num_agents)
        self.target_actor, self.target_critic = copy.deepcopy(self.actor), copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=lr_actor)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=lr_critic)
        self.ids = torch.eye(num_agents)

    def act(self, net: nn.Module, local: torch.Tensor) -> torch.Tensor:
        """[B, K, o] -> [B, K] in [-1, 1]."""
        ids = self.ids.expand(local.shape[0], -1, -1)
        return torch.tanh(net(torch.cat([local, ids], -1)))[..., 0]

    def update(self, local, glob, action, reward, next_local, next_glob) -> None:
        with torch.no_grad():
            next_a = self.act(self.target_actor, next_local)
            y = reward[:, None] + self.gamma * self.target_critic(torch.cat([next_glob, next_a], -1))
        q = self.critic(torch.cat([glob, action], -1))
        critic_loss = ((q - y) ** 2).mean()
        self.critic_opt.zero_grad()
        critic_loss.backward()
        self.critic_opt.step()
        mu = self.act(self.actor, local)  # [B, K]
        own = torch.eye(self.k, dtype=torch.bool)[:, None, :]  # [K, 1, K]
        joint = torch.where(own, mu[None], action[None])  # [K, B, K]
        q_i = self.critic(torch.cat([glob.expand(self.k, -1, -1), joint], -1))  # [K, B, K]
        actor_loss = -torch.diagonal(q_i, dim1=0, dim2=2).mean()
        self.actor_opt.zero_grad()
        actor_loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for net, target in ((self.actor, self.target_actor), (self.critic, self.target_critic)):
                for p, tp in zip(net.parameters(), target.parameters()):
                    tp.mul_(1 - self.tau).add_(self.tau * p)


def train(num_envs: int, num_links: int, iterations: int, batch_size: int, buffer_size: int, learning_starts: int,
          actor_hidden: tuple[int, ...], critic_hidden: tuple[int, ...], lr_actor: float = 1e-3,
          lr_critic: float = 1e-3, gamma: float = 0.0, tau: float = 0.01, explore_noise: float = 0.2,
          seed: int = 0) -> dict[str, float]:
    """`iterations` x (one step of `num_envs` envs + one update once the buffer holds `learning_starts` steps):
    {"seconds", "agent_steps_per_s", "reward_mean" (team sum rate per slot over the last 10% of iterations)}."""
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    env = ICPowerVec(rng, num_envs, num_links)
    local, glob = env.reset()
    k, o, s = num_links, local.shape[-1], glob.shape[-1]
    agent = TorchMADDPG(k, o, s, actor_hidden, critic_hidden, lr_actor, lr_critic, gamma, tau)
    buf = {"local": np.zeros((buffer_size, k, o), np.float32), "glob": np.zeros((buffer_size, s), np.float32),
           "action": np.zeros((buffer_size, k), np.float32), "reward": np.zeros(buffer_size, np.float32),
           "next_local": np.zeros((buffer_size, k, o), np.float32), "next_glob": np.zeros((buffer_size, s), np.float32)}
    ptr, size, rewards = 0, 0, []
    t0 = time.perf_counter()
    for it in range(iterations):
        with torch.no_grad():
            a = agent.act(agent.actor, torch.from_numpy(local)).numpy()
        a = np.clip(a + explore_noise * rng.standard_normal(a.shape), -1, 1).astype(np.float32)
        next_local, next_glob, reward = env.step(0.5 * (a + 1.0) * env.p_max)
        idx = (ptr + np.arange(num_envs)) % buffer_size
        for name, value in (("local", local), ("glob", glob), ("action", a), ("reward", reward),
                            ("next_local", next_local), ("next_glob", next_glob)):
            buf[name][idx] = value
        ptr, size = (ptr + num_envs) % buffer_size, min(size + num_envs, buffer_size)
        local, glob = next_local, next_glob
        if it >= iterations * 0.9:
            rewards.append(float(reward.mean()))
        if size >= max(batch_size, learning_starts):
            pick = rng.integers(0, size, batch_size)
            agent.update(*(torch.from_numpy(buf[n][pick]) for n in ("local", "glob", "action", "reward",
                                                                    "next_local", "next_glob")))
    seconds = time.perf_counter() - t0
    return {"seconds": seconds, "agent_steps_per_s": iterations * num_envs * num_links / seconds,
            "reward_mean": float(np.mean(rewards)) if rewards else float("nan")}
