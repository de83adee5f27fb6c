"""Reverse-diffusion samplers: DDPM ancestral, DDIM (eta in [0, 1], strided steps) and the probability-flow ODE
(Heun, 2nd order), each a single `lax.scan` over denoising steps; jittable, vmappable, deterministic given a key.

The network is any `model_fn(x_t [B, D], t [B] or [] int32, cond [B, C] | None, use_cond [B] bool | None) -> [B, D]`
predicting eps (default) or x0 (`SamplerConfig.prediction`); e.g. `partial(denoiser.apply, params)`.
Classifier-free guidance (`cfg_weight`) and gradient guidance (`guide_fn`, `guide_scale`; on x_t, or on the
predicted x0 for diffusion posterior sampling, `SamplerConfig.guide_on`) plug into every sampler; both weights may
be traced arrays (sweepable). This is the one sampler used by agents and the optimizer.

Shapes: B chains of width D. Time steps are 0-indexed (see `schedules`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_rl.diffusion.guidance import GuideFn, cfg_combine, cfg_normalize, cfg_pair, clip_box, gradient_guidance
from jaxdiff_rl.diffusion.schedules import Schedule, extract, predict_eps_from_x0, predict_x0_from_eps

__all__ = ["SamplerConfig", "ModelFn", "sample", "ddpm_log_prob", "METHODS", "CLIP_GRADIENTS", "GUIDE_ON"]

ModelFn = Callable[[jax.Array, jax.Array, Any, Any], jax.Array]
METHODS = ("ddpm", "ddim", "ode")
CLIP_GRADIENTS = ("zero", "straight_through")
GUIDE_ON = ("x_t", "x0_pred")


@dataclasses.dataclass(frozen=True)
class SamplerConfig:
    """Static sampler settings (they change the compiled program).

    Attributes:
        method: "ddpm" (ancestral, all T steps), "ddim" or "ode" (probability-flow ODE, Heun).
        num_steps: DDIM/ODE steps, a strided subset of the T training steps (None: all T).
        eta: DDIM stochasticity in [0, 1] (0: deterministic DDIM, 1: DDPM-like variance).
        variance: DDPM reverse variance, "posterior" (beta_tilde, clipped log-variance; seed 003 eq. 4) or
            "beta" (beta_t; seed 003 eq. 7).
        prediction: what the network predicts, "eps" or "x0".
        clip_x0: (low, high) box for the predicted x0 at every step, or None.
        clip_xt: (low, high) box for the sample x_t after every step (RL actions), or None.
        clip_gradient: how gradients pass `clip_xt`: "zero" (the clip's own derivative, 0 outside the box, as
            `torch.clamp` in GDMOPT) or "straight_through" (forward clipped, backward identity). A chain trained
            by maximising Q through it needs the latter: once an entry leaves the box its gradient is 0 for good,
            and an untrained eps-network amplifies x_t by up to 1/sqrt(alpha_bar_t) per step, so most entries
            leave the box at once (the D2RL actor then sticks to one corner of the box for every state).
        cfg_normalize_steps: with classifier-free guidance, rescale the guided noise to the norm of the
            conditional prediction during the first k steps (DiffSG uses 5 with w = 500).
        guide_on: where gradient guidance evaluates `guide_fn`: "x_t" (classifier guidance on the noisy sample) or
            "x0_pred" (diffusion posterior sampling, DPS, Chung et al. 2023, Alg. 1: g is evaluated on the
            network's prediction x0_hat(x_t), differentiated through the network, and x_{t-1} = x'_{t-1} +
            guide_scale grad_{x_t} g(x0_hat(x_t)) after the unguided step; with g = -||y - A x0|| for an inverse
            problem y = A x0 + n, guide_scale is DPS's zeta. One extra backward pass per step).
        return_trajectory: also return {"x": [S+1, B, D] (x_T .. x_0), "x0_pred": [S, B, D]}.
        min_std: floor on the DDPM reverse kernels' std (t >= 1), in sampling and in `ddpm_log_prob` alike
            (DM-PPO's exploration floor: the schedule's last kernels are nearly deterministic, so their density
            ratios explode after small parameter changes). 0: the schedule's std.
        unroll: `lax.scan` unroll factor of the chain (True: all steps; None: all steps if there are at most 8,
            else 1). XLA's CPU backend runs the backward pass of a rolled scan (residuals stacked and sliced per
            step) about 2.5x slower than the unrolled chain (D2SAC actor, T = 5, batch 512: 44 ms vs 17 ms);
            the default unrolls the short RL chains and keeps long chains' (DiffSG's T = 20) compile time low.

    Note: deterministic samplers (DDIM with eta = 0, the ODE) multiply the network's noise error at the first
    step by about sqrt(1/alpha_bar_T); with the cosine schedule's clipped last beta (alpha_bar_T ~ 1e-6) that is
    ~1000x, so pair them with "vp"/"linear" schedules or `clip_x0` (DDPM is robust to it).
    """

    method: str = "ddpm"
    num_steps: int | None = None
    eta: float = 0.0
    variance: str = "posterior"
    prediction: str = "eps"
    clip_x0: tuple[float, float] | None = None
    clip_xt: tuple[float, float] | None = None
    cfg_normalize_steps: int = 0
    clip_gradient: str = "zero"
    min_std: float = 0.0
    guide_on: str = "x_t"
    return_trajectory: bool = False
    unroll: int | bool | None = None

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"SamplerConfig.method must be one of {METHODS}, got {self.method!r}")
        if self.num_steps is not None:
            if isinstance(self.num_steps, bool) or not isinstance(self.num_steps, int) or self.num_steps < 1:
                raise ValueError(f"SamplerConfig.num_steps must be an integer >= 1 or None, got {self.num_steps!r}")
            if self.method == "ddpm":
                raise ValueError("SamplerConfig.num_steps: DDPM runs all T steps; use method='ddim' or 'ode' for fewer")
        if not (isinstance(self.eta, (int, float)) and 0.0 <= self.eta <= 1.0):
            raise ValueError(f"SamplerConfig.eta must be in [0, 1], got {self.eta!r}")
        if self.variance not in ("posterior", "beta"):
            raise ValueError(f"SamplerConfig.variance must be 'posterior' or 'beta', got {self.variance!r}")
        if self.prediction not in ("eps", "x0"):
            raise ValueError(f"SamplerConfig.prediction must be 'eps' or 'x0', got {self.prediction!r}")
        for name in ("clip_x0", "clip_xt"):
            box = getattr(self, name)
            if box is not None and (len(box) != 2 or not float(box[0]) < float(box[1])):
                raise ValueError(f"SamplerConfig.{name} must be None or (low, high) with low < high, got {box!r}")
        if self.guide_on not in GUIDE_ON:
            raise ValueError(f"SamplerConfig.guide_on must be one of {GUIDE_ON}, got {self.guide_on!r}")
        if self.clip_gradient not in CLIP_GRADIENTS:
            raise ValueError(f"SamplerConfig.clip_gradient must be one of {CLIP_GRADIENTS}, got {self.clip_gradient!r}")
        if self.unroll is not None and not isinstance(self.unroll, bool) and (
            not isinstance(self.unroll, int) or self.unroll < 1
        ):
            raise ValueError(f"SamplerConfig.unroll must be None, a bool or an integer >= 1, got {self.unroll!r}")
        if not isinstance(self.min_std, (int, float)) or not 0.0 <= self.min_std < 10.0:
            raise ValueError(f"SamplerConfig.min_std must be in [0, 10), got {self.min_std!r}")
        if not isinstance(self.cfg_normalize_steps, int) or self.cfg_normalize_steps < 0:
            raise ValueError(f"SamplerConfig.cfg_normalize_steps must be an integer >= 0, got {self.cfg_normalize_steps!r}")

    def timesteps(self, num_train_steps: int) -> tuple[np.ndarray, np.ndarray]:
        """(t, t_prev) int32 arrays in sampling order; t_prev = -1 marks the final step to x0."""
        n = num_train_steps if self.num_steps is None else self.num_steps
        if n > num_train_steps:
            raise ValueError(f"SamplerConfig.num_steps={n} exceeds the schedule's T={num_train_steps}")
        ts = np.unique(np.round(np.linspace(0, num_train_steps - 1, n)).astype(np.int32))[::-1]
        return ts, np.append(ts[1:], -1).astype(np.int32)


def _check_weight(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, jax.core.Tracer) and not np.all(np.isfinite(np.asarray(value))):
        raise ValueError(f"{name} must be finite, got {value!r}")


def _predict(
    model_fn: ModelFn,
    schedule: Schedule,
    config: SamplerConfig,
    x: jax.Array,
    t: jax.Array,
    cond: Any,
    cfg_weight: Any,
    guide_fn: GuideFn | None,
    guide_scale: Any,
    step_index: jax.Array,
) -> tuple[jax.Array, jax.Array, jax.Array | None]:
    """Guided (eps, x0) estimates at (x [N, D], t [N] or scalar), and the DPS step scale * grad_x g(x0_hat(x))
    [N, D] to add after the reverse step (None unless `guide_on="x0_pred"`); step_index [N] counts steps."""

    def to_eps(out: jax.Array, x_in: jax.Array, t_in: jax.Array) -> jax.Array:
        return out if config.prediction == "eps" else predict_eps_from_x0(schedule, x_in, t_in, out)

    def unguided(x: jax.Array) -> jax.Array:
        if cfg_weight is None:
            return to_eps(model_fn(x, t, cond, None), x, t)
        out_cond, out_uncond = cfg_pair(model_fn, x, t, cond)
        eps_cond, eps_uncond = to_eps(out_cond, x, t), to_eps(out_uncond, x, t)
        eps = cfg_combine(eps_cond, eps_uncond, cfg_weight)
        if config.cfg_normalize_steps > 0:
            early = (step_index < config.cfg_normalize_steps)[:, None]
            eps = jnp.where(early, cfg_normalize(eps, eps_cond), eps)
        return eps

    dps_step = None
    if guide_fn is not None and config.guide_on == "x0_pred":
        # DPS: grad_x g(x0_hat(x)) through the network, in the same pass that gives eps
        def guide_of_x(x_in: jax.Array) -> tuple[jax.Array, jax.Array]:
            eps_in = unguided(x_in)
            return jnp.sum(guide_fn(predict_x0_from_eps(schedule, x_in, t, eps_in), cond)), eps_in

        grad, eps = jax.grad(guide_of_x, has_aux=True)(x)
        dps_step = jnp.asarray(guide_scale, eps.dtype) * grad
    else:
        eps = unguided(x)
        if guide_fn is not None:
            eps = gradient_guidance(eps, x, cond, guide_fn, guide_scale,
                                    extract(schedule.sqrt_one_minus_alpha_bars, t, x))
    x0 = predict_x0_from_eps(schedule, x, t, eps)
    if config.clip_x0 is not None:
        x0 = jnp.clip(x0, *config.clip_x0)
        eps = predict_eps_from_x0(schedule, x, t, x0)
    return eps, x0, dps_step


def _ddpm_mean_std(schedule: Schedule, config: SamplerConfig, x: jax.Array, x0: jax.Array, t: jax.Array):
    """Reverse kernel N(mean, std^2) of DDPM: mean [N, D], std [N, 1] (std is used only for t > 0)."""
    mean = extract(schedule.posterior_mean_coef1, t, x) * x0 + extract(schedule.posterior_mean_coef2, t, x) * x
    if config.variance == "posterior":
        std = jnp.exp(0.5 * extract(schedule.posterior_log_variance_clipped, t, x))
    else:
        std = jnp.sqrt(extract(schedule.betas, t, x))
    if config.min_std > 0:
        std = jnp.maximum(std, config.min_std)
    return mean, std


def _abar(schedule: Schedule, t: jax.Array) -> jax.Array:
    """alpha_bar at t, with alpha_bar(-1) = 1 (clean data)."""
    return jnp.where(t >= 0, schedule.alpha_bars[jnp.maximum(t, 0)], 1.0)


def sample(
    key: jax.Array,
    model_fn: ModelFn,
    schedule: Schedule,
    shape: tuple[int, int],
    cond: jax.Array | None = None,
    config: SamplerConfig = SamplerConfig(),
    *,
    cfg_weight: jax.Array | float | None = None,
    guide_fn: GuideFn | None = None,
    guide_scale: jax.Array | float = 1.0,
    x_init: jax.Array | None = None,
    start_step: int | None = None,
    inpaint: tuple[jax.Array, jax.Array] | None = None,
) -> jax.Array | tuple[jax.Array, dict[str, jax.Array]]:
    """Draw B samples of width D by running the reverse chain from x_T ~ N(0, I) (or from `x_init`).

    Args:
        key: PRNG key (fresh noise for x_T and every stochastic step).
        model_fn: the network, see the module docstring.
        schedule: the training schedule (T = schedule.num_steps).
        shape: (B, D).
        cond: [B, C] condition (state / problem vector) or None.
        config: static settings, `SamplerConfig`.
        cfg_weight: classifier-free guidance weight w (None: plain conditional sampling; needs `cond`).
        guide_fn: g(x, cond) -> [B] to ascend (gradient guidance), with weight `guide_scale`; evaluated on x_t, or
            on the predicted x0 with `config.guide_on="x0_pred"` (DPS, for inverse problems).
        x_init: optional x_T [B, D] instead of drawing it (with `start_step`: x_{start_step}).
        start_step: static 0-indexed step s < T at which the chain starts, e.g. x_init = q_sample(x0, s): only the
            steps t <= s run (SDEdit-style partial denoising; DDPM's s + 1 steps). None: all steps (t = T-1 .. 0).
            With a strided DDIM/ODE subset, s must be one of its steps.
        inpaint: (mask [D] or [B, D] bool, values [B, D]): the masked entries are known (Diffuser's conditioning,
            e.g. a trajectory's current state) and are overwritten with `values` in x_T and after every step, so
            the chain denoises the other entries consistently with them and returns them exactly.
    Returns:
        x_0 [B, D], or (x_0, trajectory) with `config.return_trajectory`.
    """
    if len(shape) != 2:
        raise ValueError(f"shape must be (batch, dim), got {shape}")
    if cfg_weight is not None and cond is None:
        raise ValueError("cfg_weight needs a condition: pass cond [B, C]")
    _check_weight("cfg_weight", cfg_weight)
    _check_weight("guide_scale", guide_scale)
    batch, _ = shape
    ts, ts_prev = config.timesteps(schedule.num_steps)
    if start_step is not None:
        if isinstance(start_step, bool) or not isinstance(start_step, (int, np.integer)) or not (
            0 <= start_step < schedule.num_steps
        ):
            raise ValueError(f"start_step must be a static integer in [0, {schedule.num_steps - 1}] (the schedule's "
                             f"steps), got {start_step!r}")
        if start_step not in ts:
            raise ValueError(f"start_step={start_step} is not one of the sampler's steps {ts.tolist()}")
        if x_init is None:
            raise ValueError("start_step needs x_init: the noised data x_{start_step} [B, D] to start from")
        keep = ts <= start_step
        ts, ts_prev = ts[keep], ts_prev[keep]
    key_init, key_steps = jax.random.split(key)
    x = jax.random.normal(key_init, shape, jnp.float32) if x_init is None else x_init
    if inpaint is not None:
        mask, known = inpaint
        mask = jnp.asarray(mask, bool)
        if mask.shape[-1] != shape[1] or mask.ndim not in (1, 2):
            raise ValueError(f"inpaint mask must have shape [D] or [B, D] with D = {shape[1]}, got {mask.shape}")
        known = jnp.broadcast_to(jnp.asarray(known, jnp.float32), shape)
        condition = lambda v: jnp.where(mask, known, v)
    else:
        condition = lambda v: v
    x = condition(x)
    step_keys = jax.random.split(key_steps, len(ts))
    # t is passed as a scalar: every chain is at the same step, so the time embedding is computed once
    predict = lambda x, t, i: _predict(
        model_fn, schedule, config, x, jnp.asarray(t, jnp.int32), cond, cfg_weight, guide_fn, guide_scale,
        jnp.full((batch,), i),
    )

    def body(x, inputs):
        t, t_prev, k, i = inputs
        eps, x0, dps_step = predict(x, t, i)
        z = jax.random.normal(k, x.shape, x.dtype)
        if config.method == "ddpm":
            mean, std = _ddpm_mean_std(schedule, config, x, x0, jnp.full((batch,), t))
            x_next = mean + jnp.where(t > 0, 1.0, 0.0) * std * z
        elif config.method == "ddim":
            abar, abar_prev = schedule.alpha_bars[t], _abar(schedule, t_prev)
            sigma = config.eta * jnp.sqrt((1.0 - abar_prev) / (1.0 - abar) * (1.0 - abar / abar_prev))
            direction = jnp.sqrt(jnp.maximum(1.0 - abar_prev - sigma**2, 0.0))
            x_next = jnp.sqrt(abar_prev) * x0 + direction * eps + sigma * z
        else:  # probability-flow ODE in DDIM coordinates: d(x / sqrt(abar)) = eps d(sqrt(1/abar - 1)), Heun
            abar, abar_prev = schedule.alpha_bars[t], _abar(schedule, t_prev)
            s, s_prev = jnp.sqrt(1.0 / abar - 1.0), jnp.sqrt(1.0 / abar_prev - 1.0)
            xbar = x / jnp.sqrt(abar)
            xbar_euler = xbar + (s_prev - s) * eps
            x_euler = xbar_euler * jnp.sqrt(abar_prev)
            eps_next, _, _ = predict(x_euler, jnp.maximum(t_prev, 0), i + 1)
            xbar_heun = xbar + (s_prev - s) * 0.5 * (eps + eps_next)
            # the last step ends at sigma = 0 where the network is not defined: Euler there
            x_next = jnp.where(t_prev >= 0, xbar_heun * jnp.sqrt(abar_prev), x_euler)
        if dps_step is not None:  # DPS Alg. 1: x_{t-1} = x'_{t-1} + zeta grad_{x_t} g(x0_hat(x_t))
            x_next = x_next + dps_step
        if config.clip_xt is not None:
            x_next = clip_box(x_next, config.clip_xt, config.clip_gradient == "straight_through")
        x_next = condition(x_next)
        return x_next, (x_next, x0)

    steps = (jnp.asarray(ts), jnp.asarray(ts_prev), step_keys, jnp.arange(len(ts)))
    unroll = config.unroll if config.unroll is not None else (True if len(ts) <= 8 else 1)
    x_final, (xs, x0s) = jax.lax.scan(body, x, steps, unroll=unroll)
    if not config.return_trajectory:
        return x_final
    return x_final, {"x": jnp.concatenate([x[None], xs]), "x0_pred": x0s}


def ddpm_log_prob(
    model_fn: ModelFn,
    schedule: Schedule,
    trajectory: jax.Array,
    cond: jax.Array | None = None,
    config: SamplerConfig = SamplerConfig(),
    *,
    cfg_weight: jax.Array | float | None = None,
    guide_fn: GuideFn | None = None,
    guide_scale: jax.Array | float = 1.0,
    last_steps: int | None = None,
) -> jax.Array:
    """Exact log-likelihood of a DDPM chain under the Gaussian reverse kernels (for DM-PPO).

    `last_steps` = K (static): only the kernels of the last K denoising steps (t < K) are counted, DPPO's
    "fine-tune the last K steps" (the earlier kernels are treated as fixed); None: all steps.

    log p(x_{T-1}, ..., x_0 | x_T) = sum over the stochastic steps t >= 1 of log N(x_{t-1}; mu_theta(x_t, t),
    sigma_t^2 I); the final step t = 0 is deterministic (no noise is added) and contributes nothing. All T
    network evaluations run as one batched call, so the result is differentiable in the parameters.

    Args:
        trajectory: [T+1, B, D], x_T .. x_0 as returned by `sample(..., return_trajectory=True)["x"]`.
    Returns:
        [B] log-probabilities (nats).
    """
    if config.method != "ddpm":
        raise ValueError("ddpm_log_prob needs a DDPM chain (SamplerConfig.method='ddpm')")
    if config.clip_xt is not None:
        raise ValueError("ddpm_log_prob: SamplerConfig.clip_xt makes the reverse kernels non-Gaussian; sample without it")
    if guide_fn is not None and config.guide_on == "x0_pred":
        raise ValueError("ddpm_log_prob does not model the DPS step (SamplerConfig.guide_on='x0_pred'): its kernels' "
                         "means would lack the guidance shift; use guide_on='x_t'")
    num_steps = schedule.num_steps
    if trajectory.ndim != 3 or trajectory.shape[0] != num_steps + 1:
        raise ValueError(f"trajectory must be [T+1, B, D] with T={num_steps}, got shape {trajectory.shape}")
    _, batch, dim = trajectory.shape
    ts = jnp.repeat(jnp.arange(num_steps - 1, -1, -1, dtype=jnp.int32), batch)  # [T*B], sampling order
    x = trajectory[:-1].reshape(num_steps * batch, dim)
    target = trajectory[1:].reshape(num_steps * batch, dim)
    flat_cond = None if cond is None else jnp.tile(cond, (num_steps, 1))
    step_index = jnp.repeat(jnp.arange(num_steps), batch)
    _, x0, _ = _predict(model_fn, schedule, config, x, ts, flat_cond, cfg_weight, guide_fn, guide_scale, step_index)
    return _chain_log_prob(schedule, config, x, target, x0, ts, last_steps).reshape(num_steps, batch).sum(0)


def _chain_log_prob(schedule: Schedule, config: SamplerConfig, x: jax.Array, target: jax.Array, x0: jax.Array,
                    ts: jax.Array, last_steps: int | None) -> jax.Array:
    """Per-kernel log N(target; mean(x, x0, t), std_t^2 I) summed over D, 0 where t = 0 or t >= last_steps."""
    mean, std = _ddpm_mean_std(schedule, config, x, x0, ts)
    logp = -0.5 * ((target - mean) / std) ** 2 - jnp.log(std) - 0.5 * math.log(2 * math.pi)
    counted = ts > 0 if last_steps is None else (ts > 0) & (ts < last_steps)
    return jnp.where(counted[:, None], logp, 0.0).sum(-1)


def ddpm_trajectory_log_prob(schedule: Schedule, trajectory: dict[str, jax.Array], config: SamplerConfig,
                             last_steps: int | None = None) -> jax.Array:
    """`ddpm_log_prob` of a chain just drawn by `sample(..., return_trajectory=True)`, from the x0 predictions
    the sampler already made (no network evaluation; equal to `ddpm_log_prob` under the sampling parameters, but
    not differentiable in them). trajectory: {"x": [T+1, B, D], "x0_pred": [T, B, D]} -> [B] (nats)."""
    if config.method != "ddpm" or config.clip_xt is not None:
        raise ValueError("ddpm_trajectory_log_prob needs a DDPM chain without clip_xt")
    xs, x0s = trajectory["x"], trajectory["x0_pred"]
    steps, batch, dim = x0s.shape
    ts = jnp.repeat(jnp.arange(steps - 1, -1, -1, dtype=jnp.int32), batch)
    flat = lambda a: a.reshape(steps * batch, dim)
    logp = _chain_log_prob(schedule, config, flat(xs[:-1]), flat(xs[1:]), flat(x0s), ts, last_steps)
    return logp.reshape(steps, batch).sum(0)
