"""AIGC service-provider selection (the D2SAC environment of the 001 survey; spec: shared/specs/aigc.md).

M = 20 AIGC service providers (ASPs) with capacities cap_i (resource units) and hidden quality curves
(ax_i, ay_i, bx_i, by_i). Tasks arrive as a Poisson process of rate `arrival_rate` (per time unit) on
[0, horizon) plus one task at time 0; each step is one arriving task of size t (uniform on
{size_low, size_low + size_step, ..., size_high}) that the agent assigns to a provider a (Discrete(M)):

- if t <= avail_a = cap_a - (sizes running on a): the task runs for D(t) = 60 (0.001 t^2 + 2.5 t - 14) time
  units and the reward is the quality u_a(t) = (by - ay)/(bx - ax) (t - ax) on [ax, bx], by - ay above bx,
  0 below ax;
- otherwise provider a crashes: reward -crash_penalty (1 + sum_j (1 - progress_j)) over the tasks j running on a,
  progress_j = (now - arrival_j) / D(t_j); all of them are killed and the new task is dropped.

Then the clock jumps to the next arrival (event-driven, no queue), every finished task (now >= arrival + D)
is released and the next size is revealed. The episode terminates after the last arrival before the horizon
(about 1 + Poisson(1000) steps with the defaults).

Fixed shapes: each provider has `max_tasks_per_provider` slots (default 9 = 900 // 100, enough because a task
only starts when it fits). `validate_params` rejects capacities that could need more slots; with
unvalidated traced params, a task that fits but finds no free slot is dropped and flagged in
`info["slot_overflow"]` (never silently overwrites a running task).

Arrival times: the continuous Poisson clock is kept as an integer part `now` (int32, the floored arrival
time of the spec) plus a float32 fraction, so floors are exact over the 1e6 horizon.

Observation (42 floats in [0, 1]): [cap_0/900, avail_0/cap_0, ..., cap_19/900, avail_19/cap_19,
t/size_high, D(t)/D(size_high)].

Heuristic policies (signature `policy(key, obs, state, params) -> action`): `random_policy`,
`round_robin_policy`, `crash_avoid_policy`, `prophet_policy` (reads the hidden qualities: an upper bound,
not an RL baseline).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.environment import Box, Discrete, Environment, is_concrete, require_episode_steps, require_scalars

__all__ = [
    "AIGC",
    "AIGCParams",
    "AIGCState",
    "REFERENCE_PROVIDERS",
    "sample_providers",
    "running_time",
    "quality",
    "random_policy",
    "round_robin_policy",
    "crash_avoid_policy",
    "prophet_policy",
    "POLICIES",
]

# Reference instance (shared/specs/aigc.md): columns ax, ay, bx, by, cap.
REFERENCE_PROVIDERS = np.array(
    [
        [10, 0.00, 210, 0.80, 400],
        [80, 0.45, 200, 0.60, 500],
        [40, 0.00, 170, 0.75, 500],
        [0, 0.15, 170, 0.60, 900],
        [30, 0.25, 160, 0.85, 600],
        [30, 0.45, 180, 0.50, 700],
        [90, 0.25, 160, 0.95, 700],
        [70, 0.40, 190, 0.85, 600],
        [40, 0.05, 200, 0.50, 700],
        [30, 0.00, 180, 0.80, 500],
        [70, 0.15, 190, 0.85, 800],
        [0, 0.15, 200, 0.80, 700],
        [40, 0.35, 170, 0.50, 500],
        [90, 0.20, 230, 0.85, 400],
        [40, 0.40, 200, 0.55, 600],
        [70, 0.25, 220, 0.95, 800],
        [90, 0.45, 180, 0.70, 800],
        [10, 0.45, 220, 0.75, 800],
        [80, 0.35, 160, 0.55, 500],
        [40, 0.40, 210, 0.55, 600],
    ],
    dtype=np.float32,
)
CAP_SCALE = 900.0  # observation normaliser for capacities (largest generator capacity)


def _column(j: int):
    return lambda: jnp.asarray(REFERENCE_PROVIDERS[:, j])


@struct.dataclass
class AIGCParams:
    """AIGC parameters. Provider arrays have shape [M].

    Attributes:
        ax, ay, bx, by: quality-curve coefficients (hidden from the agent), ax < bx.
        cap: capacities in resource units, > 0.
        arrival_rate: Poisson rate lambda per time unit, > 0.
        horizon: arrivals are generated on [0, horizon) time units, > 0.
        crash_penalty: the factor 2 of the crash reward, >= 0.
        max_steps_in_episode: time limit in steps (truncation), far above the ~1000 natural steps.
        size_low, size_high, size_step: task-size grid (static).
        max_tasks_per_provider: slots per provider (static).
    """

    ax: Any = struct.field(default_factory=_column(0))
    ay: Any = struct.field(default_factory=_column(1))
    bx: Any = struct.field(default_factory=_column(2))
    by: Any = struct.field(default_factory=_column(3))
    cap: Any = struct.field(default_factory=_column(4))
    arrival_rate: Any = 1e-3
    horizon: Any = 1e6
    crash_penalty: Any = 2.0
    max_steps_in_episode: Any = 100_000
    size_low: int = struct.field(pytree_node=False, default=100)
    size_high: int = struct.field(pytree_node=False, default=250)
    size_step: int = struct.field(pytree_node=False, default=10)
    max_tasks_per_provider: int = struct.field(pytree_node=False, default=9)


@struct.dataclass
class AIGCState:
    task_size: jax.Array  # [S, M] float32 resource units, 0 marks a free slot (slot-major: reductions over
    #                      slots are elementwise adds of provider vectors, which vectorise well on CPU)
    task_end: jax.Array  # [S, M] float32, arrival + D(size): the task is released once now >= task_end
    avail: jax.Array  # [M] float32, cap - sum of running sizes (cached: observation and policies read it)
    now: jax.Array  # int32, floored arrival time of the current task
    frac: jax.Array  # float32 in [0, 1), fractional part of the continuous arrival time
    size: jax.Array  # float32, size of the current task
    time: jax.Array  # int32, steps taken in this episode


def running_time(size: jax.Array) -> jax.Array:
    """D(t) = 60 (0.001 t^2 + 2.5 t - 14) time units (14760 for t = 100, 40410 for t = 250)."""
    size = jnp.asarray(size, jnp.float32)
    return 60.0 * (0.001 * size * size + 2.5 * size - 14.0)


def quality(size: jax.Array, ax: jax.Array, ay: jax.Array, bx: jax.Array, by: jax.Array) -> jax.Array:
    """u(t): 0 below ax, linear from 0 at ax to (by - ay) at bx, (by - ay) above bx. Broadcasts."""
    slope = (by - ay) / (bx - ax)
    ramp = slope * (size - ax)
    return jnp.where(size < ax, 0.0, jnp.where(size > bx, by - ay, ramp))


def sample_providers(key: jax.Array, num_providers: int = 20) -> dict[str, jax.Array]:
    """Random provider instance from the spec's generator: ax on {0,10,..,90}, ay on {0,.05,..,.45},
    bx on {150,..,240}, by on {.5,.55,..,.95}, cap on {400,500,..,900}. Returns a dict of [M] arrays."""
    k = jax.random.split(key, 5)
    m = (num_providers,)
    return {
        "ax": 10.0 * jax.random.randint(k[0], m, 0, 10).astype(jnp.float32),
        "ay": 0.05 * jax.random.randint(k[1], m, 0, 10).astype(jnp.float32),
        "bx": 150.0 + 10.0 * jax.random.randint(k[2], m, 0, 10).astype(jnp.float32),
        "by": 0.5 + 0.05 * jax.random.randint(k[3], m, 0, 10).astype(jnp.float32),
        "cap": 100.0 * jax.random.randint(k[4], m, 4, 10).astype(jnp.float32),
    }


class AIGC(Environment[AIGCState, AIGCParams]):
    """AIGC service-provider selection; see the module docstring."""

    params_type = AIGCParams

    @property
    def name(self) -> str:
        return "AIGC"

    # --- dynamics -------------------------------------------------------------------------------------------
    @staticmethod
    def _num_providers(params: AIGCParams) -> int:
        return int(jnp.shape(params.cap)[-1])

    @staticmethod
    def _size_from_uniform(u: jax.Array, params: AIGCParams) -> jax.Array:
        """Task size on the grid from u ~ U[0, 1): index floor(u * n) (exactly uniform for the default
        n = 16 since u has 2^23 equally likely values; bias below 2^-23 otherwise)."""
        num_sizes = (params.size_high - params.size_low) // params.size_step + 1
        index = jnp.minimum(jnp.floor(u * num_sizes), num_sizes - 1)
        return params.size_low + params.size_step * index

    @staticmethod
    def available(state: AIGCState, params: AIGCParams) -> jax.Array:
        """Available capacity per provider [M] in resource units."""
        return state.avail

    def get_obs(self, state: AIGCState, params: AIGCParams) -> jax.Array:
        cap = jnp.asarray(params.cap, jnp.float32)
        per_provider = jnp.stack([cap / CAP_SCALE, self.available(state, params) / cap], axis=-1).reshape(-1)
        size_high = jnp.float32(params.size_high)
        task = jnp.stack([state.size / size_high, running_time(state.size) / running_time(size_high)])
        return jnp.concatenate([per_provider, task])

    def _start(self, size: jax.Array, params: AIGCParams) -> tuple[jax.Array, AIGCState]:
        """Episode start: idle providers, clock at 0, the first task of the given size."""
        shape = (params.max_tasks_per_provider, self._num_providers(params))
        state = AIGCState(
            task_size=jnp.zeros(shape, jnp.float32),
            task_end=jnp.zeros(shape, jnp.float32),
            avail=jnp.asarray(params.cap, jnp.float32),
            now=jnp.int32(0),
            frac=jnp.float32(0.0),
            size=size,
            time=jnp.int32(0),
        )
        return self.get_obs(state, params), state

    def reset_env(self, key: jax.Array, params: AIGCParams) -> tuple[jax.Array, AIGCState]:
        return self._start(self._size_from_uniform(jax.random.uniform(key, (), jnp.float32), params), params)

    def auto_reset(self, key, obs_st, state_st: AIGCState, params: AIGCParams):
        """Task sizes are i.i.d. and independent of the history, so the next episode starts with the task
        the step just drew (saves a random draw per step under vmap)."""
        del key, obs_st
        return self._start(state_st.size, params)

    def step_env(self, key, state: AIGCState, action: jax.Array, params: AIGCParams):
        # One draw of two uniforms (one threefry call) gives both exogenous quantities of the step.
        u_gap, u_size = jax.random.uniform(key, (2,), jnp.float32)
        num_providers = self._num_providers(params)
        size = state.size
        chosen = jnp.arange(num_providers) == action  # [M] one-hot
        avail = self.available(state, params)
        fits = size <= avail[action]

        # Crash: every task on the chosen provider is killed and penalised by its remaining fraction
        # 1 - progress = (end - now) / D(size), exact in float32 for integer times below 2^24.
        row_size = state.task_size[:, action]  # [S]
        row_left = (state.task_end[:, action] - state.now.astype(jnp.float32)) / running_time(row_size)
        remaining = jnp.sum(jnp.where(row_size > 0, row_left, 0.0))
        crash_reward = -jnp.asarray(params.crash_penalty, jnp.float32) * (1.0 + remaining)
        u = quality(
            size, params.ax[action], params.ay[action], params.bx[action], params.by[action]
        ).astype(jnp.float32)
        reward = jnp.where(fits, u, crash_reward)

        # Start the task in the first free slot of the chosen provider (if it fits and a slot is free).
        free = row_size == 0  # [S]
        has_slot = jnp.any(free)
        slot = jnp.argmax(free)
        place = jnp.logical_and(chosen[None, :], (jnp.arange(params.max_tasks_per_provider) == slot)[:, None])
        place = jnp.logical_and(place, jnp.logical_and(fits, has_slot))
        kill = jnp.logical_and(chosen[None, :], jnp.logical_not(fits))
        task_size = jnp.where(kill, 0, jnp.where(place, size, state.task_size))
        task_end = jnp.where(place, state.now.astype(jnp.float32) + running_time(size), state.task_end)

        # Advance the continuous Poisson clock to the next arrival (integer part exact).
        gap = -jnp.log1p(-u_gap) / jnp.asarray(params.arrival_rate, jnp.float32)  # Exp(rate) by inversion
        clock = state.frac + gap
        whole = jnp.floor(clock)
        now = state.now + whole.astype(jnp.int32)
        frac = clock - whole
        terminated = now.astype(jnp.float32) >= jnp.asarray(params.horizon, jnp.float32)

        # Release finished tasks everywhere.
        task_size = jnp.where(now.astype(jnp.float32) >= task_end, 0, task_size)

        next_state = AIGCState(
            task_size=task_size,
            task_end=task_end,
            avail=jnp.asarray(params.cap, jnp.float32) - jnp.sum(task_size, axis=0, dtype=jnp.float32),
            now=now,
            frac=frac,
            size=self._size_from_uniform(u_size, params),
            time=state.time + 1,
        )
        info = {
            "crashed": jnp.logical_not(fits),
            "slot_overflow": jnp.logical_and(fits, jnp.logical_not(has_slot)),
            "quality": jnp.where(fits, u, 0.0),
        }
        return self.get_obs(next_state, params), next_state, reward, terminated, info

    def expected_episode_length(self, params: AIGCParams) -> float:
        """1 + arrival_rate * horizon (the task at time 0 plus the Poisson arrivals)."""
        return 1.0 + float(params.arrival_rate) * float(params.horizon)

    reference_policy = "prophet"

    def policies(self) -> dict:
        """The spec's heuristics: random, round-robin, crash-avoid and the prophet upper bound."""
        return dict(POLICIES)

    # --- spaces and validation ------------------------------------------------------------------------------
    def action_space(self, params: AIGCParams | None = None) -> Discrete:
        params = self.default_params if params is None else params
        return Discrete(self._num_providers(params))

    def observation_space(self, params: AIGCParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box(0.0, 1.0, (2 * self._num_providers(params) + 2,))

    def make_params(self, provider_seed: int | None = None, num_providers: int | None = None, **fields) -> AIGCParams:
        """Params with the reference providers, or a random instance from the generator when
        `provider_seed` is given (`num_providers` defaults to 20 then). Other fields as in AIGCParams."""
        if num_providers is not None and provider_seed is None:
            raise ValueError("AIGC: num_providers needs provider_seed (the reference instance has 20 providers)")
        if provider_seed is not None:
            if isinstance(provider_seed, bool) or not isinstance(provider_seed, (int, np.integer)):
                raise TypeError(f"AIGC: provider_seed must be an int, got {type(provider_seed).__name__}")
            m = 20 if num_providers is None else num_providers
            if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or m < 1:
                raise ValueError(f"AIGC: num_providers must be an integer >= 1, got {num_providers!r}")
            fields = {**sample_providers(jax.random.key(provider_seed), m), **fields}
        return super().make_params(**fields)

    def validate_params(self, params: AIGCParams) -> AIGCParams:
        for name in ("size_low", "size_high", "size_step", "max_tasks_per_provider"):
            value = getattr(params, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"AIGC: {name} must be an integer >= 1, got {value!r}")
        if params.size_high < params.size_low or (params.size_high - params.size_low) % params.size_step:
            raise ValueError(
                "AIGC: size_high must be >= size_low and reachable in size_step increments, got "
                f"size_low={params.size_low}, size_high={params.size_high}, size_step={params.size_step}"
            )
        shapes = {name: np.shape(getattr(params, name)) for name in ("ax", "ay", "bx", "by", "cap")}
        if len(set(shapes.values())) != 1 or len(shapes["cap"]) != 1 or shapes["cap"][0] < 1:
            raise ValueError(f"AIGC: ax, ay, bx, by, cap must be 1-D arrays of the same length M >= 1, got {shapes}")
        if not is_concrete(params):
            return params
        values = {name: np.asarray(getattr(params, name), np.float64) for name in ("ax", "ay", "bx", "by", "cap")}
        for name, v in values.items():
            if not np.all(np.isfinite(v)):
                raise ValueError(f"AIGC: {name} must be finite, got {v}")
        if np.any(values["cap"] <= 0):
            raise ValueError(f"AIGC: cap must be > 0, got {values['cap']}")
        if np.any(values["bx"] <= values["ax"]):
            raise ValueError(f"AIGC: quality curves need ax < bx for every provider, got ax={values['ax']}, bx={values['bx']}")
        needed = int(np.max(values["cap"]) // params.size_low)
        if needed > params.max_tasks_per_provider:
            raise ValueError(
                f"AIGC: max_tasks_per_provider={params.max_tasks_per_provider} is too small: a provider of capacity "
                f"{np.max(values['cap']):g} can run {needed} tasks of size {params.size_low}"
            )
        require_scalars("AIGC", params, ("arrival_rate", "horizon"))
        require_scalars("AIGC", params, ("crash_penalty",), inclusive=True)
        require_episode_steps("AIGC", params)
        return params


# --- heuristic policies: policy(key, obs, state, params) -> action ------------------------------------------------
def random_policy(key: jax.Array, obs: jax.Array, state: AIGCState, params: AIGCParams) -> jax.Array:
    """Uniformly random provider."""
    return jax.random.randint(key, (), 0, jnp.shape(params.cap)[-1])


def round_robin_policy(key: jax.Array, obs: jax.Array, state: AIGCState, params: AIGCParams) -> jax.Array:
    """Provider `step mod M` (the counter restarts with each episode)."""
    return (state.time % jnp.shape(params.cap)[-1]).astype(jnp.int32)


def crash_avoid_policy(key: jax.Array, obs: jax.Array, state: AIGCState, params: AIGCParams) -> jax.Array:
    """Largest absolute available capacity; lowest index on ties."""
    avail = AIGC.available(state, params)
    return jnp.argmax(avail).astype(jnp.int32)


def prophet_policy(key: jax.Array, obs: jax.Array, state: AIGCState, params: AIGCParams) -> jax.Array:
    """Oracle greedy: among providers where the task fits, the highest quality u_i(t) (lowest index on ties,
    qualities equal to 1e-6 count as tied);
    if it fits nowhere, the crash-avoid choice. Reads the hidden quality coefficients."""
    avail = AIGC.available(state, params)
    fits = state.size <= avail
    # Qualities that agree to 1e-6 are ties (the reference table has exact ties, e.g. by - ay = 0.70 on
    # several providers, which float32 rounding would otherwise break arbitrarily).
    u = jnp.round(quality(state.size, params.ax, params.ay, params.bx, params.by), 6)
    best = jnp.argmax(jnp.where(fits, u, -jnp.inf))
    return jnp.where(jnp.any(fits), best, jnp.argmax(avail)).astype(jnp.int32)


POLICIES = {
    "random": random_policy,
    "round-robin": round_robin_policy,
    "crash-avoid": crash_avoid_policy,
    "prophet": prophet_policy,
}
