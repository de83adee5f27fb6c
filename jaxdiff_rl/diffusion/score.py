"""Score-based generative modelling over a ladder of noise levels (NCSN / VE-SDE; seed 001 sec. II score SDE):
denoising score matching, annealed Langevin dynamics and the reverse-SDE sampler (Euler-Maruyama predictor with
an optional Langevin corrector), each one `lax.scan`. It sits beside the DDPM samplers of `samplers.py`, which it
does not change, and uses the same network: the shared `Denoiser` called with the noise-level index as its time
step predicts the unit noise z of x = x0 + sigma_i z, and the score is s(x, i) = -z_hat / sigma_i (the
sigma^2-weighted DSM objective is then the plain MSE on z, as DDPM's eps loss).

Posterior sampling (channel estimation, inverse problems): every sampler takes an optional
`likelihood_score(x, sigma) -> [B, D]`, the gradient of log p(y | x) at noise level sigma, added to the prior
score at every step.

Shapes: x [B, D]; sigmas [L] decreasing (sigma_1 > ... > sigma_L); level indices i = 0 .. L-1 (int32).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_rl.diffusion.samplers import ModelFn
from jaxdiff_rl.diffusion.schedules import Schedule, schedule_from_betas

__all__ = [
    "ScoreFn",
    "LikelihoodScoreFn",
    "geometric_sigmas",
    "dsm_loss",
    "score_from_model",
    "annealed_langevin",
    "reverse_sde",
    "vp_from_ladder",
]

ScoreFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, D], level index [] int32) -> score [B, D]
LikelihoodScoreFn = Callable[[jax.Array, jax.Array], jax.Array]  # (x [B, D], sigma []) -> grad log p(y|x) [B, D]


def geometric_sigmas(sigma_max: float, sigma_min: float, num_levels: int, as_numpy: bool = False) -> jax.Array:
    """NCSN's geometric ladder sigma_max ... sigma_min, float32 [L] (decreasing); `as_numpy`: a NumPy array, a
    concrete value even inside `jit` (for `vp_from_ladder`)."""
    if isinstance(num_levels, bool) or not isinstance(num_levels, (int, np.integer)) or num_levels < 2:
        raise ValueError(f"num_levels must be an integer >= 2, got {num_levels!r}")
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")
    ladder = np.geomspace(sigma_max, sigma_min, num_levels).astype(np.float32)
    return ladder if as_numpy else jnp.asarray(ladder)


def dsm_loss(key: jax.Array, model_fn: ModelFn, sigmas: jax.Array, x0: jax.Array, cond: jax.Array | None = None,
             weights: jax.Array | None = None) -> jax.Array:
    """Denoising score matching with lambda(sigma) = sigma^2 (Song & Ermon 2019):
    E_i E_z || sigma_i s(x0 + sigma_i z, i) + z ||^2 = E || z_hat(x0 + sigma_i z, i) - z ||^2, i ~ U{0..L-1},
    averaged over batch and dims. x0 [B, D]; model_fn(x, i [B], cond, None) -> z_hat [B, D]. Scalar."""
    k_i, k_z = jax.random.split(key)
    level = jax.random.randint(k_i, (x0.shape[0],), 0, sigmas.shape[0])
    z = jax.random.normal(k_z, x0.shape, x0.dtype)
    x = x0 + sigmas[level][:, None] * z
    per_sample = jnp.mean((model_fn(x, level, cond, None) - z) ** 2, axis=-1)
    if weights is None:
        return jnp.mean(per_sample)
    return jnp.sum(weights * per_sample) / jnp.sum(weights)


def score_from_model(model_fn: ModelFn, sigmas: jax.Array, cond: jax.Array | None = None) -> ScoreFn:
    """The score s(x, i) = -z_hat(x, i) / sigma_i of a network trained with `dsm_loss`."""
    return lambda x, i: -model_fn(x, i, cond, None) / sigmas[i]


def _total_score(score_fn: ScoreFn, likelihood_score: LikelihoodScoreFn | None, x: jax.Array, i: jax.Array,
                 sigma: jax.Array) -> jax.Array:
    s = score_fn(x, i)
    return s if likelihood_score is None else s + likelihood_score(x, sigma)


def annealed_langevin(key: jax.Array, score_fn: ScoreFn, x_init: jax.Array, sigmas: jax.Array,
                      steps_per_level: int = 3, step_size: float | jax.Array = 2e-5, *,
                      likelihood_score: LikelihoodScoreFn | None = None, final_denoise: bool = True) -> jax.Array:
    """Annealed Langevin dynamics (Song & Ermon 2019, Alg. 1): at each level i, K steps of
    x <- x + a_i s(x, i) + sqrt(2 a_i) z with a_i = step_size * sigma_i^2 / sigma_L^2; then, with `final_denoise`,
    one Tweedie step x <- x + sigma_L^2 s(x, L-1) (Song & Ermon 2020). x_init [B, D] (usually sigma_1 * N(0, I))
    -> [B, D]. `step_size` is a scalar or one per level [L] (e.g. shrunk where a likelihood adds curvature).
    `steps_per_level` and `final_denoise` are static."""
    if isinstance(steps_per_level, bool) or not isinstance(steps_per_level, int) or steps_per_level < 1:
        raise ValueError(f"steps_per_level must be an integer >= 1, got {steps_per_level!r}")
    if not isinstance(sigmas, jax.core.Tracer) and not isinstance(step_size, jax.core.Tracer):
        ratio = np.asarray(step_size, np.float64) / float(np.asarray(sigmas)[-1]) ** 2
        if ratio.ndim > 1 or (ratio.ndim == 1 and ratio.shape[0] != np.asarray(sigmas).shape[0]):
            raise ValueError(f"annealed_langevin: step_size must be a scalar or one per level [{len(sigmas)}], got "
                             f"shape {ratio.shape}")
        if not np.all((ratio > 0.0) & (ratio < 1.0)):
            raise ValueError(f"annealed_langevin: step_size must be in (0, sigma_min^2 = {float(sigmas[-1]) ** 2:.3g}); "
                             f"got {step_size!r}: the last level's step a = step_size would overshoot (a Langevin step "
                             "is stable for a < 2 / curvature, and the prior's curvature at sigma_min is ~1/sigma_min^2)")
    sigmas, step_size = jnp.asarray(sigmas), jnp.asarray(step_size, jnp.float32)
    num_levels = sigmas.shape[0]
    levels = jnp.repeat(jnp.arange(num_levels, dtype=jnp.int32), steps_per_level)
    keys = jax.random.split(key, levels.shape[0])

    def body(x, inputs):
        i, k = inputs
        sigma = sigmas[i]
        alpha = (step_size[i] if jnp.ndim(step_size) else step_size) * (sigma / sigmas[-1]) ** 2
        x = x + alpha * _total_score(score_fn, likelihood_score, x, i, sigma) + jnp.sqrt(
            2.0 * alpha) * jax.random.normal(k, x.shape, x.dtype)
        return x, None

    x, _ = jax.lax.scan(body, x_init, (levels, keys))
    if final_denoise:
        last = jnp.int32(num_levels - 1)
        x = x + sigmas[-1] ** 2 * _total_score(score_fn, likelihood_score, x, last, sigmas[-1])
    return x


def reverse_sde(key: jax.Array, score_fn: ScoreFn, x_init: jax.Array, sigmas: jax.Array,
                corrector_steps: int = 0, snr: float | jax.Array = 0.16, *,
                likelihood_score: LikelihoodScoreFn | None = None) -> jax.Array:
    """Reverse VE-SDE by Euler-Maruyama on the ladder (Song et al. 2021, predictor-corrector): for i = 0 .. L-1,
    `corrector_steps` Langevin corrections with step 2 (snr ||z|| / ||s||)^2 (norms averaged over the batch), then the predictor
    x <- x + (sigma_i^2 - sigma_{i+1}^2) s(x, i) + sqrt(sigma_i^2 - sigma_{i+1}^2) z with sigma_L+1 = 0 and no noise
    on the last step (it returns the mean, the usual final denoising). x_init [B, D] -> [B, D]."""
    if isinstance(corrector_steps, bool) or not isinstance(corrector_steps, int) or corrector_steps < 0:
        raise ValueError(f"corrector_steps must be an integer >= 0, got {corrector_steps!r}")
    sigmas = jnp.asarray(sigmas)
    num_levels = sigmas.shape[0]
    sigmas_next = jnp.append(sigmas[1:], 0.0)
    keys = jax.random.split(key, num_levels)

    def body(x, inputs):
        i, k = inputs
        sigma, sigma_next = sigmas[i], sigmas_next[i]
        k_pred, k_corr = jax.random.split(k)

        def correct(x, kc):
            s = _total_score(score_fn, likelihood_score, x, i, sigma)
            z = jax.random.normal(kc, x.shape, x.dtype)
            # batch-mean norms (as Song et al.'s code): a per-chain ratio is heavy-tailed in low dimensions
            ratio = jnp.mean(jnp.linalg.norm(z, axis=-1)) / jnp.maximum(jnp.mean(jnp.linalg.norm(s, axis=-1)), 1e-12)
            eps = 2.0 * (snr * ratio) ** 2
            return x + eps * s + jnp.sqrt(2.0 * eps) * z, None

        if corrector_steps:
            x, _ = jax.lax.scan(correct, x, jax.random.split(k_corr, corrector_steps))
        var = sigma**2 - sigma_next**2
        drift = var * _total_score(score_fn, likelihood_score, x, i, sigma)
        noise = jnp.where(i < num_levels - 1, jnp.sqrt(var), 0.0) * jax.random.normal(k_pred, x.shape, x.dtype)
        return x + drift + noise, None

    x, _ = jax.lax.scan(body, x_init, (jnp.arange(num_levels, dtype=jnp.int32), keys))
    return x


def vp_from_ladder(model_fn: ModelFn, sigmas: jax.Array) -> tuple[ModelFn, Schedule]:
    """Run a noise-ladder (VE) score model in the DDPM samplers of `samplers.py` (DDPM/DDIM/ODE, gradient guidance,
    DPS): the VP chain x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps is the VE sample x_t / sqrt(abar_t) =
    x0 + sigma eps with sigma^2 = (1 - abar_t) / abar_t. So the schedule abar_t = 1 / (1 + sigma_{L-1-t}^2)
    (t = 0 the smallest level) makes every DDPM step a ladder level, and eps_hat(x_t, t) = z_hat(x_t sqrt(1 +
    sigma^2), L-1-t). Returns (eps model_fn for `sample`, its T = L step schedule)."""
    if isinstance(sigmas, jax.core.Tracer):
        raise ValueError("vp_from_ladder needs a concrete noise ladder (its schedule is built in NumPy): pass "
                         "geometric_sigmas(..., as_numpy=True), or build it outside jit")
    sig = np.asarray(sigmas, np.float64)[::-1]
    abar = 1.0 / (1.0 + sig**2)
    betas = 1.0 - abar / np.concatenate([[1.0], abar[:-1]])
    num_levels = sig.shape[0]
    scale_np = np.sqrt(1.0 + sig**2).astype(np.float32)

    def eps_fn(x, t, cond=None, use_cond=None):
        t = jnp.asarray(t, jnp.int32)
        scale = jnp.asarray(scale_np)
        s = scale[t][:, None] if t.ndim else scale[t]
        return model_fn(x * s, num_levels - 1 - t, cond, use_cond)

    return eps_fn, schedule_from_betas(betas)
