"""Denoising losses (seed 002 eq. 14, seed 003 eq. 8): MSE between the true and predicted noise (or x0) at a
uniformly drawn step, with classifier-free condition dropout."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_rl.diffusion.samplers import ModelFn
from jaxdiff_rl.diffusion.schedules import Schedule, q_sample

__all__ = ["diffusion_loss"]


def diffusion_loss(
    key: jax.Array,
    model_fn: ModelFn,
    schedule: Schedule,
    x0: jax.Array,
    cond: jax.Array | None = None,
    p_uncond: jax.Array | float = 0.0,
    prediction: str = "eps",
    weights: jax.Array | None = None,
) -> jax.Array:
    """E_{t ~ U{0..T-1}, eps ~ N(0, I)} ||target - f_theta(x_t, t, cond)||^2, averaged over batch and dims.

    Args:
        key: PRNG key (steps, noise, dropout mask).
        model_fn: network `(x_t, t, cond, use_cond) -> [B, D]`.
        schedule: the noise schedule.
        x0: clean samples [B, D].
        cond: conditions [B, C] or None.
        p_uncond: probability of replacing a row's condition by the learned null condition (may be traced).
        prediction: "eps" (target = eps) or "x0" (target = x0).
        weights: optional per-sample weights [B] (e.g. importance weights); default uniform.
    Returns:
        scalar loss.
    """
    if prediction not in ("eps", "x0"):
        raise ValueError(f"prediction must be 'eps' or 'x0', got {prediction!r}")
    if not isinstance(p_uncond, jax.core.Tracer) and not 0.0 <= float(np.asarray(p_uncond)) <= 1.0:
        raise ValueError(f"p_uncond must be in [0, 1], got {p_uncond!r}")
    batch = x0.shape[0]
    k_t, k_eps, k_drop = jax.random.split(key, 3)
    t = jax.random.randint(k_t, (batch,), 0, schedule.num_steps)
    noise = jax.random.normal(k_eps, x0.shape, x0.dtype)
    x_t = q_sample(schedule, x0, t, noise)
    use_cond = None if cond is None else jax.random.uniform(k_drop, (batch,)) >= p_uncond
    out = model_fn(x_t, t, cond, use_cond)
    target = noise if prediction == "eps" else x0
    per_sample = jnp.mean((out - target) ** 2, axis=-1)
    if weights is None:
        return jnp.mean(per_sample)
    return jnp.sum(weights * per_sample) / jnp.sum(weights)
