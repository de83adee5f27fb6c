"""Noise schedules for discrete-time diffusion (DDPM family) and the closed forms built on them.

Index convention: diffusion steps are 0-indexed, t = 0 .. T-1, where step t maps x_{t} -> x_{t+1} in the
papers' 1-indexed notation (seed 002 eq. 8, seed 003 eq. 1). So `alpha_bars[t]` is the paper's alpha_bar_{t+1},
`alpha_bars_prev[t]` its alpha_bar_t (with alpha_bar_0 = 1), and sampling runs t = T-1, ..., 0.

Schedules (all return betas in (0, 1), shape [T]):
- "linear": beta linearly from `beta_start` to `beta_end` (DDPM; Diffusion-QL uses 1e-4 .. 2e-2, the
  default). Those values were designed for T = 1000: with small T, alpha_bar_T stays far from 0 (0.95 at
  T = 5), so x_T ~ N(0, I) is not the forward marginal; raise `beta_end` or use "vp"/"cosine" there.
- "cosine": Nichol & Dhariwal, alpha_bar(t) = cos^2(((t/T + s)/(1 + s)) pi/2), beta clipped to `max_beta`.
- "vp": the discretised variance-preserving SDE of Diffusion-QL / D2SAC (shared/specs/aigc.md):
  beta_t = 1 - exp(-b_min/T - 0.5 (b_max - b_min)(2t - 1)/T^2), t = 1..T.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

__all__ = [
    "Schedule",
    "make_schedule",
    "check_schedule",
    "schedule_from_betas",
    "SCHEDULES",
    "q_sample",
    "q_posterior",
    "predict_x0_from_eps",
    "predict_eps_from_x0",
    "extract",
]

SCHEDULES = ("linear", "cosine", "vp")


@struct.dataclass
class Schedule:
    """Precomputed schedule arrays, each float32 [T]. A pytree: pass it through `jit`/`vmap` freely."""

    betas: jax.Array
    alphas: jax.Array
    alpha_bars: jax.Array
    alpha_bars_prev: jax.Array
    sqrt_alpha_bars: jax.Array
    sqrt_one_minus_alpha_bars: jax.Array
    sqrt_recip_alpha_bars: jax.Array
    sqrt_recipm1_alpha_bars: jax.Array
    posterior_variance: jax.Array  # beta_tilde_t = (1 - abar_{t-1}) / (1 - abar_t) beta_t (0 at t = 0)
    posterior_log_variance_clipped: jax.Array  # log beta_tilde with the t = 0 entry replaced by t = 1's
    posterior_mean_coef1: jax.Array  # coefficient of x0 in the posterior mean
    posterior_mean_coef2: jax.Array  # coefficient of x_t in the posterior mean

    @property
    def num_steps(self) -> int:
        return int(self.betas.shape[-1])


def _betas(name: str, num_steps: int, **kw: float) -> np.ndarray:
    t = np.arange(1, num_steps + 1, dtype=np.float64)
    if name == "linear":
        start, end = kw.pop("beta_start", 1e-4), kw.pop("beta_end", 2e-2)
        if not 0.0 < start <= end < 1.0:
            raise ValueError(f"linear schedule needs 0 < beta_start <= beta_end < 1, got {start}, {end}")
        betas = np.linspace(start, end, num_steps, dtype=np.float64)
    elif name == "cosine":
        s, max_beta = kw.pop("s", 0.008), kw.pop("max_beta", 0.999)
        if not s >= 0.0 or not 0.0 < max_beta < 1.0:
            raise ValueError(f"cosine schedule needs s >= 0 and 0 < max_beta < 1, got s={s}, max_beta={max_beta}")
        f = lambda u: np.cos((u / num_steps + s) / (1 + s) * math.pi / 2) ** 2
        betas = np.minimum(1.0 - f(t) / f(t - 1), max_beta)
    elif name == "vp":
        b_min, b_max = kw.pop("b_min", 0.1), kw.pop("b_max", 10.0)
        if not 0.0 < b_min <= b_max:
            raise ValueError(f"vp schedule needs 0 < b_min <= b_max, got b_min={b_min}, b_max={b_max}")
        betas = 1.0 - np.exp(-b_min / num_steps - 0.5 * (b_max - b_min) * (2 * t - 1) / num_steps**2)
    else:
        raise ValueError(f"unknown schedule {name!r}; valid: {SCHEDULES}")
    if kw:
        raise ValueError(f"unknown parameter(s) {sorted(kw)} for the {name!r} schedule")
    return betas


def check_schedule(name: str, num_steps: int = 1, **params: float) -> None:
    """The checks of `make_schedule` in NumPy only, for config validation at import time: building the schedule
    would create JAX arrays and so initialise JAX's backends, after which `jax.distributed.initialize` is refused."""
    _betas(name, int(num_steps), **params)


def make_schedule(name: str = "vp", num_steps: int = 5, **params: float) -> Schedule:
    """Build a schedule by name ("linear", "cosine", "vp") with T = `num_steps` (static) steps.

    Raises:
        ValueError: unknown name, T < 1, or schedule parameters out of range (named in the message).
    """
    if isinstance(num_steps, bool) or not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
        raise ValueError(f"num_steps (T) must be an integer >= 1, got {num_steps!r}")
    return schedule_from_betas(_betas(name, int(num_steps), **params))


def schedule_from_betas(betas: np.ndarray) -> Schedule:
    """The schedule of given betas [T] in (0, 1) (e.g. one matching a score model's noise ladder,
    `jaxdiff_rl.diffusion.score.vp_from_ladder`)."""
    betas = np.asarray(betas, np.float64)
    if betas.ndim != 1 or betas.size < 1 or not np.all((betas > 0.0) & (betas < 1.0)):
        raise ValueError(f"betas must be a non-empty 1-D array in (0, 1), got shape {betas.shape}")
    num_steps = betas.shape[0]
    alphas = 1.0 - betas
    alpha_bars = np.cumprod(alphas)
    alpha_bars_prev = np.concatenate([[1.0], alpha_bars[:-1]])
    post_var = betas * (1.0 - alpha_bars_prev) / (1.0 - alpha_bars)
    # log(0) at t = 0: use t = 1's value (the standard clipping); with T = 1 fall back to beta_0.
    clipped = np.log(np.concatenate([[post_var[1] if num_steps > 1 else betas[0]], post_var[1:]]))
    f32 = lambda x: jnp.asarray(x, jnp.float32)
    return Schedule(
        betas=f32(betas),
        alphas=f32(alphas),
        alpha_bars=f32(alpha_bars),
        alpha_bars_prev=f32(alpha_bars_prev),
        sqrt_alpha_bars=f32(np.sqrt(alpha_bars)),
        sqrt_one_minus_alpha_bars=f32(np.sqrt(1.0 - alpha_bars)),
        sqrt_recip_alpha_bars=f32(np.sqrt(1.0 / alpha_bars)),
        sqrt_recipm1_alpha_bars=f32(np.sqrt(1.0 / alpha_bars - 1.0)),
        posterior_variance=f32(post_var),
        posterior_log_variance_clipped=f32(clipped),
        posterior_mean_coef1=f32(betas * np.sqrt(alpha_bars_prev) / (1.0 - alpha_bars)),
        posterior_mean_coef2=f32((1.0 - alpha_bars_prev) * np.sqrt(alphas) / (1.0 - alpha_bars)),
    )


def extract(values: jax.Array, t: jax.Array, x: jax.Array) -> jax.Array:
    """values[t] shaped to broadcast against x: t [B] int -> [B, 1, ..., 1]."""
    out = values[t]
    return out.reshape(out.shape + (1,) * (x.ndim - out.ndim))


def q_sample(schedule: Schedule, x0: jax.Array, t: jax.Array, noise: jax.Array) -> jax.Array:
    """Forward marginal x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps (seed 002 eq. 10). x0, noise [B, D]; t [B]."""
    return extract(schedule.sqrt_alpha_bars, t, x0) * x0 + extract(schedule.sqrt_one_minus_alpha_bars, t, x0) * noise


def q_posterior(schedule: Schedule, x0: jax.Array, xt: jax.Array, t: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """q(x_{t-1} | x_t, x0) = N(mean, var I). Returns (mean [B, D], var [B, 1], clipped log-var [B, 1])."""
    mean = extract(schedule.posterior_mean_coef1, t, xt) * x0 + extract(schedule.posterior_mean_coef2, t, xt) * xt
    return mean, extract(schedule.posterior_variance, t, xt), extract(schedule.posterior_log_variance_clipped, t, xt)


def predict_x0_from_eps(schedule: Schedule, xt: jax.Array, t: jax.Array, eps: jax.Array) -> jax.Array:
    """x0 = (x_t - sqrt(1 - abar) eps) / sqrt(abar)."""
    return extract(schedule.sqrt_recip_alpha_bars, t, xt) * xt - extract(schedule.sqrt_recipm1_alpha_bars, t, xt) * eps


def predict_eps_from_x0(schedule: Schedule, xt: jax.Array, t: jax.Array, x0: jax.Array) -> jax.Array:
    """eps = (x_t / sqrt(abar) - x0) / sqrt(1/abar - 1)."""
    return (extract(schedule.sqrt_recip_alpha_bars, t, xt) * xt - x0) / extract(schedule.sqrt_recipm1_alpha_bars, t, xt)
