"""Replay buffer of the PyTorch reference: preallocated tensors, time-major [rows, num_envs] like
`jaxdiff_rl.train.buffer`, uniform sampling and n-step returns computed at sample time (Tianshou's
`compute_nstep_return` pattern), truncated at episode ends."""

from __future__ import annotations

import torch


class ReplayBuffer:
    def __init__(self, capacity: int, num_envs: int, obs_dim: int, action_shape: tuple[int, ...], discrete: bool):
        self.rows, self.n = max(1, capacity // num_envs), num_envs
        self.obs = torch.zeros(self.rows, num_envs, obs_dim)
        self.next_obs = torch.zeros(self.rows, num_envs, obs_dim)
        self.action = torch.zeros(self.rows, num_envs, *action_shape, dtype=torch.long if discrete else torch.float32)
        self.reward = torch.zeros(self.rows, num_envs)
        self.terminated = torch.zeros(self.rows, num_envs, dtype=torch.bool)
        self.ptr, self.size = 0, 0

    def add(self, obs, action, reward, next_obs, terminated) -> None:
        i = self.ptr
        self.obs[i] = torch.as_tensor(obs, dtype=torch.float32)
        self.action[i] = torch.as_tensor(action)
        self.reward[i] = torch.as_tensor(reward)
        self.next_obs[i] = torch.as_tensor(next_obs, dtype=torch.float32)
        self.terminated[i] = torch.as_tensor(terminated)
        self.ptr, self.size = (i + 1) % self.rows, min(self.size + 1, self.rows)

    def __len__(self) -> int:
        return self.size * self.n

    def sample(self, batch_size: int, n_step: int, gamma: float):
        """(obs, action, n-step return G, bootstrap obs, discount gamma^m (1 - terminated))."""
        oldest = 0 if self.size < self.rows else self.ptr
        chrono = torch.randint(0, self.size, (batch_size,))
        lane = torch.randint(0, self.n, (batch_size,))
        first = (oldest + chrono) % self.rows
        ret, discount = torch.zeros(batch_size), torch.ones(batch_size)
        alive, last = torch.ones(batch_size, dtype=torch.bool), first.clone()
        for k in range(n_step):
            take = alive & (chrono + k < self.size)
            r = (oldest + chrono + k) % self.rows
            ret = ret + torch.where(take, discount * self.reward[r, lane], 0.0)
            discount = torch.where(take, discount * gamma, discount)
            last = torch.where(take, r, last)
            alive = take & ~self.terminated[r, lane]
        discount = discount * (~self.terminated[last, lane]).float()
        return self.obs[first, lane], self.action[first, lane], ret, self.next_obs[last, lane], discount
