"""Gym-style NumPy environments for the PyTorch reference: the loop implementations of tests/envs/reference_numpy.py
(checked step by step against `envs` by the test suite) plus their exogenous randomness drawn with a NumPy
Generator, and a Python-loop vector of them (Tianshou's `DummyVectorEnv` pattern). Same dynamics and rewards as
`envs.make("aigc")` and `envs.make("msr-80")`; different random streams."""

from __future__ import annotations

import math

import numpy as np

from tests.envs.reference_numpy import AIGCLoop, MSRLoop, msr_rate_loop, msr_step_vectorized


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


class CartPoleVec:
    """N CartPole-v1 environments as NumPy arrays (gymnasium's vectorised-NumPy pattern): the gymnax / gym
    dynamics (Euler, tau = 0.02 s, force 10 N, pole half-length 0.5 m), reward 1 per step, terminated when
    |x| > 2.4 m or |theta| > 12 deg, truncated at 500 steps, auto-reset from U(-0.05, 0.05)^4.

    `step(actions [N] in {0, 1})` -> (obs [N, 4] after auto-reset, reward [N], terminated [N], truncated [N],
    final_obs [N, 4] before reset, optimum [N] = NaN: CartPole has none)."""

    obs_dim, num_actions, discrete = 4, 2, True
    gravity, masscart, masspole, length, force_mag, tau = 9.8, 1.0, 0.1, 0.5, 10.0, 0.02
    theta_threshold, x_threshold, max_steps = 12 * 2 * math.pi / 360, 2.4, 500

    def __init__(self, num_envs: int, seed: int):
        self.n, self.rng = num_envs, np.random.default_rng(seed)

    def reset(self) -> np.ndarray:
        self.state = self.rng.uniform(-0.05, 0.05, (self.n, 4))
        self.time = np.zeros(self.n, np.int64)
        return self.state.astype(np.float32)

    def step(self, actions: np.ndarray):
        x, x_dot, theta, theta_dot = self.state.T
        total_mass = self.masscart + self.masspole
        polemass_length = self.masspole * self.length
        force = np.where(np.asarray(actions) == 1, self.force_mag, -self.force_mag)
        cos, sin = np.cos(theta), np.sin(theta)
        temp = (force + polemass_length * theta_dot ** 2 * sin) / total_mass
        theta_acc = (self.gravity * sin - cos * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * cos ** 2 / total_mass))
        x_acc = temp - polemass_length * theta_acc * cos / total_mass
        self.state = np.stack([x + self.tau * x_dot, x_dot + self.tau * x_acc, theta + self.tau * theta_dot,
                               theta_dot + self.tau * theta_acc], axis=1)
        self.time += 1
        terminated = (np.abs(self.state[:, 0]) > self.x_threshold) | (np.abs(self.state[:, 2]) > self.theta_threshold)
        truncated = ~terminated & (self.time >= self.max_steps)
        final = self.state.astype(np.float32)
        done = terminated | truncated
        if done.any():
            self.state[done] = self.rng.uniform(-0.05, 0.05, (int(done.sum()), 4))
            self.time[done] = 0
        return (self.state.astype(np.float32), np.ones(self.n, np.float32), terminated, truncated, final,
                np.full(self.n, np.nan))


class MSRVec:
    """N one-shot MSR instances as NumPy arrays (msr-80 by default; the MSR presets through the arguments): gains
    ~ U(gain_low, gain_high) [N, channels], unit noise; Box(-1, 1, [channels]) actions, powers P |a| / sum |a|;
    reward = the sum rate (bit/s/Hz) or, with `regret`, minus the water-filling optimum; every step terminates and
    draws new gains. `step` returns what `CartPoleVec.step` does plus `optimum` [N] (bit/s/Hz)."""

    discrete = False

    def __init__(self, num_envs: int, seed: int, num_channels: int = 80, total_power: float = 20.0,
                 gain_low: float = 0.5, gain_high: float = 2.5, regret: bool = False):
        self.n, self.rng, self.channels, self.p = num_envs, np.random.default_rng(seed), num_channels, total_power
        self.gain_low, self.gain_high, self.regret = gain_low, gain_high, regret
        self.obs_dim, self.action_dim = num_channels + 1, num_channels

    def _obs(self) -> np.ndarray:
        return np.concatenate([self.gains, np.full((self.n, 1), self.p)], axis=1).astype(np.float32)

    def reset(self) -> np.ndarray:
        self.gains = self.rng.uniform(self.gain_low, self.gain_high, (self.n, self.channels))
        return self._obs()

    def optimum(self) -> np.ndarray:
        """Water-filling sum rate of the current instances [N] (sorted floors, vectorised)."""
        floors = np.sort(1.0 / self.gains, axis=1)
        level = (self.p + np.cumsum(floors, axis=1)) / np.arange(1, self.channels + 1)
        k = np.sum(level > floors, axis=1)
        mu = level[np.arange(self.n), k - 1]
        return np.log2(np.maximum(mu[:, None] * self.gains, 1.0)).sum(axis=1)

    def step(self, actions: np.ndarray):
        optimum = self.optimum()
        reward = msr_step_vectorized(self.gains, np.asarray(actions, np.float64), self.p)
        if self.regret:
            reward = reward - optimum
        final = self._obs()
        obs = self.reset()
        done = np.ones(self.n, bool)
        return obs, reward.astype(np.float32), done, ~done, final, optimum


class ICPowerVec:
    """N ic-power environments at once: `reset() -> (local [N, K, 6], global [N, K^2 + 2K])`,
    `step(powers [N, K]) -> (local, global, team reward [N])` (no episode ends: slots are i.i.d.)."""

    def __init__(self, rng: np.random.Generator, num_envs: int, num_links: int, p_max: float = 1.0,
                 noise: float = 1.0):
        self.rng, self.n, self.k, self.p_max, self.noise = rng, num_envs, num_links, p_max, noise

    def _observe(self) -> tuple[np.ndarray, np.ndarray]:
        snr = self.gains * self.p_max / self.noise
        direct = np.diagonal(snr, axis1=1, axis2=2)
        db = lambda x: 10.0 * np.log10(x)
        local = np.stack([db(direct) / 10, db(1 + snr.sum(2) - direct) / 10, db(1 + snr.sum(1) - direct) / 10,
                          self.last_rate / 5, self.last_power / self.p_max, np.ones_like(direct)], -1)
        glob = np.concatenate([(db(snr) / 10).reshape(self.n, -1), self.last_power / self.p_max,
                               np.ones((self.n, self.k))], -1)
        return local.astype(np.float32), glob.astype(np.float32)

    def reset(self) -> tuple[np.ndarray, np.ndarray]:
        self.gains = np.maximum(self.rng.exponential(size=(self.n, self.k, self.k)), 1e-6)
        self.last_power = np.zeros((self.n, self.k))
        self.last_rate = np.zeros((self.n, self.k))
        return self._observe()

    def step(self, powers: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        powers = np.clip(powers, 0.0, self.p_max)
        received = self.gains * powers[:, None, :]
        signal = np.diagonal(received, axis1=1, axis2=2)
        rates = np.log2(1 + signal / (received.sum(2) - signal + self.noise))
        self.last_power, self.last_rate = powers, rates
        self.gains = np.maximum(self.rng.exponential(size=(self.n, self.k, self.k)), 1e-6)
        local, glob = self._observe()
        return local, glob, rates.sum(1)
