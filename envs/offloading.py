"""CO: computation offloading to one edge server (DiffSG "CO", seed 002; spec: shared/specs/problems.md).

Each step is one problem instance with N terminals (default 3). Terminal i has a task of s_i bits needing
c_i = 3000 s_i CPU cycles, a local CPU of f_loc,i Hz, a latency weight a_i ~ U(0, 1) (energy weight b_i = 1 - a_i)
and a channel power gain h_i ~ U(0, 1). It either computes locally (d_i = 0) or offloads (d_i = 1) and then gets
the share f_i of the server CPU F, with sum of shares over offloaded terminals = 1. With
    r_i = B log2(1 + P_t h_i^2 / (N0 + sum_j P_t h_j^2))                     (uplink rate, bit/s; the sum runs
                                                                            over all terminals, as in the spec)
    x1_i = a_i c_i / f_loc,i + b_i kappa f_loc,i^2 c_i                       (local cost)
    x2_i = (a_i + b_i P_t) s_i / r_i                                         (upload latency + energy)
    x3_i = (a_i + b_i P_I) c_i / F                                           (server latency + energy at f_i = 1)
the cost is  sum_i (1 - d_i) x1_i + d_i (x2_i + x3_i / f_i)  (minimised).

Exact solver (`solve`): enumerate the 2^N decisions; for a fixed offloaded set S the optimal shares are
f_i = sqrt(x3_i) / sum_S sqrt(x3_j) (Cauchy-Schwarz), giving the server term (sum_S sqrt(x3_i))^2. It minimises the
cost alone and ignores the tolerable delay theta = `max_delay` (1 s); `solve(..., delay_limit=True)` /
`solve_within_delay` is the exact optimum under every completion time <= theta (lower bounds on the shares, closed
form), falling back to the unconstrained optimum when no decision meets theta. Grid solver (`solve_grid`, the
reference's): shares on a 0.02 grid, preferring solutions whose every delay is below theta. With the default
constants theta binds often (a local 2.5e5-bit task needs 1.5 s at 5e8 Hz), so the three solvers differ.

As an environment: observation = [x1_1, x2_1, x3_1, ..., x1_N, x2_N, x3_N] (the 3N features the DiffSG model is
conditioned on, unscaled), action a in Box(-1, 1, [2N]): d_i = 1 iff a_i > 0, and the shares are
f = |a_{N+i}| d_i / sum_j |a_{N+j}| d_j (uniform over the offloaded set if that sum is 0). Reward = -cost.
Episodes are `max_steps_in_episode` i.i.d. instances (see `envs.problem.ProblemEnvironment`).
"""

from __future__ import annotations

import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.channels import shannon_rate
from envs.environment import Box, is_concrete, require_episode_steps, require_scalars
from envs.problem import ProblemEnvironment

__all__ = ["Offloading", "COParams", "COState", "co_features", "co_cost", "co_delays"]


@struct.dataclass
class COParams:
    """CO constants (SI units) and instance distribution; see the module docstring.

    Attributes:
        server_cpu: F in Hz. kappa: effective switched capacitance. tx_power: P_t in W. idle_power: P_I in W.
        bandwidth: B in Hz. noise: N0 in W. max_delay: theta in s (the grid solver's feasibility preference and
            `solve(delay_limit=True)`'s constraint; the default `solve` ignores it).
        size_mean, size_std, size_max: task size s ~ N(mean, std) truncated to (0, size_max), bits (rounded).
        cpu_mean, cpu_std, cpu_max: local CPU f_loc ~ N(mean, std) truncated to (0, cpu_max), Hz (rounded).
        cycles_per_bit: c = cycles_per_bit * s.
        num_terminals: N (static). max_steps_in_episode: instances per episode.
    """

    server_cpu: Any = 2.5e9
    kappa: Any = 1e-28
    tx_power: Any = 0.3
    idle_power: Any = 0.1
    bandwidth: Any = 1e6
    noise: Any = 7.96159e-13
    max_delay: Any = 1.0
    size_mean: Any = 2.5e5
    size_std: Any = 5e4
    size_max: Any = 5e5
    cpu_mean: Any = 5e8
    cpu_std: Any = 2e8
    cpu_max: Any = 1e9
    cycles_per_bit: Any = 3000.0
    max_steps_in_episode: Any = 1
    num_terminals: int = struct.field(pytree_node=False, default=3)


@struct.dataclass
class COState:
    size: jax.Array  # [N] task sizes s_i (bits)
    cpu: jax.Array  # [N] local CPU f_loc,i (Hz)
    weight: jax.Array  # [N] latency weights a_i (b_i = 1 - a_i)
    gain: jax.Array  # [N] channel power gains h_i
    time: jax.Array


def _truncated(key: jax.Array, n: int, mean: Any, std: Any, upper: Any) -> jax.Array:
    """N(mean, std) truncated to (0, upper), rounded to integers (float32 [n])."""
    mean, std = jnp.asarray(mean, jnp.float32), jnp.asarray(std, jnp.float32)
    z = jax.random.truncated_normal(key, -mean / std, (upper - mean) / std, (n,), jnp.float32)
    return jnp.clip(jnp.round(mean + std * z), 1.0, upper - 1.0)


def co_rates(state: COState, params: COParams) -> jax.Array:
    """Uplink rates r_i in bit/s, [N]."""
    rx = params.tx_power * state.gain**2
    return shannon_rate(rx / (params.noise + jnp.sum(rx)), params.bandwidth)  # log1p: weak terminals have SINR << 1


def co_features(state: COState, params: COParams) -> jax.Array:
    """(x1, x2, x3) per terminal, [N, 3]; see the module docstring."""
    a, b = state.weight, 1.0 - state.weight
    cycles = params.cycles_per_bit * state.size
    x1 = a * cycles / state.cpu + b * params.kappa * state.cpu**2 * cycles
    x2 = (a + b * params.tx_power) * state.size / co_rates(state, params)
    x3 = (a + b * params.idle_power) * cycles / params.server_cpu
    return jnp.stack([x1, x2, x3], axis=-1)


def co_cost(features: jax.Array, offload: jax.Array, shares: jax.Array) -> jax.Array:
    """sum_i (1 - d_i) x1_i + d_i (x2_i + x3_i / f_i). features [..., N, 3], offload/shares [..., N] -> [...]."""
    x1, x2, x3 = features[..., 0], features[..., 1], features[..., 2]
    remote = x2 + x3 / jnp.where(offload > 0, shares, 1.0)
    return jnp.sum(jnp.where(offload > 0, remote, x1), axis=-1)


def co_delays(state: COState, params: COParams, offload: jax.Array, shares: jax.Array) -> jax.Array:
    """Completion time per terminal in s, [N]: c/f_loc locally, s/r + c/(F f) when offloaded."""
    cycles = params.cycles_per_bit * state.size
    remote = state.size / co_rates(state, params) + cycles / (params.server_cpu * jnp.where(offload > 0, shares, 1.0))
    return jnp.where(offload > 0, remote, cycles / state.cpu)


def _decisions(n: int) -> np.ndarray:
    return np.array(list(itertools.product([0.0, 1.0], repeat=n)), np.float32)  # [2^N, N]


class Offloading(ProblemEnvironment):
    """Computation offloading; see the module docstring."""

    params_type = COParams
    reference_policy = "exact"

    @property
    def name(self) -> str:
        return "CO"

    def sample_instance(self, key: jax.Array, params: COParams) -> COState:
        n = params.num_terminals
        k_s, k_f, k_a, k_h = jax.random.split(key, 4)
        return COState(
            size=_truncated(k_s, n, params.size_mean, params.size_std, params.size_max),
            cpu=_truncated(k_f, n, params.cpu_mean, params.cpu_std, params.cpu_max),
            weight=jax.random.uniform(k_a, (n,)),
            gain=jax.random.uniform(k_h, (n,)),
            time=jnp.int32(0),
        )

    def get_obs(self, state: COState, params: COParams) -> jax.Array:
        return co_features(state, params).reshape(-1)

    def action_to_decision(self, action: jax.Array, params: COParams) -> tuple[jax.Array, jax.Array]:
        """Box action [2N] -> (offload d [N] in {0, 1}, shares f [N] summing to 1 over offloaded terminals)."""
        n = params.num_terminals
        offload = (action[:n] > 0).astype(jnp.float32)
        weight = jnp.abs(action[n:]) * offload
        total = jnp.sum(weight)
        uniform = offload / jnp.maximum(jnp.sum(offload), 1.0)
        shares = jnp.where(total == 0, uniform, weight / jnp.where(total == 0, 1.0, total))
        return offload, shares

    def evaluate(self, state: COState, action: jax.Array, params: COParams):
        offload, shares = self.action_to_decision(action, params)
        cost = co_cost(co_features(state, params), offload, shares)
        return -cost, {"cost": cost, "offload": offload, "shares": shares}

    # --- exact and grid solvers --------------------------------------------------------------------------------
    def solve(self, state: COState, params: COParams, delay_limit: bool = False) -> tuple[jax.Array, jax.Array]:
        """Exact optimum: (y* = [d* (N), f* (N)], minimal cost). Enumerates the 2^N decisions.

        delay_limit=False (default; what `optimal_value` and the DiffSG exceed ratios use): the cost alone, the
        tolerable delay theta = `max_delay` is ignored. delay_limit=True: the grid solver's rule made exact, the
        cheapest solution whose every completion time is <= theta if one exists, else the unconstrained optimum
        (`solve_within_delay`)."""
        if delay_limit:
            return self.solve_within_delay(state, params)
        feats = co_features(state, params)
        d = jnp.asarray(_decisions(params.num_terminals))  # [2^N, N]
        root = jnp.sqrt(feats[:, 2])
        shares = d * root / jnp.maximum(jnp.sum(d * root, axis=-1, keepdims=True), 1e-30)
        costs = co_cost(feats[None], d, shares)
        best = jnp.argmin(costs)
        return jnp.concatenate([d[best], shares[best]]), costs[best]

    def solve_within_delay(self, state: COState, params: COParams) -> tuple[jax.Array, jax.Array]:
        """Exact optimum under the delay limit: every completion time <= theta (`max_delay`, s); if no decision
        can meet it, the unconstrained optimum (the grid solver's fallback). Returns (y = [d, f], cost).

        For an offloaded set S, terminal i meets theta iff s_i / r_i < theta and f_i >= l_i =
        c_i / (F (theta - s_i / r_i)); local terminals iff c_i / f_loc,i <= theta. The shares then solve
        min sum_S x3_i / f_i s.t. sum_S f_i = 1, f_i >= l_i (convex), whose KKT point is f_i = max(l_i, t sqrt(x3_i)),
        t the root of g(t) = sum_S max(l_i, t sqrt(x3_i)) = 1. g is the maximum of the lines obtained by freeing
        the k smallest breakpoints l_i / sqrt(x3_i) (k = 1..|S|), so t = the smallest of those lines' roots: exact,
        no iteration. Feasible iff sum_S l_i <= 1."""
        n = params.num_terminals
        feats = co_features(state, params)
        d = jnp.asarray(_decisions(n))  # [2^N, N]
        cycles = params.cycles_per_bit * state.size
        upload = state.size / co_rates(state, params)
        slack = params.max_delay - upload
        lower = jnp.where(slack > 0, cycles / (params.server_cpu * jnp.maximum(slack, 1e-30)), jnp.inf)  # [N]
        local_ok = cycles / state.cpu <= params.max_delay
        root = jnp.sqrt(feats[:, 2])

        def shares_for(dec: jax.Array) -> tuple[jax.Array, jax.Array]:
            on = dec > 0
            low = jnp.where(on, lower, 0.0)
            r = jnp.where(on, root, 0.0)
            breaks = jnp.where(on, low / jnp.where(on, r, 1.0), jnp.inf)
            order = jnp.argsort(breaks)
            r_sorted, l_sorted = r[order], low[order]
            freed = jnp.cumsum(r_sorted)  # sqrt(x3) summed over the k freed terminals
            clamped = jnp.sum(l_sorted) - jnp.cumsum(l_sorted)  # lower bounds of the others
            roots = jnp.where((freed > 0) & jnp.isfinite(clamped), (1.0 - clamped) / jnp.maximum(freed, 1e-30), jnp.inf)
            t = jnp.min(roots)
            f = jnp.where(on, jnp.maximum(low, t * r), 0.0)
            ok = jnp.all(jnp.where(on, jnp.isfinite(lower), local_ok)) & (jnp.sum(low) <= 1.0)
            return f / jnp.maximum(jnp.sum(f), 1e-30), ok

        shares, feasible = jax.vmap(shares_for)(d)
        costs = co_cost(feats[None], d, shares)
        best = jnp.argmin(jnp.where(feasible, costs, jnp.inf))
        y_free, cost_free = self.solve(state, params)
        any_ok = jnp.any(feasible)
        y = jnp.where(any_ok, jnp.concatenate([d[best], shares[best]]), y_free)
        return y, jnp.where(any_ok, costs[best], cost_free)

    def solve_grid(self, state: COState, params: COParams, step: float = 0.02) -> tuple[jax.Array, jax.Array]:
        """The reference's ground truth: shares on a `step` grid (d_i = 1 iff f_i > 0, plus all-local), the
        cheapest solution with every delay < max_delay if one exists, else the cheapest. Returns (y, cost)."""
        n = params.num_terminals
        units = int(round(1.0 / step))
        grid = np.array([c for c in itertools.product(range(units + 1), repeat=n) if sum(c) == units], np.float32)
        shares = np.concatenate([np.zeros((1, n), np.float32), grid / units])  # first row: all local
        shares = jnp.asarray(shares)
        offload = (shares > 0).astype(jnp.float32)
        costs = co_cost(co_features(state, params)[None], offload, shares)
        delays = jax.vmap(lambda d, f: co_delays(state, params, d, f))(offload, shares)
        feasible = jnp.all(delays < params.max_delay, axis=-1)
        best = jnp.argmin(jnp.where(jnp.any(feasible), jnp.where(feasible, costs, jnp.inf), costs))
        return jnp.concatenate([offload[best], shares[best]]), costs[best]

    def objective(self, state: COState, y: jax.Array, params: COParams) -> jax.Array:
        """Cost of a solution y = [d, f] (minimised)."""
        n = params.num_terminals
        return co_cost(co_features(state, params), y[:n], y[n:])

    def problem_vector(self, state: COState, params: COParams) -> jax.Array:
        """The instance x the generative optimizer is conditioned on: the 3N features."""
        return self.get_obs(state, params)

    def optimal_value(self, state: COState, params: COParams) -> jax.Array:
        """Optimal reward (= -minimal cost)."""
        return -self.solve(state, params)[1]

    def optimal_action(self, key: jax.Array, state: COState, params: COParams) -> jax.Array:
        """A Box action that maps to the exact optimum."""
        return self._to_action(self.solve(state, params)[0], params)

    def _to_action(self, y: jax.Array, params: COParams) -> jax.Array:
        """The Box action of a solution y = [d, f]: a_i = 2 d_i - 1 (offload iff > 0), then the shares."""
        n = params.num_terminals
        return jnp.concatenate([2.0 * y[:n] - 1.0, y[n:]])

    def policies(self) -> dict:
        return {
            **super().policies(),
            "all-local": lambda key, obs, state, params: -jnp.ones(2 * params.num_terminals),
            "exact": lambda key, obs, state, params: self.optimal_action(key, state, params),
            "exact-within-delay": lambda key, obs, state, params: self._to_action(
                self.solve_within_delay(state, params)[0], params),
        }

    # --- spaces and validation ---------------------------------------------------------------------------------
    def action_space(self, params: COParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box(-1.0, 1.0, (2 * params.num_terminals,))

    def observation_space(self, params: COParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box(0.0, jnp.inf, (3 * params.num_terminals,))

    def validate_params(self, params: COParams) -> COParams:
        n = params.num_terminals
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 10:
            raise ValueError(f"CO: num_terminals must be an integer in [1, 10] (2^N decisions), got {n!r}")
        if not is_concrete(params):
            return params
        positive = ("server_cpu", "kappa", "tx_power", "idle_power", "bandwidth", "noise", "max_delay", "size_mean",
                    "size_std", "size_max", "cpu_mean", "cpu_std", "cpu_max", "cycles_per_bit")
        require_scalars("CO", params, positive)
        for mean, upper in (("size_mean", "size_max"), ("cpu_mean", "cpu_max")):
            if not float(getattr(params, mean)) < float(getattr(params, upper)):
                raise ValueError(f"CO: {mean} must be below {upper}")
        require_episode_steps("CO", params)
        return params
