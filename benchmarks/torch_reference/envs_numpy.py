"""Gym-style NumPy environments for the PyTorch reference: the loop implementations of tests/envs/reference_numpy.py
(checked step by step against `envs` by the test suite) plus their exogenous randomness drawn with a NumPy
Generator, and a Python-loop vector of them (Tianshou's `DummyVectorEnv` pattern). Same dynamics and rewards as
`envs.make("aigc")` and `envs.make("msr-80")`; different random streams."""

from __future__ import annotations

import math

import numpy as np

from tests.envs.reference_numpy import AIGCLoop, MSRLoop, msr_rate_loop


class AIGCEnv:
    """AIGC service-provider selection (spec: shared/specs/aigc.md): Poisson arrivals of rate 1e-3 on [0, 1e6),
    task sizes uniform on {100, 110, ..., 250}; Discrete(M) actions; obs [2 M + 2]."""

    def __init__(self, rng: np.random.Generator, rate: float = 1e-3, horizon: float = 1e6):
        self.rng, self.rate, self.horizon = rng, rate, horizon
        self.loop = AIGCLoop(horizon=horizon)
        self.num_actions = len(self.loop.table)
        self.obs_dim = 2 * self.num_actions + 2

    def _size(self) -> float:
        return 100.0 + 10.0 * float(self.rng.integers(0, 16))

    def reset(self) -> np.ndarray:
        self.clock = 0.0
        return self.loop.reset(self._size())

    def step(self, action: int) -> tuple[np.ndarray, float, bool]:
        self.clock += self.rng.exponential(1.0 / self.rate)
        obs, reward, terminated = self.loop.step(int(action), math.floor(self.clock), self._size())
        return obs, reward, terminated

    def optimum(self) -> float:
        return float("nan")  # no per-step optimum for AIGC (the paper reports returns)


class MSREnv:
    """msr-80 by default (other MSR presets through the arguments): 80 channels, gains ~ U(0.5, 2.5), unit noise, P = 20 W; one instance per episode; Box(-1, 1, [80])
    actions (powers proportional to |a|); obs [81] = [g / n, P]. `optimum()` is the water-filling sum rate
    (bit/s/Hz) of the current instance, by sorting."""

    def __init__(self, rng: np.random.Generator, num_channels: int = 80, total_power: float = 20.0,
                 gain_low: float = 0.5, gain_high: float = 2.5, regret: bool = False):
        self.rng, self.n, self.p = rng, num_channels, total_power
        self.gain_low, self.gain_high = gain_low, gain_high
        self.loop = MSRLoop(num_channels, total_power, regret=regret)
        self.obs_dim, self.action_dim = num_channels + 1, num_channels

    def _gains(self) -> np.ndarray:
        return self.rng.uniform(self.gain_low, self.gain_high, self.n)

    def reset(self) -> np.ndarray:
        return self.loop.reset(self._gains())

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        return self.loop.step(action, self._gains())

    def optimum(self) -> float:
        floors = np.sort(1.0 / np.asarray(self.loop.gains))
        level = (self.p + np.cumsum(floors)) / np.arange(1, self.n + 1)
        k = int(np.sum(level > floors))
        powers = np.maximum(level[k - 1] - 1.0 / np.asarray(self.loop.gains), 0.0)
        return msr_rate_loop(powers, self.loop.gains, 1.0)


class VectorEnv:
    """N environments stepped one after another in Python, auto-reset on termination. Returns
    (next obs [N, obs_dim], reward [N], terminated [N], final obs [N, obs_dim], optimum [N])."""

    def __init__(self, make, num_envs: int, seed: int):
        self.envs = [make(np.random.default_rng([seed, i])) for i in range(num_envs)]

    def reset(self) -> np.ndarray:
        return np.stack([e.reset() for e in self.envs])

    def step(self, actions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        out_obs, final, rewards, terms, optima = [], [], [], [], []
        for env, action in zip(self.envs, actions):
            optima.append(env.optimum())
            obs, reward, terminated = env.step(action)
            final.append(obs)
            if terminated:
                obs = env.reset()
            out_obs.append(obs)
            rewards.append(reward)
            terms.append(terminated)
        return (np.stack(out_obs), np.asarray(rewards, np.float32), np.asarray(terms), np.stack(final),
                np.asarray(optima))
