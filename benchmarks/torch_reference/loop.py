"""The training loop of the PyTorch reference: each iteration collects `steps_per_iter` vector steps of the NumPy
environments (Python loop) into the replay buffer, then runs `updates_per_iter` updates once the buffer holds a
batch; the same schedule as `jaxdiff_rl.train`."""

from __future__ import annotations

import time
from typing import Callable

import numpy as np
import torch

from benchmarks.torch_reference.agents import Agent, TorchConfig
from benchmarks.torch_reference.buffer import ReplayBuffer
from benchmarks.torch_reference.envs_numpy import VectorEnv


def train(c: TorchConfig, make_env: Callable, num_envs: int, iterations: int, steps_per_iter: int,
          updates_per_iter: int, seed: int = 0, prefill: int = 0, on_iteration: Callable | None = None) -> list[dict]:
    """Run `iterations` iterations after `prefill` untimed transitions (collected by the initial policy, as the
    JAX benchmark does, so every timed iteration updates). Returns per-iteration records: wall seconds since the
    start of the timed part, env steps, behaviour reward mean, finished-episode return mean, optimum fraction."""
    torch.manual_seed(seed)
    agent = Agent(c)
    envs = VectorEnv(make_env, num_envs, seed)
    buffer = ReplayBuffer(c.buffer_size, num_envs, c.obs_dim, () if c.discrete else (c.action_dim,), c.discrete)
    obs = envs.reset()
    running = np.zeros(num_envs)

    def collect(n: int, stats: dict) -> np.ndarray:
        nonlocal obs, running
        for _ in range(n):
            action = agent.act(obs)
            next_obs, reward, terminated, final, optimum = envs.step(action)
            buffer.add(obs, action, reward, final, terminated)
            running = running + reward
            stats["returns"] += list(running[terminated])
            running = np.where(terminated, 0.0, running)
            stats["reward"] += float(reward.sum())
            stats["optimum"] += float(np.nansum(optimum))
            obs = next_obs
        return obs

    collect(-(-prefill // num_envs), {"returns": [], "reward": 0.0, "optimum": 0.0})
    records, t0, env_steps = [], time.perf_counter(), 0
    for it in range(iterations):
        stats = {"returns": [], "reward": 0.0, "optimum": 0.0}
        collect(steps_per_iter, stats)
        env_steps += steps_per_iter * num_envs
        if len(buffer) >= c.batch_size:
            for _ in range(updates_per_iter):
                agent.update(buffer.sample(c.batch_size, c.n_step, c.gamma))
        record = {
            "iteration": it, "wall_s": time.perf_counter() - t0, "env_steps": env_steps,
            "reward_mean": stats["reward"] / (steps_per_iter * num_envs),
            "return_mean": float(np.mean(stats["returns"])) if stats["returns"] else float("nan"),
            "optimum_fraction": stats["reward"] / stats["optimum"] if stats["optimum"] > 0 else float("nan"),
        }
        records.append(record)
        if on_iteration is not None:
            on_iteration(record)
    return records
