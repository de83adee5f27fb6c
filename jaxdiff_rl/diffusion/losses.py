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
    *,
    t: jax.Array | None = None,
    noise: jax.Array | None = None,
    return_x0: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """E_{t ~ U{0..T-1}, eps ~ N(0, I)} ||target - f_theta(x_t, t, cond)||^2, averaged over batch and dims.

    Args:
        key: PRNG key (steps, noise, dropout mask); None with explicit `t` and `noise` (no condition dropout).
        model_fn: network `(x_t, t, cond, use_cond) -> [B, D]`.
        schedule: the noise schedule.
        x0: clean samples [B, D].
        cond: conditions [B, C] or None.
        p_uncond: probability of replacing a row's condition by the learned null condition (may be traced).
        prediction: "eps" (target = eps) or "x0" (target = x0).
        weights: optional per-sample weights [B] (e.g. importance weights); default uniform.
        t, noise: the steps [B] int and the noise [B, D] to use instead of drawing them from `key`.
        return_x0: also return the one-step estimate x0_hat [B, D] = (x_t - sqrt(1 - alpha_bar_t) eps_hat) /
            sqrt(alpha_bar_t) (or the x0 prediction itself), which carries the network's gradient (EDP's action
            approximation: one evaluation instead of the whole reverse chain).
    Returns:
        scalar loss (and x0_hat with `return_x0`).
    """
    if prediction not in ("eps", "x0"):
        raise ValueError(f"prediction must be 'eps' or 'x0', got {prediction!r}")
    if not isinstance(p_uncond, jax.core.Tracer) and not 0.0 <= float(np.asarray(p_uncond)) <= 1.0:
        raise ValueError(f"p_uncond must be in [0, 1], got {p_uncond!r}")
    batch = x0.shape[0]
    if key is None and (t is None or noise is None):
        raise ValueError("diffusion_loss: key=None needs explicit t and noise")
    k_t, k_eps, k_drop = jax.random.split(key, 3) if key is not None else (None, None, None)
    t = jax.random.randint(k_t, (batch,), 0, schedule.num_steps) if t is None else jnp.asarray(t, jnp.int32)
    noise = jax.random.normal(k_eps, x0.shape, x0.dtype) if noise is None else noise
    x_t = q_sample(schedule, x0, t, noise)
    use_cond = None if cond is None or k_drop is None else jax.random.uniform(k_drop, (batch,)) >= p_uncond
    out = model_fn(x_t, t, cond, use_cond)
    target = noise if prediction == "eps" else x0
    per_sample = jnp.mean((out - target) ** 2, axis=-1)
    loss = jnp.mean(per_sample) if weights is None else jnp.sum(weights * per_sample) / jnp.sum(weights)
    if not return_x0:
        return loss
    if prediction == "x0":
        return loss, out
    x0_hat = schedule.sqrt_recip_alpha_bars[t][:, None] * x_t - schedule.sqrt_recipm1_alpha_bars[t][:, None] * out
    return loss, x0_hat
