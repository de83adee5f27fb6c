"""Guidance rules that turn network predictions into the noise estimate the samplers use.

- Classifier-free guidance (seed 002 eq. 12): eps~ = (1 + w) eps(y_t, x, t) - w eps(y_t, t).
- CFG normalisation (DiffSG, "normalization in the first denoising steps"): with w in the hundreds the guided
  estimate is huge early in the chain; rescaling it per sample to the norm of the conditional estimate keeps
  the direction of the guidance and the magnitude of a valid noise prediction.
- Gradient (classifier) guidance by a differentiable g(x, cond) (a critic Q(s, a), a reward, a classifier
  log-probability): eps~ = eps - s sqrt(1 - abar_t) grad_x g(x_t, cond), i.e. the score is shifted by
  s grad log exp(g) (Dhariwal & Nichol, in eps form).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

__all__ = ["cfg_pair", "cfg_combine", "cfg_normalize", "gradient_guidance", "clip_box", "GuideFn"]

# g(x [B, D], cond [B, C] or None) -> [B]; differentiable in x
GuideFn = Callable[[jax.Array, jax.Array | None], jax.Array]


def cfg_pair(model_fn: Callable, x: jax.Array, t: jax.Array, cond: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The conditional and unconditional predictions [B, D] each, from one call on the doubled batch (the second
    half with use_cond False, i.e. the learned null condition). x [B, D]; t scalar (shared) or [B]; cond [B, C]."""
    n = x.shape[0]
    both = model_fn(jnp.concatenate([x, x]), t if jnp.ndim(t) == 0 else jnp.concatenate([t, t]),
                    jnp.concatenate([cond, cond]), jnp.concatenate([jnp.ones(n, bool), jnp.zeros(n, bool)]))
    return both[:n], both[n:]


def cfg_combine(eps_cond: jax.Array, eps_uncond: jax.Array, weight: jax.Array | float) -> jax.Array:
    """(1 + w) eps_cond - w eps_uncond. [B, D] each; w scalar or [B, 1]. w = 0 returns eps_cond exactly."""
    w = jnp.asarray(weight, eps_cond.dtype)
    return eps_cond + w * (eps_cond - eps_uncond)


def cfg_normalize(eps_guided: jax.Array, eps_cond: jax.Array, eps: float = 1e-12) -> jax.Array:
    """Rescale each row of eps_guided to the L2 norm of the matching row of eps_cond. [B, D] -> [B, D]."""
    norm_g = jnp.sqrt(jnp.sum(eps_guided**2, axis=-1, keepdims=True))
    norm_c = jnp.sqrt(jnp.sum(eps_cond**2, axis=-1, keepdims=True))
    return eps_guided * (norm_c / jnp.maximum(norm_g, eps))


def gradient_guidance(
    eps: jax.Array,
    x_t: jax.Array,
    cond: jax.Array | None,
    guide_fn: GuideFn,
    scale: jax.Array | float,
    sqrt_one_minus_abar: jax.Array,
) -> jax.Array:
    """eps - scale sqrt(1 - abar_t) grad_x sum_b g(x_t, cond)_b. eps, x_t [B, D]; sqrt_one_minus_abar [B, 1]."""
    grad = jax.grad(lambda x: jnp.sum(guide_fn(x, cond)))(x_t)
    return eps - jnp.asarray(scale, eps.dtype) * sqrt_one_minus_abar * grad


def clip_box(x: jax.Array, box: tuple[float, float], straight_through: bool) -> jax.Array:
    """Clip x to [low, high]; with `straight_through` the gradient passes as identity (forward clipped), else it is
    the clip's own (0 outside the box). Shared by every generator's action / sample box."""
    clipped = jnp.clip(x, *box)
    return x + jax.lax.stop_gradient(clipped - x) if straight_through else clipped
