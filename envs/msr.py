"""MSR: multi-channel sum-rate power allocation (DiffSG "MSR", seed 002; GDMOPT power-allocation example).

Each step is one problem instance: N parallel channels with power gains g_i drawn i.i.d. from
Uniform(gain_low_i, gain_high_i) and noise powers n_i (W); the agent splits a total power budget P (W):

    maximise  R(p) = sum_i log2(1 + g_i p_i / n_i)   [bit/s/Hz]   s.t.  p_i >= 0,  sum_i p_i = P.

Action -> allocation (documented mapping, as in GDMOPT): the action a lives in Box(-1, 1, [N]); the powers are
p = P |a| / sum_j |a_j|, which always meets the budget with equality. The all-zero action (sum |a| = 0) maps to
the uniform allocation p = P/N. Every feasible allocation p is reachable (a = p / max_j p_j, or any positive
multiple), in particular the water-filling optimum, which `optimal_action` returns scaled to use the Box's full
range (largest entry 1), so that action noise in Box units means the same for every budget and channel count.

Observation: [g_1/n_1, ..., g_N/n_N, P], shape [N + 1] (the normalised gains and the budget, i.e. DiffSG's
problem vector x; including P lets one policy serve a vmapped sweep over budgets).

Reward modes (`EnvParams.reward_mode`, static): "rate" = R(p); "regret" = R(p) - R(p*) (<= 0, 0 is optimal;
the GDMOPT convention; `optimal_value` stays R(p*), and the training loop's `optimum_fraction` is
sum R(p) / sum R(p*) in both modes). An episode is `max_steps_in_episode` independent instances and ends with
`terminated=True`; instances are i.i.d. (see `envs.problem.ProblemEnvironment`).

Exact reference: `water_filling` (closed form via sorting, jittable, vmappable), `optimal_value`,
`optimal_action`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.environment import Box, is_concrete, require_episode_steps
from envs.problem import ProblemEnvironment

__all__ = ["MSR", "MSRParams", "MSRState", "water_filling", "sum_rate", "action_to_power"]


@struct.dataclass
class MSRParams:
    """MSR parameters. Array-valued fields broadcast to [num_channels].

    Attributes:
        total_power: budget P in W, > 0.
        noise_power: noise power n_i in W, > 0, scalar or [N].
        gain_low, gain_high: channel power gains g_i ~ Uniform(gain_low_i, gain_high_i), 0 <= low <= high.
        max_steps_in_episode: instances per episode, >= 1.
        num_channels: N >= 1 (static: changes shapes).
        reward_mode: "rate" or "regret" (static).
    """

    total_power: Any = 10.0
    noise_power: Any = 1.0
    gain_low: Any = 0.5
    gain_high: Any = 2.5
    max_steps_in_episode: Any = 1
    num_channels: int = struct.field(pytree_node=False, default=3)
    reward_mode: str = struct.field(pytree_node=False, default="rate")


@struct.dataclass
class MSRState:
    gains: jax.Array  # [N] linear power gains g_i
    time: jax.Array  # int32 step within the episode


REWARD_MODES = ("rate", "regret")


def sum_rate(powers: jax.Array, gains: jax.Array, noise: jax.Array | float = 1.0) -> jax.Array:
    """R = sum_i log2(1 + g_i p_i / n_i) in bit/s/Hz. powers, gains: [..., N] -> [...]."""
    return jnp.sum(jnp.log2(1.0 + gains * powers / noise), axis=-1)


def water_filling(gains: jax.Array, noise: jax.Array | float, total_power: jax.Array | float) -> jax.Array:
    """Exact maximiser of sum_i log2(1 + g_i p_i / n_i) s.t. p >= 0, sum p = P.

    p_i = max(mu - n_i/g_i, 0) with the water level mu set by sum_i p_i = P. Sorting the floors
    c_(1) <= ... <= c_(N), the level with k active channels is mu_k = (P + sum_{i<=k} c_(i)) / k and the
    number of active channels is the largest k with mu_k > c_(k); no iteration, so it is exact and jittable.

    Args:
        gains: [..., N] positive power gains.
        noise: noise powers (W), broadcastable to gains.
        total_power: P (W), shape [...] (or scalar), > 0.
    Returns:
        powers p* [..., N] in W, summing to P.
    """
    gains = jnp.asarray(gains, jnp.float32)
    floors = jnp.broadcast_to(jnp.asarray(noise, jnp.float32), gains.shape) / gains
    total_power = jnp.asarray(total_power, jnp.float32)
    sorted_floors = jnp.sort(floors, axis=-1)
    k = jnp.arange(1, gains.shape[-1] + 1, dtype=jnp.float32)
    levels = (total_power[..., None] + jnp.cumsum(sorted_floors, axis=-1)) / k
    num_active = jnp.sum(levels > sorted_floors, axis=-1, keepdims=True)
    mu = jnp.take_along_axis(levels, num_active - 1, axis=-1)
    return jnp.maximum(mu - floors, 0.0)


def action_to_power(action: jax.Array, total_power: jax.Array | float) -> jax.Array:
    """Map an action a in [-1, 1]^N to powers p = P |a| / sum |a| (uniform P/N if a = 0). [..., N] -> [..., N]."""
    magnitude = jnp.abs(action)
    total = jnp.sum(magnitude, axis=-1, keepdims=True)
    n = action.shape[-1]
    # `total == 0` (not `total > 0`) so that a NaN action propagates to a NaN reward instead of being hidden.
    share = jnp.where(total == 0, 1.0 / n, magnitude / jnp.where(total == 0, 1.0, total))
    return jnp.asarray(total_power, jnp.float32)[..., None] * share


class MSR(ProblemEnvironment):
    """Multi-channel sum-rate power allocation; see the module docstring."""

    params_type = MSRParams

    @property
    def name(self) -> str:
        return "MSR"

    def _draw_gains(self, key: jax.Array, params: MSRParams) -> jax.Array:
        u = jax.random.uniform(key, (params.num_channels,), jnp.float32)
        low = jnp.asarray(params.gain_low, jnp.float32)
        high = jnp.asarray(params.gain_high, jnp.float32)
        return low + (high - low) * u

    def get_obs(self, state: MSRState, params: MSRParams) -> jax.Array:
        normalised = state.gains / jnp.asarray(params.noise_power, jnp.float32)
        budget = jnp.asarray(params.total_power, jnp.float32)[None]
        return jnp.concatenate([normalised, budget])

    def sample_instance(self, key: jax.Array, params: MSRParams) -> MSRState:
        """One problem instance (fresh gains), as at an episode start."""
        return MSRState(gains=self._draw_gains(key, params), time=jnp.int32(0))

    def evaluate(self, state: MSRState, action: jax.Array, params: MSRParams):
        powers = action_to_power(action, params.total_power)
        rate = sum_rate(powers, state.gains, params.noise_power)
        reward = rate - self.optimal_value(state, params) if params.reward_mode == "regret" else rate
        return reward, {"sum_rate": rate, "powers": powers}

    # --- exact reference ---------------------------------------------------------------------------------
    def optimal_powers(self, state: MSRState, params: MSRParams) -> jax.Array:
        """Water-filling powers p* [N] in W for the current instance."""
        return water_filling(state.gains, params.noise_power, params.total_power)

    def optimal_value(self, state: MSRState, params: MSRParams) -> jax.Array:
        """Optimal sum rate R(p*) in bit/s/Hz for the current instance (scalar)."""
        return sum_rate(self.optimal_powers(state, params), state.gains, params.noise_power)

    def solve(self, state: MSRState, params: MSRParams) -> tuple[jax.Array, jax.Array]:
        """Exact optimum (y* = water-filling powers [N] in W, sum rate)."""
        powers = self.optimal_powers(state, params)
        return powers, sum_rate(powers, state.gains, params.noise_power)

    def objective(self, state: MSRState, y: jax.Array, params: MSRParams) -> jax.Array:
        """Sum rate of powers y [N] (used as given; maximised)."""
        return sum_rate(y, state.gains, params.noise_power)

    def problem_vector(self, state: MSRState, params: MSRParams) -> jax.Array:
        """The instance x: normalised gains and the budget, [N + 1] (= the observation)."""
        return self.get_obs(state, params)

    def optimal_action(self, key: jax.Array, state: MSRState, params: MSRParams) -> jax.Array:
        """An action in the Box that maps to the water-filling allocation: a = p* / max_i p*_i in [0, 1]^N.

        Scaled to the Box's full range rather than a = p*/P (whose entries are ~1/N): with N = 80 channels a
        noise of 0.01 in Box units would otherwise be as large as the optimal action itself."""
        del key
        p = self.optimal_powers(state, params)
        return p / jnp.max(p)

    reference_policy = "water-filling"

    def policies(self) -> dict:
        """Baselines, each an action in the Box (powers p = P |a| / sum |a|):
        "random" (uniform in the Box), the textbook heuristics "equal-power" (p_i = P/N), "best-channel" (all of
        P on the largest g_i / n_i) and "gain-proportional" (p_i proportional to g_i / n_i), and "water-filling"
        (the exact optimum)."""
        def snr(state: MSRState, params: MSRParams) -> jax.Array:
            return state.gains / jnp.asarray(params.noise_power, jnp.float32)

        return {
            **super().policies(),
            "equal-power": lambda key, obs, state, params: jnp.ones((params.num_channels,), jnp.float32),
            "best-channel": lambda key, obs, state, params: jax.nn.one_hot(
                jnp.argmax(snr(state, params)), params.num_channels, dtype=jnp.float32),
            "gain-proportional": lambda key, obs, state, params: snr(state, params) / jnp.max(snr(state, params)),
            "water-filling": lambda key, obs, state, params: self.optimal_action(key, state, params),
        }

    # --- spaces and validation ------------------------------------------------------------------------------
    def action_space(self, params: MSRParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box(-1.0, 1.0, (params.num_channels,))

    def observation_space(self, params: MSRParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box(0.0, jnp.inf, (params.num_channels + 1,))

    def validate_params(self, params: MSRParams) -> MSRParams:
        n = params.num_channels
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"MSR: num_channels must be an integer >= 1, got {n!r}")
        if params.reward_mode not in REWARD_MODES:
            raise ValueError(f"MSR: reward_mode must be one of {REWARD_MODES}, got {params.reward_mode!r}")
        if not is_concrete(params):
            return params
        for field in ("total_power", "noise_power", "gain_low", "gain_high", "max_steps_in_episode"):
            value = np.asarray(getattr(params, field), dtype=np.float64)
            if not np.all(np.isfinite(value)):
                raise ValueError(f"MSR: {field} must be finite, got {value}")
            if value.ndim > 1 or (value.ndim == 1 and value.shape[0] not in (1, n)):
                raise ValueError(
                    f"MSR: {field} must be a scalar or have shape ({n},) (num_channels={n}), got shape {value.shape}"
                )
        if np.any(np.asarray(params.total_power) <= 0) or np.ndim(params.total_power) != 0:
            raise ValueError(f"MSR: total_power must be a scalar > 0 (W), got {params.total_power}")
        if np.any(np.asarray(params.noise_power) <= 0):
            raise ValueError(f"MSR: noise_power must be > 0 (W), got {params.noise_power}")
        low, high = np.asarray(params.gain_low), np.asarray(params.gain_high)
        if np.any(low < 0) or np.any(high < low):
            raise ValueError(f"MSR: gains need 0 <= gain_low <= gain_high, got gain_low={low}, gain_high={high}")
        if np.any(high <= 0):
            raise ValueError(f"MSR: gain_high must be > 0, got {high}")
        require_episode_steps("MSR", params)
        return params
