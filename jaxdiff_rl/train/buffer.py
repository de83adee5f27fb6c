"""Replay buffer on device: fixed capacity, uniform sampling, n-step returns; pure functions, vmappable.

Layout: time-major rings `[rows, num_envs, ...]` (one row per vectorised environment step), so adding a step of
N parallel environments is one `dynamic_update_slice` and an n-step return follows one environment's lane
forward in time. `rows = capacity // num_envs`; when full, the oldest row is overwritten.

n-step returns are computed when sampling (not when adding), so the buffer stores plain transitions and `n`
and `gamma` may be traced (sweepable). For a sampled transition at chronological row j of lane e:

    m = min(n, steps until the episode ends (inclusive), rows written after j (inclusive))
    G = sum_{k<m} gamma^k r_{j+k},   bootstrap obs = next_obs_{j+m-1},
    discount = gamma^m (1 - terminated_{j+m-1})

so a time-limit truncation bootstraps from the stored final observation and a natural termination does not.
(Why not flashbax: its n-step support needs a trajectory buffer with a fixed sequence length per sample, which
cannot truncate at episode ends inside the sequence; this is 100 lines and has a NumPy reference test.)
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct

__all__ = ["BufferState", "Transition", "Batch", "buffer_init", "buffer_add", "buffer_sample", "buffer_rows"]


@struct.dataclass
class Transition:
    """One vectorised environment step, leading axis = environments.

    obs [N, obs_dim] (or a pytree of [N, ...] leaves), action [N, act_dim] float or [N] int, reward [N] (or [N, K]:
    one per agent, the n-step sums are per entry), next_obs [N, obs_dim] (the final
    observation when the episode ended), terminated [N] bool (no bootstrap), done [N] bool (episode boundary:
    terminated or truncated)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    terminated: jax.Array
    done: jax.Array


@struct.dataclass
class Batch:
    """A sampled minibatch with n-step targets: obs [B, ...], action [B, ...], reward = G [B] (n-step discounted
    return), next_obs [B, ...] (bootstrap observation), discount [B] = gamma^m (1 - terminated)."""

    obs: jax.Array
    action: jax.Array
    reward: jax.Array
    next_obs: jax.Array
    discount: jax.Array


@struct.dataclass
class BufferState:
    data: Transition  # every leaf [rows, num_envs, ...]
    ptr: jax.Array  # int32 next row to write
    size: jax.Array  # int32 rows written (<= rows)


def buffer_rows(capacity: int, num_envs: int) -> int:
    """Rows of a buffer holding `capacity` transitions from `num_envs` environments (at least 1)."""
    return max(1, capacity // num_envs)


def buffer_init(example: Transition, capacity: int) -> BufferState:
    """Empty buffer shaped like `example` (one vectorised step, leading axis = environments)."""
    num_envs = example.reward.shape[0]
    rows = buffer_rows(capacity, num_envs)
    data = jax.tree_util.tree_map(lambda x: jnp.zeros((rows, *x.shape), x.dtype), example)
    return BufferState(data=data, ptr=jnp.int32(0), size=jnp.int32(0))


def buffer_add(state: BufferState, step: Transition) -> BufferState:
    """Write one vectorised step at the write pointer (overwriting the oldest row when full)."""
    rows = state.data.reward.shape[0]
    data = jax.tree_util.tree_map(
        lambda buf, x: jax.lax.dynamic_update_index_in_dim(buf, x.astype(buf.dtype), state.ptr, 0), state.data, step
    )
    return BufferState(data=data, ptr=(state.ptr + 1) % rows, size=jnp.minimum(state.size + 1, rows))


def buffer_sample(
    state: BufferState, key: jax.Array, batch_size: int, n_step: int = 1, gamma: jax.Array | float = 0.99
) -> Batch:
    """Uniform minibatch of `batch_size` transitions with n-step targets (see the module docstring).

    `n_step` is static (it sets a loop length); `gamma` may be traced. Sampling an empty buffer returns
    garbage (zeros); callers start updating once `size * num_envs >= batch_size`.
    """
    rows, num_envs = state.data.reward.shape[:2]
    extra = state.data.reward.ndim - 2  # per-agent rewards [rows, N, K] keep their trailing axes
    lift = lambda x: x.reshape(x.shape + (1,) * extra)
    k_row, k_env = jax.random.split(key)
    size = jnp.maximum(state.size, 1)
    oldest = jnp.where(state.size < rows, 0, state.ptr)
    chrono = jax.random.randint(k_row, (batch_size,), 0, size)  # chronological position, 0 = oldest
    lane = jax.random.randint(k_env, (batch_size,), 0, num_envs)
    gamma = jnp.asarray(gamma, jnp.float32)
    row_of = lambda c: (oldest + c) % rows
    first = row_of(chrono)
    ret = jnp.zeros((batch_size,) + state.data.reward.shape[2:], jnp.float32)
    discount = jnp.ones(batch_size, jnp.float32)
    alive = jnp.ones(batch_size, bool)  # still accumulating (episode not ended, rows available)
    last = first
    for k in range(n_step):  # static, small (n <= ~10): unrolled
        c = chrono + k
        available = c < size
        take = alive & available
        r = row_of(c)
        ret = ret + jnp.where(lift(take), lift(discount) * state.data.reward[r, lane], 0.0)
        discount = jnp.where(take, discount * gamma, discount)
        last = jnp.where(take, r, last)
        alive = take & ~state.data.done[r, lane]
    discount = discount * (1.0 - state.data.terminated[last, lane].astype(jnp.float32))
    at = lambda row: (lambda x: x[row, lane])  # observations may be pytrees (the multi-agent loop: local + global)
    return Batch(
        obs=jax.tree_util.tree_map(at(first), state.data.obs),
        action=state.data.action[first, lane],
        reward=ret,
        next_obs=jax.tree_util.tree_map(at(last), state.data.next_obs),
        discount=discount,
    )


def transition_like(obs: Any, action: Any) -> Transition:
    """A zero `Transition` for one vectorised step with the given obs [N, ...] and action [N, ...] arrays."""
    n = obs.shape[0]
    return Transition(
        obs=obs,
        action=action,
        reward=jnp.zeros(n, jnp.float32),
        next_obs=obs,
        terminated=jnp.zeros(n, bool),
        done=jnp.zeros(n, bool),
    )
