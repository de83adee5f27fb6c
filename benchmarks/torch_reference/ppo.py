"""PPO in PyTorch written the usual way (CleanRL's `ppo.py` / `ppo_continuous_action.py` design): a vectorised
NumPy environment (`CartPoleVec`, `MSRVec`), one network forward per rollout step on the host, GAE as a Python
loop over time, then `update_epochs` x a Python loop over shuffled minibatches, each a forward, a backward, a
global-norm clip and an Adam step. The algorithm and every default are `jaxdiff_rl.agents.ppo`'s (PureJaxRL's
CartPole settings): separate 64 x 64 tanh actor and critic with orthogonal init (sqrt 2 hidden, 0.01 policy head,
1 value head), Adam eps 1e-5 with the learning rate annealed linearly to 0 per minibatch update, clipped value
loss, per-minibatch advantage standardisation, time-limit truncations bootstrapped from V(final obs), Gaussian
actions clipped to [-1, 1] (the unclipped sample stored). The side-by-side reference of
benchmarks/on_policy_speed.py."""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np
import torch
from torch import nn


@dataclasses.dataclass
class TorchPPOConfig:
    obs_dim: int
    action_dim: int  # number of actions (discrete) or the action vector's length (continuous)
    discrete: bool
    num_envs: int = 4
    num_steps: int = 128
    total_timesteps: int = 500_000
    update_epochs: int = 4
    num_minibatches: int = 4
    lr: float = 2.5e-4
    anneal_lr: bool = True
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    vf_clip: float = 0.2
    ent_coef: float = 0.01
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    hidden: tuple[int, ...] = (64, 64)

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // (self.num_envs * self.num_steps)


def _mlp(in_dim: int, hidden: tuple[int, ...], out_dim: int, head_gain: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for width in hidden:
        linear = nn.Linear(in_dim, width)
        nn.init.orthogonal_(linear.weight, math.sqrt(2.0))
        nn.init.zeros_(linear.bias)
        layers += [linear, nn.Tanh()]
        in_dim = width
    head = nn.Linear(in_dim, out_dim)
    nn.init.orthogonal_(head.weight, head_gain)
    nn.init.zeros_(head.bias)
    return nn.Sequential(*layers, head)


class ActorCritic(nn.Module):
    def __init__(self, c: TorchPPOConfig):
        super().__init__()
        self.discrete = c.discrete
        self.actor = _mlp(c.obs_dim, c.hidden, c.action_dim, 0.01)
        self.critic = _mlp(c.obs_dim, c.hidden, 1, 1.0)
        if not c.discrete:
            self.log_std = nn.Parameter(torch.zeros(c.action_dim))

    def dist(self, obs: torch.Tensor) -> torch.distributions.Distribution:
        head = self.actor(obs)
        if self.discrete:
            return torch.distributions.Categorical(logits=head)
        return torch.distributions.Normal(head, self.log_std.exp())

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        return self.critic(obs)[..., 0]

    def log_prob_entropy(self, dist, action: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.discrete:
            return dist.log_prob(action), dist.entropy()
        return dist.log_prob(action).sum(-1), dist.entropy().sum(-1)


def train(c: TorchPPOConfig, env, seed: int = 0, max_seconds: float | None = None) -> dict:
    """Run PPO on `env` (a `CartPoleVec` / `MSRVec` with `c.num_envs` lanes) for `c.num_iterations` iterations, or
    until `max_seconds` of wall time. Returns per-iteration `records` (wall_s since the start, env_steps,
    return_mean of finished episodes, optimum_fraction of the behaviour policy) and `steps_per_s` over the
    iterations after the first (the first pays PyTorch's lazy initialisation)."""
    torch.manual_seed(seed)
    net = ActorCritic(c)
    opt = torch.optim.Adam(net.parameters(), lr=c.lr, eps=1e-5)
    n, t_len = c.num_envs, c.num_steps
    batch, mb_size = n * t_len, n * t_len // c.num_minibatches
    total_updates = c.num_iterations * c.update_epochs * c.num_minibatches
    act_shape = () if c.discrete else (c.action_dim,)
    obs_buf = torch.zeros((t_len, n, c.obs_dim))
    act_buf = torch.zeros((t_len, n, *act_shape), dtype=torch.long if c.discrete else torch.float32)
    logp_buf, val_buf, next_val_buf, rew_buf, term_buf, done_buf = (torch.zeros((t_len, n)) for _ in range(6))
    obs = torch.as_tensor(env.reset())
    running = np.zeros(n)
    records, updates, t0 = [], 0, time.perf_counter()
    for it in range(c.num_iterations):
        returns_done, reward_sum, optimum_sum = [], 0.0, 0.0
        for step in range(t_len):
            with torch.no_grad():
                dist = net.dist(obs)
                action = dist.sample()
                logp, _ = net.log_prob_entropy(dist, action)
                value = net.value(obs)
            env_action = action.numpy() if c.discrete else np.clip(action.numpy(), -1.0, 1.0)
            next_obs, reward, terminated, truncated, final, optimum = env.step(env_action)
            with torch.no_grad():
                next_val_buf[step] = net.value(torch.as_tensor(final))
            done = terminated | truncated
            running += reward
            returns_done += list(running[done])
            running[done] = 0.0
            reward_sum += float(reward.sum())
            optimum_sum += float(np.nansum(optimum))
            obs_buf[step], act_buf[step], logp_buf[step], val_buf[step] = obs, action, logp, value
            rew_buf[step] = torch.as_tensor(reward)
            term_buf[step] = torch.as_tensor(terminated, dtype=torch.float32)
            done_buf[step] = torch.as_tensor(done, dtype=torch.float32)
            obs = torch.as_tensor(next_obs)
        with torch.no_grad():  # GAE, a Python loop over time
            adv = torch.zeros((t_len, n))
            last = torch.zeros(n)
            for step in reversed(range(t_len)):
                delta = rew_buf[step] + c.gamma * (1.0 - term_buf[step]) * next_val_buf[step] - val_buf[step]
                last = delta + c.gamma * c.gae_lambda * (1.0 - done_buf[step]) * last
                adv[step] = last
            ret = adv + val_buf
        b_obs, b_act = obs_buf.reshape(batch, c.obs_dim), act_buf.reshape(batch, *act_shape)
        b_logp, b_adv, b_ret, b_val = logp_buf.reshape(batch), adv.reshape(batch), ret.reshape(batch), val_buf.reshape(batch)
        for _ in range(c.update_epochs):
            perm = torch.randperm(batch)
            for start in range(0, batch, mb_size):
                if c.anneal_lr:
                    opt.param_groups[0]["lr"] = c.lr * (1.0 - updates / total_updates)
                idx = perm[start:start + mb_size]
                dist = net.dist(b_obs[idx])
                logp, entropy = net.log_prob_entropy(dist, b_act[idx])
                a = b_adv[idx]
                a = (a - a.mean()) / (a.std(unbiased=False) + 1e-8)
                ratio = (logp - b_logp[idx]).exp()
                actor_loss = -torch.min(ratio * a, ratio.clamp(1 - c.clip_eps, 1 + c.clip_eps) * a).mean()
                v = net.value(b_obs[idx])
                v_clipped = b_val[idx] + (v - b_val[idx]).clamp(-c.vf_clip, c.vf_clip)
                value_loss = 0.5 * torch.max((v - b_ret[idx]) ** 2, (v_clipped - b_ret[idx]) ** 2).mean()
                loss = actor_loss + c.vf_coef * value_loss - c.ent_coef * entropy.mean()
                opt.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), c.max_grad_norm)
                opt.step()
                updates += 1
        records.append({"iteration": it, "wall_s": time.perf_counter() - t0, "env_steps": (it + 1) * batch,
                        "return_mean": float(np.mean(returns_done)) if returns_done else float("nan"),
                        "optimum_fraction": reward_sum / optimum_sum if optimum_sum > 0 else float("nan")})
        if max_seconds is not None and records[-1]["wall_s"] > max_seconds and it >= 2:
            break
    timed = records[1:] if len(records) > 1 else records
    span = timed[-1]["wall_s"] - (records[0]["wall_s"] if len(records) > 1 else 0.0)
    return {"records": records, "steps_per_s": len(timed) * batch / span, "net": net}


def greedy_return(net: ActorCritic, env, episodes_steps: int) -> float:
    """Mean return of finished episodes of the greedy policy (argmax / mean) over `episodes_steps` vector steps."""
    obs, running, finished = torch.as_tensor(env.reset()), np.zeros(env.n), []
    for _ in range(episodes_steps):
        with torch.no_grad():
            head = net.actor(obs)
        action = head.argmax(-1).numpy() if net.discrete else np.clip(head.numpy(), -1.0, 1.0)
        next_obs, reward, terminated, truncated, _, _ = env.step(action)
        done = terminated | truncated
        running += reward
        finished += list(running[done])
        running[done] = 0.0
        obs = torch.as_tensor(next_obs)
    return float(np.mean(finished)) if finished else float("nan")
