"""Exponential moving average of parameters: ema <- decay * ema + (1 - decay) * params (optax's Polyak update)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = ["ema_update", "ema_decay_warmup"]


def ema_update(ema_params: Any, params: Any, decay: jax.Array | float) -> Any:
    """One EMA step on a parameter pytree; decay in [0, 1] (may be traced). decay = 1 keeps the EMA."""
    return optax.incremental_update(params, ema_params, step_size=1.0 - jnp.asarray(decay, jnp.float32))


def ema_decay_warmup(decay: jax.Array | float, step: jax.Array | int) -> jax.Array:
    """Effective decay min(decay, (1 + step) / (10 + step)): an EMA started from the initial parameters would keep
    decay^n of them after n updates (45% after 160 steps at 0.995); the warm-up lets short runs track the model."""
    step = jnp.asarray(step, jnp.float32)
    return jnp.minimum(jnp.asarray(decay, jnp.float32), (1.0 + step) / (10.0 + step))
