"""NU: NOMA-UAV downlink sum rate (DiffSG "NU", seed 002; spec: shared/specs/problems.md).

One UAV at height H serves K = 3 ground terminals placed in K distinct random 200 m x 200 m quadrants of a
400 m x 400 m area (integer coordinates). Channel h_k = sqrt(rho0 / (H^2 + (X - x_k)^2 + (Y - y_k)^2)); downlink
NOMA decodes by channel strength: rank users by h descending, the user of rank r sees the powers of the users
ranked above it as interference,  SINR_r = p_r / (sum_{ranked above} p + sigma^2 / h_r^2),  and the powers are
ordered inversely to strength (weaker users get more; sum p = P). Objective: max sum_r log2(1 + SINR_r).
Constants are the reference's units (rho0 = 60, sigma^2 = 110, P = 18); the problem sits in the low-SNR regime
(sum rates of a few 1e-4), which is a property of the reference problem.

Exact power split. With n_r = sigma^2 / h_r^2 (ascending in r) and cumulative powers S_r = p_1 + ... + p_r, the
sum rate telescopes to  sum_{r<K} log2((S_r + n_r) / (S_r + n_{r+1})) + const,  each term increasing in S_r because
n_r < n_{r+1}; the ordering p_1 <= ... <= p_K caps S_r at r P / K, and equal powers reach every cap at once. So
p = P/K for every user is optimal at *every* UAV position, and the problem reduces to the position (the tests check
this by brute force over ordered splits). The reference's exhaustive search does not find this split: its
`feasible_solution()` keeps only strictly ordered powers (p_1 < p_2 < p_3, ties excluded) on a 0.1 grid of cell
midpoints, which excludes P/3, so every solution it stores is (5.85, 6.05, 6.1) mW at P = 18 mW ((9.85, 10.05, 10.1)
at 30 mW), the split that maximises S_1 and then S_2 on that grid. On the same position grid our equal powers give a
0.2-1.5% higher sum rate (about +0.75% on average at 18 mW, +0.46% at 30 mW); `tests/envs/test_noma_uav.py`
re-runs the reference's search. `solve` searches the position on the reference's 1 m grid inside the triangle
spanned by the terminals (bounding box for K != 3); `solve_continuous` refines that optimum by projected gradient
ascent.

Environment: observation = terminal positions / area side, [2K] in [0, 1]; action a in Box(-1, 1, [2 + K]):
X, Y = (a_0 + 1)/2 * side, (a_1 + 1)/2 * side; powers q = P |a_2:| / sum |a_2:| (uniform if 0), sorted ascending and
assigned from the strongest user to the weakest (always feasible). Reward = reward_scale * sum rate.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.environment import Box, is_concrete, require_episode_steps, require_scalars
from envs.problem import ProblemEnvironment

__all__ = ["NomaUav", "NUParams", "NUState", "nu_sum_rate"]


@struct.dataclass
class NUParams:
    """NU parameters (the reference's units; distances in m).

    Attributes:
        height: UAV height H (m). rho0: channel gain at 1 m. noise: sigma^2. total_power: P.
        reward_scale: multiplies the reward (sum rates are ~3e-4 with the defaults).
        max_steps_in_episode: instances per episode.
        side, num_terminals (K in [2, 4]), grid_step (solver's position grid, m): static (they set shapes).
    """

    height: Any = 150.0
    rho0: Any = 60.0
    noise: Any = 110.0
    total_power: Any = 18.0
    reward_scale: Any = 1.0
    max_steps_in_episode: Any = 1
    side: float = struct.field(pytree_node=False, default=400.0)
    num_terminals: int = struct.field(pytree_node=False, default=3)
    grid_step: float = struct.field(pytree_node=False, default=1.0)


@struct.dataclass
class NUState:
    positions: jax.Array  # [K, 2] terminal coordinates (m)
    time: jax.Array


def nu_sum_rate(uav: jax.Array, powers: jax.Array, positions: jax.Array, params: NUParams) -> jax.Array:
    """Sum rate with NOMA decoding by channel strength.

    Args:
        uav: [..., 2] UAV position (m). powers: [..., K] per user (index order). positions: [K, 2].
    Returns:
        [...] sum rate in bit/s/Hz.
    """
    d2 = jnp.sum((uav[..., None, :] - positions) ** 2, axis=-1)  # [..., K]
    n = params.noise * (params.height**2 + d2) / params.rho0  # sigma^2 / h^2
    order = jnp.argsort(n, axis=-1)  # strongest first
    n_sorted = jnp.take_along_axis(n, order, axis=-1)
    p_sorted = jnp.take_along_axis(jnp.broadcast_to(powers, n.shape), order, axis=-1)
    above = jnp.cumsum(p_sorted, axis=-1) - p_sorted
    return jnp.sum(jnp.log1p(p_sorted / (above + n_sorted)), axis=-1) / jnp.log(2.0)


def _sorted_small(values: list[jax.Array]) -> list[jax.Array]:
    """Ascending sort of K <= 4 same-shape arrays with a compare-exchange network (elementwise min/max fuse into
    one loop on CPU, unlike a general sort along a tiny axis, which dominated the grid search)."""
    v = list(values)
    pairs = {2: [(0, 1)], 3: [(0, 1), (1, 2), (0, 1)], 4: [(0, 1), (2, 3), (0, 2), (1, 3), (1, 2)]}[len(v)]
    for i, j in pairs:
        v[i], v[j] = jnp.minimum(v[i], v[j]), jnp.maximum(v[i], v[j])
    return v


def _equal_power_rate(uav: jax.Array, positions: jax.Array, params: NUParams) -> jax.Array:
    """Sum rate at equal powers P/K (the optimal split): [..., 2] -> [...]; only the noise terms are sorted."""
    k = positions.shape[0]
    noise = [
        params.noise * (params.height**2 + (uav[..., 0] - positions[i, 0]) ** 2 + (uav[..., 1] - positions[i, 1]) ** 2)
        / params.rho0
        for i in range(k)
    ]
    share = params.total_power / k
    # log1p: SINRs are ~1e-4 here, where log2(1 + x) would lose 3-4 significant digits in float32
    return sum(jnp.log1p(share / (r * share + n)) for r, n in enumerate(_sorted_small(noise))) / jnp.log(2.0)


def _in_region(points: jax.Array, positions: jax.Array) -> jax.Array:
    """Inside (or on) the triangle of 3 terminals; the bounding box of the terminals otherwise. [..., 2] -> [...]."""
    if positions.shape[0] != 3:
        lo, hi = positions.min(0), positions.max(0)
        return jnp.all((points >= lo) & (points <= hi), axis=-1)
    a, b, c = positions[0], positions[1], positions[2]

    def cross(o, u, v):
        return (u[0] - o[0]) * (v[..., 1] - o[1]) - (u[1] - o[1]) * (v[..., 0] - o[0])

    s1, s2, s3 = cross(a, b, points), cross(b, c, points), cross(c, a, points)
    return ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))


class NomaUav(ProblemEnvironment):
    """NOMA-UAV sum rate; see the module docstring."""

    params_type = NUParams
    reference_policy = "optimum"

    @property
    def name(self) -> str:
        return "NU"

    def sample_instance(self, key: jax.Array, params: NUParams) -> NUState:
        k = params.num_terminals
        k_q, k_xy = jax.random.split(key)
        quadrants = jax.random.permutation(k_q, 4)[:k]
        half = params.side / 2.0
        corner = jnp.stack([quadrants % 2, quadrants // 2], axis=-1).astype(jnp.float32) * half
        offset = jax.random.randint(k_xy, (k, 2), 0, int(half)).astype(jnp.float32)
        return NUState(positions=corner + offset, time=jnp.int32(0))

    def make_state(self, positions: Any, params: NUParams) -> NUState:
        """A user-given instance: terminal positions [K, 2] in m inside the area. Raises ValueError otherwise."""
        pos = np.asarray(positions, np.float64)
        if pos.shape != (params.num_terminals, 2):
            raise ValueError(f"NU: positions must have shape ({params.num_terminals}, 2), got {pos.shape}")
        if not np.all(np.isfinite(pos)) or pos.min() < 0 or pos.max() > params.side:
            raise ValueError(f"NU: positions must be finite and inside [0, {params.side}] m, got {pos.tolist()}")
        return NUState(positions=jnp.asarray(pos, jnp.float32), time=jnp.int32(0))

    def get_obs(self, state: NUState, params: NUParams) -> jax.Array:
        return (state.positions / params.side).reshape(-1)

    def action_to_decision(self, action: jax.Array, state: NUState, params: NUParams) -> tuple[jax.Array, jax.Array]:
        """Box action [2 + K] -> (UAV position [2] in m, powers [K] in user order, feasible by construction)."""
        uav = (jnp.clip(action[:2], -1.0, 1.0) + 1.0) / 2.0 * params.side
        magnitude = jnp.abs(action[2:])
        total = jnp.sum(magnitude)
        k = params.num_terminals
        q = jnp.where(total == 0, 1.0 / k, magnitude / jnp.where(total == 0, 1.0, total)) * params.total_power
        d2 = jnp.sum((uav - state.positions) ** 2, axis=-1)
        rank = jnp.argsort(jnp.argsort(d2))  # 0 = strongest (closest)
        return uav, jnp.sort(q)[rank]

    def evaluate(self, state: NUState, action: jax.Array, params: NUParams):
        uav, powers = self.action_to_decision(action, state, params)
        rate = nu_sum_rate(uav, powers, state.positions, params)
        return params.reward_scale * rate, {"sum_rate": rate, "uav": uav, "powers": powers}

    # --- solvers -----------------------------------------------------------------------------------------------------
    def _grid(self, params: NUParams, step: float) -> jax.Array:
        axis = jnp.arange(0.0, float(params.side) + 1e-6, step, dtype=jnp.float32)
        return jnp.stack(jnp.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)

    def solve(self, state: NUState, params: NUParams) -> tuple[jax.Array, jax.Array]:
        """The reference's ground truth, exact on its grid: (y* = [X, Y, p_1..p_K], sum rate)."""
        return self._solve_on_grid(state, params, params.grid_step)

    def _solve_on_grid(self, state: NUState, params: NUParams, step: float) -> tuple[jax.Array, jax.Array]:
        points = self._grid(params, step)
        rates = _equal_power_rate(points, state.positions, params)
        best = jnp.argmax(jnp.where(_in_region(points, state.positions), rates, -jnp.inf))
        powers = jnp.full((params.num_terminals,), params.total_power / params.num_terminals)
        return jnp.concatenate([points[best], powers]), rates[best]

    def solve_continuous(
        self, state: NUState, params: NUParams, steps: int = 200, coarse_step: float | None = None
    ) -> tuple[jax.Array, jax.Array]:
        """Grid search (at `coarse_step`, default the 1 m `grid_step`), then projected gradient ascent on the UAV
        position (step decaying from coarse_step to 1 mm, kept in the terminals' bounding box), keeping the best
        point seen. Returns (y, sum rate)."""
        step = params.grid_step if coarse_step is None else coarse_step
        y, rate = self._solve_on_grid(state, params, step)
        lo, hi = state.positions.min(0), state.positions.max(0)
        objective = lambda u: _equal_power_rate(u, state.positions, params)
        grad = jax.grad(objective)

        def body(carry, step_size):
            u, best_u, best = carry
            g = grad(u)
            u = jnp.clip(u + step_size * g / jnp.maximum(jnp.linalg.norm(g), 1e-30), lo, hi)
            value = objective(u)
            better = value > best
            return (u, jnp.where(better, u, best_u), jnp.where(better, value, best)), None

        sizes = jnp.geomspace(float(step), 1e-3, steps)
        (_, best_u, best), _ = jax.lax.scan(body, (y[:2], y[:2], rate), sizes)
        return jnp.concatenate([best_u, y[2:]]), best

    def objective(self, state: NUState, y: jax.Array, params: NUParams) -> jax.Array:
        """Sum rate of y = [X, Y, p_1..p_K] (maximised; the powers are used as given)."""
        return nu_sum_rate(y[:2], y[2:], state.positions, params)

    def problem_vector(self, state: NUState, params: NUParams) -> jax.Array:
        """The instance x the generative optimizer is conditioned on: terminal coordinates (m), [2K]."""
        return state.positions.reshape(-1)

    def optimal_value(self, state: NUState, params: NUParams) -> jax.Array:
        return params.reward_scale * self.solve(state, params)[1]

    def optimal_action(self, key: jax.Array, state: NUState, params: NUParams) -> jax.Array:
        """A Box action mapping to the (near-)optimum: an 8 m grid refined by gradient ascent (as good as the
        1 m grid in the tests, at 1/64 of the cost, so rollouts can afford it), equal powers."""
        y, _ = self.solve_continuous(state, params, coarse_step=8.0)
        return jnp.concatenate([2.0 * y[:2] / params.side - 1.0, jnp.ones(params.num_terminals)])

    def policies(self) -> dict:
        centroid = lambda key, obs, state, params: jnp.concatenate(
            [2.0 * state.positions.mean(0) / params.side - 1.0, jnp.ones(params.num_terminals)]
        )
        return {
            **super().policies(),
            "centroid": centroid,
            "optimum": lambda key, obs, state, params: self.optimal_action(key, state, params),
        }

    # --- spaces and validation ---------------------------------------------------------------------------------------
    def action_space(self, params: NUParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box(-1.0, 1.0, (2 + params.num_terminals,))

    def observation_space(self, params: NUParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box(0.0, 1.0, (2 * params.num_terminals,))

    def validate_params(self, params: NUParams) -> NUParams:
        k = params.num_terminals
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 2 <= k <= 4:
            raise ValueError(f"NU: num_terminals must be an integer in [2, 4] (one per quadrant), got {k!r}")
        if not float(params.grid_step) > 0:
            raise ValueError(f"NU: grid_step must be > 0 (m), got {params.grid_step!r}")
        if not is_concrete(params):
            return params
        if not (float(params.side) > 0 and float(params.side) % 2 == 0):
            raise ValueError(f"NU: side must be a positive even number of metres, got {params.side!r}")
        require_scalars("NU", params, ("height", "rho0", "noise", "total_power", "reward_scale"))
        if float(params.side) / float(params.grid_step) > 4000:
            raise ValueError(f"NU: side / grid_step must be <= 4000 grid points per axis, got {params.side}/{params.grid_step}")
        require_episode_steps("NU", params)
        return params
