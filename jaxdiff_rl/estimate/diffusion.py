"""Diffusion-prior MIMO channel estimation by posterior sampling (Arvinte & Tamir, IEEE TWC 2022; seed 001 sec. III):
a score network learns the distribution of channels (denoising score matching over a ladder of noise levels,
`jaxdiff_rl.diffusion.score`), and an estimate is the average of a few samples of p(H | Y) drawn by annealed
Langevin dynamics (or the reverse SDE) with the pilot likelihood's score added at every step.

Channels are handled real-stacked (`envs.mimo_channels.to_real`: x = [Re vec H, Im vec H], D = 2 N_r N_t). With
complex noise CN(0, sigma^2) the likelihood score is grad_x log p(y | x) = A_r^T (y_r - A_r x) / (sigma^2 / 2),
A_r the real form of A = I kron P^T. At noise level sigma_i the sample x is H + sigma_i z, so (as in the paper)
the likelihood is annealed: its per-component variance becomes sigma^2 / 2 + sigma_i^2 ||A||_row^2 (the pilots'
unit-norm columns make A's rows unit-norm), which is exact in the limit sigma_i -> 0.

The score network is the shared `Denoiser`, called with the noise-level index as its time step.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from envs.mimo_channels import from_real, pilot_operator, to_real
from jaxdiff_rl.diffusion.ema import ema_decay_warmup, ema_update
from jaxdiff_rl.diffusion.samplers import SamplerConfig, sample
from jaxdiff_rl.diffusion.score import (annealed_langevin, dsm_loss, geometric_sigmas, reverse_sde, score_from_model,
                                        vp_from_ladder)
from jaxdiff_rl.nets import Denoiser

__all__ = ["ScorePriorConfig", "ScorePrior", "real_operator", "likelihood_score", "train_score_prior",
           "posterior_estimate", "langevin_step_sizes", "dps_guide", "diffusion_estimate", "gaussian_prior_score",
           "ncsn_sigma_max", "SAMPLERS"]

SAMPLERS = ("langevin", "sde", "dps")


@dataclasses.dataclass(frozen=True)
class ScorePriorConfig:
    """Score network and training settings (static).

    Attributes:
        n_r, n_t: antennas; the data width is D = 2 n_r n_t.
        hidden_dims, time_dim, activation: the `Denoiser` trunk (Mish MLP) and the level embedding.
        num_levels, sigma_max, sigma_min: the geometric noise ladder (sigma_max ~ the largest distance between
            training channels, NCSN's rule; sigma_min below the pilot noise of the highest SNR of interest).
        train_steps, batch_size, lr: Adam with a cosine decay to 0; ema: parameter EMA used for sampling.
        sigma_data: std of one real-stacked channel component (1/sqrt(2) for E|H_ij|^2 = 1), for the input
            scaling of `preconditioned_model`.
    """

    n_r: int
    n_t: int
    hidden_dims: tuple[int, ...] = (512, 512, 512)
    time_dim: int = 32
    activation: str = "mish"
    num_levels: int = 40
    sigma_max: float = 16.0
    sigma_min: float = 0.01
    train_steps: int = 10_000
    batch_size: int = 256
    lr: float = 1e-3
    ema: float = 0.999
    sigma_data: float = math.sqrt(0.5)

    def __post_init__(self) -> None:
        for name in ("n_r", "n_t", "train_steps", "batch_size", "num_levels"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ScorePriorConfig.{name} must be an integer >= 1, got {v!r}")
        if self.num_levels < 2:
            raise ValueError(f"ScorePriorConfig.num_levels must be >= 2, got {self.num_levels}")
        if not 0.0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"ScorePriorConfig needs 0 < sigma_min < sigma_max, got {self.sigma_min}, {self.sigma_max}")
        if not 0.0 < self.lr < 1.0:
            raise ValueError(f"ScorePriorConfig.lr must be in (0, 1), got {self.lr!r}")
        if not 0.0 <= self.ema < 1.0:
            raise ValueError(f"ScorePriorConfig.ema must be in [0, 1), got {self.ema!r}")

    @property
    def dim(self) -> int:
        return 2 * self.n_r * self.n_t

    def network(self) -> Denoiser:
        return Denoiser(out_dim=self.dim, hidden_dims=self.hidden_dims, time_dim=self.time_dim,
                        activation=self.activation)

    def sigmas(self, as_numpy: bool = False) -> jax.Array:
        return geometric_sigmas(self.sigma_max, self.sigma_min, self.num_levels, as_numpy)


@dataclasses.dataclass(frozen=True)
class ScorePrior:
    """A trained prior: its config and (EMA) parameters. `model_fn` is the noise predictor z_hat(x, level)."""

    config: ScorePriorConfig
    params: Any

    def model_fn(self, params: Any | None = None) -> Callable:
        return preconditioned_model(self.config, self.params if params is None else params)


def preconditioned_model(config: ScorePriorConfig, params: Any) -> Callable:
    """The noise predictor in EDM's parametrisation (Karras et al. 2022): the denoiser is
    D(x) = c_skip x + c_out F(c_in x, i) with c_in = 1 / sqrt(sigma^2 + sigma_d^2), c_skip = sigma_d^2 c_in^2,
    c_out = sigma sigma_d c_in, so z_hat = (x - D) / sigma = sigma c_in^2 x - sigma_d c_in F(c_in x, i).

    Why: a plain z-predictor must learn z_hat ~ sigma x / v at small sigma, a term worth ~sigma^2 in the loss, and its
    errors reach the score divided by sigma: the Langevin chains then drift outwards at the low levels (measured:
    samples at 3x the data's rms on clustered channels). Here F = 0 is already the score of N(0, sigma_d^2 I), and
    the network's input is unit-variance at every level (no Mish saturation at sigma_max ~ 40)."""
    net, sigmas, sd = config.network(), config.sigmas(), config.sigma_data

    def model_fn(x, i, cond=None, use_cond=None):
        sigma = sigmas[i]
        sigma = sigma[:, None] if jnp.ndim(sigma) else sigma
        c_in = jax.lax.rsqrt(sigma**2 + sd**2)
        return sigma * c_in**2 * x - sd * c_in * net.apply(params, c_in * x, i)

    return model_fn


def _real_form(m: jax.Array) -> jax.Array:
    """[[Re M, -Im M], [Im M, Re M]] float32: M acting on real-stacked vectors [Re v, Im v]."""
    return jnp.block([[m.real, -m.imag], [m.imag, m.real]]).astype(jnp.float32)


def real_operator(pilots: jax.Array, n_r: int) -> jax.Array:
    """Real form of A = I kron P^T, float32 [2 N_r N_p, 2 N_r N_t]."""
    return _real_form(pilot_operator(pilots, n_r))


def likelihood_score(y: jax.Array, pilots: jax.Array, noise_var: jax.Array | float) -> Callable:
    """The annealed pilot-likelihood score (module docstring) for a batch y [B, N_r, N_p] complex:
    returns (x [B, D], sigma []) -> [B, D]."""
    if not jnp.iscomplexobj(y):
        raise TypeError(f"y must be complex [B, N_r, N_p], got dtype {jnp.asarray(y).dtype}")
    a_r = real_operator(pilots, y.shape[1])
    y_r = to_real(y)
    half_var = 0.5 * jnp.asarray(noise_var, jnp.float32)
    return lambda x, sigma: ((y_r - x @ a_r.T) @ a_r) / (half_var + sigma**2)


def _check_channels(channels: jax.Array, config: ScorePriorConfig) -> None:
    if not jnp.iscomplexobj(channels):
        raise TypeError(f"channels must be complex [B, N_r, N_t], got dtype {jnp.asarray(channels).dtype}")
    if channels.ndim != 3 or channels.shape[1:] != (config.n_r, config.n_t):
        raise ValueError(f"channels must be [B, {config.n_r}, {config.n_t}] (ScorePriorConfig.n_r, n_t), got "
                         f"{channels.shape}")


def train_score_prior(key: jax.Array, channels: jax.Array, config: ScorePriorConfig,
                      progress: Callable[[int, float], None] | None = None) -> tuple[ScorePrior, np.ndarray]:
    """Fit the score network to training channels [B, N_r, N_t] complex by DSM; one jitted `lax.scan` over
    `train_steps` minibatch steps (drawn with replacement). Returns (prior with EMA params, losses [train_steps]).
    `progress(step, loss)` (host callback, every 1000 steps) is optional."""
    _check_channels(channels, config)
    data = to_real(channels)
    net = config.network()
    sigmas = config.sigmas()
    k_init, k_train = jax.random.split(key)
    params = net.init(k_init, data[:2], jnp.zeros(2, jnp.int32))
    opt = optax.adam(optax.cosine_decay_schedule(config.lr, config.train_steps))

    def loss_fn(p, k):
        k_b, k_l = jax.random.split(k)
        x0 = data[jax.random.randint(k_b, (config.batch_size,), 0, data.shape[0])]
        return dsm_loss(k_l, preconditioned_model(config, p), sigmas, x0)

    def step(carry, inputs):
        p, ema, s = carry
        k, n = inputs
        loss, grads = jax.value_and_grad(loss_fn)(p, k)
        updates, s = opt.update(grads, s, p)
        p = optax.apply_updates(p, updates)
        ema = ema_update(ema, p, ema_decay_warmup(config.ema, n))
        if progress is not None:
            jax.lax.cond(n % 1000 == 999, lambda: jax.debug.callback(progress, n + 1, loss), lambda: None)
        return (p, ema, s), loss

    @jax.jit
    def run(p):
        steps = (jax.random.split(k_train, config.train_steps), jnp.arange(config.train_steps))
        (p, ema, _), losses = jax.lax.scan(step, (p, p, opt.init(p)), steps)
        return ema, losses

    ema, losses = run(params)
    return ScorePrior(config, ema), np.asarray(losses)


def dps_guide(y: jax.Array, pilots: jax.Array) -> Callable:
    """DPS's data-consistency term for real-stacked channels: g(x0) = -||y - A x0|| per chain (its gradient is
    DPS's step normalised by the residual norm, Chung et al. 2023 Alg. 1). y [M, N_r, N_p] complex ->
    g(x0 [M, D], cond) -> [M]."""
    a_r = real_operator(pilots, y.shape[1])
    y_r = to_real(y)
    return lambda x0, cond=None: -jnp.sqrt(jnp.sum((y_r - x0 @ a_r.T) ** 2, axis=-1) + 1e-12)


def langevin_step_sizes(step_size: float, sigmas: jax.Array, pilots: jax.Array,
                        noise_var: jax.Array | float) -> jax.Array:
    """Per-level Langevin steps [L] for the posterior: step_size / (1 + ||A||_2^2 sigma_i^2 / (sigma^2 / 2 +
    sigma_i^2)). Why: the prior's curvature at level i is ~1 / sigma_i^2 (NCSN's step a_i ~ sigma_i^2 is tuned for
    it), and the annealed likelihood adds up to ||A||_2^2 / (sigma^2 / 2 + sigma_i^2); with many pilots at high SNR
    the sum passes the stability limit 2 / a_i and the chains diverge (measured: N_p = N_t = 16 QPSK pilots,
    ||P||_2 = 1.8, 10 dB: NMSE +28 dB with a constant step, -8.8 dB with a 5x smaller one). The factor is 1 when
    the likelihood is weak, so it only shrinks the steps that would be unstable."""
    lam = jnp.linalg.norm(pilots, 2) ** 2  # ||I kron P^T||_2 = ||P||_2
    s2 = jnp.asarray(sigmas) ** 2
    return step_size / (1.0 + lam * s2 / (0.5 * jnp.asarray(noise_var, jnp.float32) + s2))


def posterior_estimate(key: jax.Array, score_fn: Callable, sigmas: jax.Array, y: jax.Array, pilots: jax.Array,
                       noise_var: jax.Array | float, n_t: int, num_samples: int = 4, sampler: str = "langevin",
                       steps_per_level: int = 3, step_size: float = 2e-5, corrector_steps: int = 1,
                       snr: float = 0.16, guide_scale: float | jax.Array = 1.0) -> jax.Array:
    """MMSE-style estimate from any prior score: the average of `num_samples` posterior samples of H given
    y [B, N_r, N_p] -> [B, N_r, N_t] complex64. score_fn(x [M, D], level []) is the prior's score on real-stacked
    channels at noise level sigmas[level]. Samplers:
    - "langevin": annealed Langevin (`steps_per_level`, `step_size` shrunk per level by `langevin_step_sizes`)
      with the annealed likelihood score;
    - "sde": reverse VE-SDE with `corrector_steps` Langevin corrections at signal-to-noise `snr`;
    - "dps": the shared DDPM sampler on the ladder's VP schedule (`vp_from_ladder`) with DPS guidance
      (`SamplerConfig(guide_on="x0_pred")`, g = `dps_guide`, step `guide_scale`; no noise level needed)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if isinstance(num_samples, bool) or not isinstance(num_samples, int) or num_samples < 1:
        raise ValueError(f"num_samples must be an integer >= 1, got {num_samples!r}")
    if not jnp.iscomplexobj(y) or y.ndim != 3:
        raise ValueError(f"y must be complex [B, N_r, N_p], got {jnp.asarray(y).dtype} {y.shape}")
    if not jnp.iscomplexobj(pilots) or pilots.shape != (n_t, y.shape[2]):
        raise ValueError(f"pilots must be complex [N_t = {n_t}, N_p = {y.shape[2]}], got {jnp.asarray(pilots).dtype} "
                         f"{pilots.shape}")
    batch, n_r = y.shape[0], y.shape[1]
    dim = 2 * n_r * n_t
    # every posterior sample is its own chain: tile the observations
    y_tiled = jnp.tile(y, (num_samples, 1, 1))
    k_init, k_run = jax.random.split(key)
    if sampler == "dps":
        sig = jnp.asarray(sigmas)
        z_model = lambda x, i, cond=None, use_cond=None: -sig[i] * score_fn(x, i)
        eps_model, schedule = vp_from_ladder(z_model, sigmas)
        x = sample(k_run, eps_model, schedule, (num_samples * batch, dim), config=SamplerConfig(guide_on="x0_pred"),
                   guide_fn=dps_guide(y_tiled, pilots), guide_scale=guide_scale)
    else:
        lik = likelihood_score(y_tiled, pilots, noise_var)
        x_init = sigmas[0] * jax.random.normal(k_init, (num_samples * batch, dim))
        if sampler == "langevin":
            steps = langevin_step_sizes(step_size, sigmas, pilots, noise_var)
            x = annealed_langevin(k_run, score_fn, x_init, sigmas, steps_per_level, steps, likelihood_score=lik)
        else:
            x = reverse_sde(k_run, score_fn, x_init, sigmas, corrector_steps, snr, likelihood_score=lik)
    return jnp.mean(from_real(x, n_r, n_t).reshape(num_samples, batch, n_r, n_t), axis=0)


def diffusion_estimate(key: jax.Array, prior: ScorePrior, y: jax.Array, pilots: jax.Array,
                       noise_var: jax.Array | float, num_samples: int = 4, sampler: str = "langevin",
                       **sampler_kw: Any) -> jax.Array:
    """`posterior_estimate` with a trained `ScorePrior`: y [B, N_r, N_p] -> [B, N_r, N_t] complex64."""
    config = prior.config
    if y.ndim != 3 or y.shape[1] != config.n_r:
        raise ValueError(f"y must be [B, N_r = {config.n_r}, N_p], got {y.shape}")
    sigmas = config.sigmas(as_numpy=True)  # concrete inside jit (the DPS schedule is built from it)
    score_fn = score_from_model(prior.model_fn(), jnp.asarray(sigmas))
    return posterior_estimate(key, score_fn, sigmas, y, pilots, noise_var, config.n_t, num_samples, sampler,
                              **sampler_kw)


def gaussian_prior_score(cov: jax.Array, sigmas: jax.Array) -> Callable:
    """Exact score of CN(0, C) convolved with the ladder's noise, on real-stacked channels: -(C_r + sigma_i^2 I)^-1 x
    with C_r = 1/2 [[Re C, -Im C], [Im C, Re C]] (the reference prior of the tests; the LMMSE estimator's model)."""
    c_r = 0.5 * _real_form(jnp.asarray(cov, jnp.complex64))
    eye = jnp.eye(c_r.shape[0], dtype=jnp.float32)
    precisions = jnp.linalg.inv(c_r[None] + sigmas[:, None, None] ** 2 * eye[None])  # [L, D, D]
    return lambda x, i: -x @ precisions[i]


def ncsn_sigma_max(channels: jax.Array, max_pairs: int = 2048) -> float:
    """NCSN's rule for sigma_max: the largest Euclidean distance between (up to `max_pairs`) training channels,
    real-stacked."""
    x = np.asarray(to_real(channels[:max_pairs]))
    sq = (x**2).sum(1)
    d2 = sq[:, None] + sq[None, :] - 2 * x @ x.T
    return float(math.sqrt(max(d2.max(), 1e-12)))
