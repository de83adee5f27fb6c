"""Exponential moving average of parameters: ema <- decay * ema + (1 - decay) * params (optax's Polyak update)."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

__all__ = ["ema_update"]


def ema_update(ema_params: Any, params: Any, decay: jax.Array | float) -> Any:
    """One EMA step on a parameter pytree; decay in [0, 1] (may be traced). decay = 1 keeps the EMA."""
    return optax.incremental_update(params, ema_params, step_size=1.0 - jnp.asarray(decay, jnp.float32))
