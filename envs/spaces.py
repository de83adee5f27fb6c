"""Jittable action/observation spaces with the gymnax 1.x interface (`sample(key)`, `contains(x)`).

Both classes are plain Python objects (static under `jit`); `sample` and `contains` are pure JAX functions,
so they work inside `jit`/`vmap`. `check_action` validates the *static* properties of an action (shape,
dtype) in Python at trace time, before anything is compiled.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


class Space:
    """Abstract jittable space."""

    shape: tuple[int, ...]
    dtype: Any

    def sample(self, key: jax.Array) -> jax.Array:
        raise NotImplementedError

    def contains(self, x: jax.Array) -> jax.Array:
        raise NotImplementedError


class Discrete(Space):
    """Integers {0, ..., n-1}; scalar, int32.

    Args:
        num_categories: n >= 1.
    """

    def __init__(self, num_categories: int, dtype: Any = jnp.int32):
        if int(num_categories) < 1:
            raise ValueError(f"Discrete: num_categories must be >= 1, got {num_categories}")
        self.n = int(num_categories)
        self.shape: tuple[int, ...] = ()
        self.dtype = jnp.dtype(dtype)

    def __repr__(self) -> str:
        return f"Discrete({self.n})"

    def sample(self, key: jax.Array) -> jax.Array:
        """Uniform integer in [0, n), shape ()."""
        return jax.random.randint(key, self.shape, 0, self.n, dtype=self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        """True iff x is an integer in [0, n) (works on traced values)."""
        x = jnp.asarray(x)
        is_int = jnp.asarray(jnp.issubdtype(x.dtype, jnp.integer))
        in_range = jnp.logical_and(x >= 0, x < self.n)
        return jnp.logical_and(is_int, jnp.all(in_range))

    def check_action(self, action: Any, env_name: str) -> jax.Array:
        """Raise TypeError/ValueError for a wrong dtype or shape; return the action as int32."""
        if isinstance(action, bool) or (isinstance(action, (float, np.floating))):
            raise TypeError(f"{env_name}: action must be an integer in [0, {self.n}), got {action!r}")
        arr = jnp.asarray(action)
        if not jnp.issubdtype(arr.dtype, jnp.integer):
            raise TypeError(
                f"{env_name}: action must have an integer dtype for Discrete({self.n}), got dtype {arr.dtype}"
            )
        if arr.shape != self.shape:
            raise ValueError(
                f"{env_name}: action must be a scalar (shape ()) for Discrete({self.n}), got shape {arr.shape}; "
                "use jax.vmap over env.step for a batch of environments"
            )
        if not isinstance(action, jax.core.Tracer):
            value = int(np.asarray(action))
            if not 0 <= value < self.n:
                raise ValueError(f"{env_name}: action must be in [0, {self.n}), got {value}")
        return arr.astype(self.dtype)


class Box(Space):
    """Real vectors in [low, high] (elementwise), float32.

    Args:
        low, high: scalars or arrays broadcastable to `shape`.
        shape: the array shape, e.g. `(num_channels,)`.
    """

    def __init__(self, low: Any, high: Any, shape: tuple[int, ...], dtype: Any = jnp.float32):
        self.low = low
        self.high = high
        self.shape = tuple(int(s) for s in shape)
        self.dtype = jnp.dtype(dtype)

    def __repr__(self) -> str:
        def fmt(b: Any) -> str:
            b = np.asarray(b)
            return f"{b.item():g}" if b.size == 1 else f"array{b.shape}"

        return f"Box(low={fmt(self.low)}, high={fmt(self.high)}, shape={self.shape})"

    def sample(self, key: jax.Array) -> jax.Array:
        """Uniform sample in the box, shape `self.shape`."""
        return jax.random.uniform(key, self.shape, self.dtype, self.low, self.high)

    def contains(self, x: jax.Array) -> jax.Array:
        """True iff x has this shape and every entry lies in [low, high] (NaN is never contained)."""
        x = jnp.asarray(x)
        if x.shape != self.shape:
            return jnp.asarray(False)
        return jnp.logical_and(jnp.all(x >= self.low), jnp.all(x <= self.high))

    def check_action(self, action: Any, env_name: str) -> jax.Array:
        """Raise TypeError/ValueError for a wrong dtype, shape or (when concrete) non-finite entries."""
        arr = jnp.asarray(action)
        if not jnp.issubdtype(arr.dtype, jnp.floating):
            raise TypeError(
                f"{env_name}: action must have a floating dtype for {self!r}, got dtype {arr.dtype}"
            )
        if arr.shape != self.shape:
            raise ValueError(
                f"{env_name}: action must have shape {self.shape} for {self!r}, got shape {arr.shape}; "
                "use jax.vmap over env.step for a batch of environments"
            )
        # NumPy, not jnp: a concrete action used inside someone else's trace (e.g. closed over by a scan body)
        # must be checked without staging an op
        if not isinstance(action, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(action))):
            raise ValueError(f"{env_name}: action contains NaN or inf: {np.asarray(action)}")
        return arr.astype(self.dtype)
