"""Consistency models (Song et al. 2023; improved training, Song & Dhariwal 2023): a network f(x_sigma, sigma) that
maps any point of a probability-flow ODE trajectory of the VE process x_sigma = x_0 + sigma eps straight to
its origin x_0, so one evaluation (or two, with one re-noising in between) draws a sample.

Parameterisation (EDM, boundary condition f(x, sigma_min) = x by construction):
    f(x, sigma) = c_skip(sigma) x + c_out(sigma) F(c_in(sigma) x, c_noise(sigma), cond)
    c_skip = sd^2 / ((sigma - sigma_min)^2 + sd^2),  c_out = sd (sigma - sigma_min) / sqrt(sd^2 + sigma^2),
    c_in = 1 / sqrt(sigma^2 + sd^2),  c_noise = 25 log(sigma)   (sd = sigma_data)
Discretisation: N Karras levels sigma_i = (sigma_min^(1/rho) + i/(N-1) (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho.

Training:
- consistency training (CT, no teacher): d(f_theta(x_0 + sigma_{n+1} z, sigma_{n+1}), sg f_theta(x_0 + sigma_n z,
  sigma_n)) with the same z, n drawn from iCT's discretised lognormal over the levels, weight
  1 / (sigma_{n+1} - sigma_n), pseudo-Huber d (c = 0.00054 sqrt(D)),
  and the stop-gradient target network theta^- = theta of improved CT (no EMA teacher);
- consistency distillation (CD): the target point is one Euler step of a teacher's probability-flow ODE,
  x_n = x_{n+1} + (sigma_n - sigma_{n+1}) (x_{n+1} - D(x_{n+1}, sigma_{n+1})) / sigma_{n+1}, with any teacher
  denoiser D(x, sigma, cond) -> x0_hat (`flow_teacher` adapts a flow-matching velocity network).
Sampling: x = sigma_max z, a = f(x, sigma_max); for each further level s: x = a + sqrt(s^2 - sigma_min^2) z,
a = f(x, s). The network evaluations equal the number of levels.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_rl.diffusion.flow import FLOW_TIME_SCALE
from jaxdiff_rl.diffusion.guidance import GuideFn, cfg_combine, cfg_normalize, cfg_pair, clip_box

__all__ = ["ConsistencyConfig", "consistency_fn", "consistency_loss", "consistency_sample", "flow_teacher",
           "karras_sigmas"]

Teacher = Callable[[jax.Array, jax.Array, Any], jax.Array]  # (x [B, D], sigma [B], cond) -> x0_hat [B, D]


@dataclasses.dataclass(frozen=True)
class ConsistencyConfig:
    """Static consistency-model settings.

    sigma_min / sigma_max: noise range (EDM: 0.002 / 80). sigma_data: data std scale (0.5 for data in [-1, 1]).
    rho: Karras spacing exponent (7). levels: N, discretisation of the training loss. p_mean, p_std: the
    training pairs' levels n are drawn with p(n) proportional to the lognormal(p_mean, p_std) mass of
    [sigma_n, sigma_{n+1}] (improved CT; a uniform n with the 1/(sigma_{n+1} - sigma_n) weight would spend the
    weight on the lowest levels and leave the high ones, which one-step sampling starts from, untrained;
    p_std = inf: uniform). sample_sigmas: the noise
    levels the sampler visits after the first (sigma_max) one; () is one-step sampling, (0.8,) two-step
    (the midpoint of consistency-model papers' low-dimensional experiments)."""

    sigma_min: float = 0.002
    sigma_max: float = 80.0
    sigma_data: float = 0.5
    rho: float = 7.0
    levels: int = 40
    sample_sigmas: tuple[float, ...] = ()
    p_mean: float = -1.1
    p_std: float = 2.0

    def __post_init__(self) -> None:
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"ConsistencyConfig: need 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if not self.p_std > 0:
            raise ValueError(f"ConsistencyConfig.p_std must be > 0 (inf: uniform levels), got {self.p_std}")
        if not self.sigma_data > 0:
            raise ValueError(f"ConsistencyConfig.sigma_data must be > 0, got {self.sigma_data}")
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or self.levels < 2:
            raise ValueError(f"ConsistencyConfig.levels (N) must be an integer >= 2, got {self.levels!r}")
        prev = self.sigma_max
        for s in self.sample_sigmas:
            if not self.sigma_min < s < prev:
                raise ValueError(f"ConsistencyConfig.sample_sigmas must decrease strictly inside (sigma_min, "
                                 f"sigma_max) = ({self.sigma_min}, {self.sigma_max}), got {self.sample_sigmas}")
            prev = s

    @property
    def sampling_steps(self) -> int:
        return 1 + len(self.sample_sigmas)


def level_probabilities(config: ConsistencyConfig) -> np.ndarray:
    """p(n) for the N - 1 training pairs (sigma_n, sigma_{n+1}), float32 [N - 1] (see `ConsistencyConfig`)."""
    from scipy.special import erf

    sig = karras_sigmas(config).astype(np.float64)
    if not np.isfinite(config.p_std):
        return np.full(config.levels - 1, 1.0 / (config.levels - 1), np.float32)
    z = erf((np.log(sig) - config.p_mean) / (np.sqrt(2.0) * config.p_std))
    p = np.maximum(np.diff(z), 1e-12)
    return (p / p.sum()).astype(np.float32)


def karras_sigmas(config: ConsistencyConfig) -> np.ndarray:
    """The N training levels sigma_min = sigma_0 < ... < sigma_{N-1} = sigma_max, float32 [N]."""
    r = 1.0 / config.rho
    i = np.arange(config.levels) / (config.levels - 1)
    return ((config.sigma_min**r + i * (config.sigma_max**r - config.sigma_min**r)) ** config.rho).astype(np.float32)


def _coefficients(config: ConsistencyConfig, sigma: jax.Array | np.floating):
    """(c_skip, c_out, c_in) at sigma; NumPy constants for a static sigma (sampling), else traced."""
    xp = np if isinstance(sigma, (float, np.floating)) else jnp
    sd, smin = config.sigma_data, config.sigma_min
    c_skip = sd**2 / ((sigma - smin) ** 2 + sd**2)
    c_out = sd * (sigma - smin) / xp.sqrt(sd**2 + sigma**2)
    c_in = 1.0 / xp.sqrt(sigma**2 + sd**2)
    return c_skip, c_out, c_in


def _noise_input(sigma: jax.Array | np.floating) -> jax.Array:
    xp = np if isinstance(sigma, (float, np.floating)) else jnp
    return xp.float32(0.25 * FLOW_TIME_SCALE) * xp.log(sigma)


def consistency_fn(model_fn: Any, config: ConsistencyConfig, x: jax.Array, sigma: jax.Array, cond: Any = None,
                   use_cond: Any = None) -> jax.Array:
    """f(x [B, D], sigma scalar or [B]) -> x0 estimate [B, D] (see the module docstring)."""
    c_skip, c_out, c_in = _coefficients(config, sigma)
    if jnp.ndim(sigma) == 1:  # one level per row
        c_skip, c_out, c_in = c_skip[:, None], c_out[:, None], c_in[:, None]
    return c_skip * x + c_out * model_fn(c_in * x, _noise_input(sigma), cond, use_cond)


def flow_teacher(velocity_fn: Any) -> Teacher:
    """A flow-matching velocity network as a VE denoiser: x_VE = x0 + sigma eps is x_t / (1 - t) of the
    rectified flow at t = sigma / (1 + sigma), and x0_hat = x_t - t v(x_t, t)."""

    def denoise(x: jax.Array, sigma: jax.Array, cond: Any) -> jax.Array:
        t = sigma / (1.0 + sigma)
        x_t = (1.0 - t)[:, None] * x
        return x_t - t[:, None] * velocity_fn(x_t, FLOW_TIME_SCALE * t, cond, None)

    return denoise


def consistency_loss(
    key: jax.Array,
    model_fn: Any,
    config: ConsistencyConfig,
    x0: jax.Array,
    cond: jax.Array | None = None,
    p_uncond: jax.Array | float = 0.0,
    weights: jax.Array | None = None,
    teacher: Teacher | None = None,
) -> jax.Array:
    """Consistency training (teacher None) or distillation (a `teacher` denoiser) loss, a scalar.

    x0 [B, D] data; cond [B, C] or None, dropped with probability p_uncond (the null condition, as in CFG);
    weights: optional per-sample weights [B]."""
    batch, dim = x0.shape
    k_n, k_z, k_drop = jax.random.split(key, 3)
    sigmas = jnp.asarray(karras_sigmas(config))
    n = jax.random.choice(k_n, config.levels - 1, (batch,), p=jnp.asarray(level_probabilities(config)))
    s_lo, s_hi = sigmas[n], sigmas[n + 1]
    z = jax.random.normal(k_z, x0.shape, x0.dtype)
    x_hi = x0 + s_hi[:, None] * z
    use_cond = None if cond is None else jax.random.uniform(k_drop, (batch,)) >= p_uncond
    if teacher is None:
        x_lo = x0 + s_lo[:, None] * z
    else:
        d = teacher(x_hi, s_hi, cond)
        x_lo = x_hi + ((s_lo - s_hi) / s_hi)[:, None] * (x_hi - d)
    x_lo = jax.lax.stop_gradient(x_lo)
    target = jax.lax.stop_gradient(consistency_fn(model_fn, config, x_lo, s_lo, cond, use_cond))
    pred = consistency_fn(model_fn, config, x_hi, s_hi, cond, use_cond)
    c = 0.00054 * np.sqrt(dim)
    per_sample = (jnp.sqrt(jnp.sum((pred - target) ** 2, -1) + c**2) - c) / (s_hi - s_lo)
    if weights is None:
        return jnp.mean(per_sample)
    return jnp.sum(weights * per_sample) / jnp.sum(weights)


def consistency_sample(
    key: jax.Array,
    model_fn: Any,
    config: ConsistencyConfig,
    shape: tuple[int, int],
    cond: jax.Array | None = None,
    *,
    clip_x0: tuple[float, float] | None = None,
    straight_through: bool = False,
    cfg_weight: jax.Array | float | None = None,
    cfg_normalize_steps: int = 0,
    guide_fn: GuideFn | None = None,
    guide_scale: jax.Array | float = 1.0,
    x_init: jax.Array | None = None,
) -> jax.Array:
    """Draw x_0 [B, D] in `config.sampling_steps` network evaluations.

    clip_x0: box for every step's output (RL actions, the optimizer's scaled solutions); `straight_through`:
    identity gradient through it. cfg_weight: classifier-free guidance on the network output F (needs cond;
    cfg_normalize_steps as in `SamplerConfig`). guide_fn, guide_scale: every step's output a is shifted to
    a + scale grad_a g(a, cond) (eq. 11's shift, applied where the consistency model puts its sample).
    The few levels are a Python loop (static, at most a handful of network calls)."""
    if cfg_weight is not None and cond is None:
        raise ValueError("cfg_weight needs a condition: pass cond [B, C]")
    keys = jax.random.split(key, config.sampling_steps)
    levels = (config.sigma_max, *config.sample_sigmas)
    a = None
    for i, sigma in enumerate(levels):
        if i == 0:
            x = sigma * jax.random.normal(keys[0], shape, jnp.float32) if x_init is None else x_init
        else:
            x = a + np.sqrt(sigma**2 - config.sigma_min**2) * jax.random.normal(keys[i], shape, jnp.float32)
        s = np.float32(sigma)
        c_skip, c_out, c_in = _coefficients(config, s)
        if cfg_weight is None:
            out = model_fn(c_in * x, _noise_input(s), cond, None)
        else:
            out_cond, out_uncond = cfg_pair(model_fn, c_in * x, _noise_input(s), cond)
            out = cfg_combine(out_cond, out_uncond, cfg_weight)
            if i < cfg_normalize_steps:
                out = cfg_normalize(out, out_cond)
        a = c_skip * x + c_out * out
        if guide_fn is not None:
            a = a + jnp.asarray(guide_scale, a.dtype) * jax.grad(lambda y: jnp.sum(guide_fn(y, cond)))(a)
        if clip_x0 is not None:
            a = clip_box(a, clip_x0, straight_through)
    return a
