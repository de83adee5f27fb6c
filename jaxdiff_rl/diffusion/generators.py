"""One entry point for every generative family of the core, used by the actors and the optimizer alike:

- "ddpm": the DDPM family (`samplers.sample`: ancestral DDPM, DDIM, probability-flow ODE) trained by the
  eps/x0 denoising loss, T network evaluations per sample (strided DDIM/ODE: fewer);
- "flow": flow matching / rectified flow (`flow`), K Euler (K evaluations) or Heun (2K) steps;
- "consistency": consistency models (`consistency`), 1-2 evaluations per sample, trained by consistency
  training, or distilled from a teacher (e.g. a flow-matching model, `consistency.flow_teacher`).

`generate(key, gen, model_fn, shape, cond, sampler, ...)` draws samples and `generator_loss(...)` is the matching
training objective. The `SamplerConfig` carries the settings every family shares (clip_x0, clip_xt,
clip_gradient, cfg_normalize_steps, unroll); guidance (classifier-free `cfg_weight`, gradient `guide_fn` /
`guide_scale`, e.g. Q-gradient guidance with g = Q(s, .)) plugs into all three.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np

from jaxdiff_rl.diffusion.consistency import ConsistencyConfig, Teacher, consistency_loss, consistency_sample
from jaxdiff_rl.diffusion.flow import FLOW_ODES, flow_matching_loss, flow_sample
from jaxdiff_rl.diffusion.guidance import GuideFn
from jaxdiff_rl.diffusion.losses import diffusion_loss
from jaxdiff_rl.diffusion.samplers import SamplerConfig, sample
from jaxdiff_rl.diffusion.schedules import check_schedule, make_schedule

__all__ = ["GENERATORS", "GeneratorConfig", "generate", "generator_loss"]

GENERATORS = ("ddpm", "flow", "consistency")


@dataclasses.dataclass(frozen=True)
class GeneratorConfig:
    """Static generator settings.

    Attributes:
        kind: one of GENERATORS.
        steps: "ddpm": T, the schedule's length (the chain runs all T, or `SamplerConfig.num_steps` of them);
            "flow": K ODE steps; "consistency": sampling steps (1: one evaluation; 2: one re-noising at
            sigma = 0.8; more: re-noising levels geometric from 0.8 to 0.05), unless `consistency` sets them.
        schedule: DDPM noise schedule name ("vp", "linear", "cosine").
        ode: flow integrator, "euler" or "heun".
        consistency: consistency-model settings (levels N, sigma range); None: `ConsistencyConfig()` with the
            sampling levels implied by `steps`.
    """

    kind: str = "ddpm"
    steps: int = 5
    schedule: str = "vp"
    ode: str = "euler"
    consistency: ConsistencyConfig | None = None

    def __post_init__(self) -> None:
        if self.kind not in GENERATORS:
            raise ValueError(f"GeneratorConfig.kind must be one of {GENERATORS}, got {self.kind!r}")
        if isinstance(self.steps, bool) or not isinstance(self.steps, (int, np.integer)) or self.steps < 1:
            raise ValueError(f"GeneratorConfig.steps must be an integer >= 1, got {self.steps!r}")
        check_schedule(self.schedule)
        if self.ode not in FLOW_ODES:
            raise ValueError(f"GeneratorConfig.ode must be one of {FLOW_ODES}, got {self.ode!r}")
        if self.consistency is not None:
            if not isinstance(self.consistency, ConsistencyConfig):
                raise TypeError(f"GeneratorConfig.consistency must be a ConsistencyConfig or None, got "
                                f"{type(self.consistency).__name__}")
            if self.kind == "consistency" and self.consistency.sampling_steps != self.steps:
                raise ValueError(f"GeneratorConfig.steps={self.steps} but consistency.sample_sigmas gives "
                                 f"{self.consistency.sampling_steps} sampling steps")

    @property
    def consistency_config(self) -> ConsistencyConfig:
        if self.consistency is not None:
            return self.consistency
        extra = () if self.steps == 1 else tuple(float(s) for s in np.geomspace(0.8, 0.05, self.steps - 1))
        return ConsistencyConfig(sample_sigmas=extra)

    def evaluations(self, sampler: SamplerConfig = SamplerConfig()) -> int:
        """Network evaluations per sample (without guidance; classifier-free guidance doubles the batch)."""
        if self.kind == "ddpm":
            if sampler.method == "ddpm":
                return self.steps
            n = sampler.num_steps or self.steps
            return 2 * n - 1 if sampler.method == "ode" else n
        if self.kind == "flow":
            return self.steps * (2 if self.ode == "heun" else 1)
        return self.steps


def generate(
    key: jax.Array,
    gen: GeneratorConfig,
    model_fn: Any,
    shape: tuple[int, int],
    cond: jax.Array | None = None,
    sampler: SamplerConfig = SamplerConfig(),
    *,
    cfg_weight: jax.Array | float | None = None,
    guide_fn: GuideFn | None = None,
    guide_scale: jax.Array | float = 1.0,
) -> jax.Array:
    """Samples x_0 [B, D] (shape = (B, D)) from the generator `gen` with the network `model_fn(x, time, cond,
    use_cond) -> [B, D]` (eps / x0 for "ddpm", velocity for "flow", the raw F of the consistency
    parameterisation). `sampler`: the DDPM family's full settings; flow and consistency read clip_x0, clip_xt,
    clip_gradient ("straight_through" or "zero"), cfg_normalize_steps and unroll from it (a consistency step's
    output is clipped to clip_xt, else clip_x0)."""
    if len(shape) != 2:
        raise ValueError(f"shape must be (batch, dim), got {shape}")
    if gen.kind == "ddpm":
        return sample(key, model_fn, make_schedule(gen.schedule, gen.steps), shape, cond, sampler,
                      cfg_weight=cfg_weight, guide_fn=guide_fn, guide_scale=guide_scale)
    if sampler.return_trajectory:
        raise ValueError(f"SamplerConfig.return_trajectory is available for the DDPM family only, not {gen.kind!r}")
    straight = sampler.clip_gradient == "straight_through"
    if gen.kind == "flow":
        unroll = sampler.unroll if sampler.unroll is not None else (True if gen.steps <= 8 else 1)
        return flow_sample(key, model_fn, shape, cond, steps=gen.steps, ode=gen.ode, clip_x0=sampler.clip_x0,
                           clip_xt=sampler.clip_xt, straight_through=straight, cfg_weight=cfg_weight,
                           cfg_normalize_steps=sampler.cfg_normalize_steps, guide_fn=guide_fn,
                           guide_scale=guide_scale, unroll=unroll)
    box = sampler.clip_xt if sampler.clip_xt is not None else sampler.clip_x0
    return consistency_sample(key, model_fn, gen.consistency_config, shape, cond, clip_x0=box,
                              straight_through=straight, cfg_weight=cfg_weight,
                              cfg_normalize_steps=sampler.cfg_normalize_steps, guide_fn=guide_fn,
                              guide_scale=guide_scale)


def generator_loss(
    key: jax.Array,
    gen: GeneratorConfig,
    model_fn: Any,
    x0: jax.Array,
    cond: jax.Array | None = None,
    p_uncond: jax.Array | float = 0.0,
    *,
    prediction: str = "eps",
    weights: jax.Array | None = None,
    teacher: Teacher | None = None,
) -> jax.Array:
    """The training loss matching `generate`: DDPM denoising loss (`prediction` "eps"/"x0"), flow matching, or
    consistency training (distillation with a `teacher` denoiser). x0 [B, D], cond [B, C] or None -> scalar."""
    if teacher is not None and gen.kind != "consistency":
        raise ValueError(f"a teacher distils into a consistency model; GeneratorConfig.kind is {gen.kind!r}")
    if gen.kind == "ddpm":
        return diffusion_loss(key, model_fn, make_schedule(gen.schedule, gen.steps), x0, cond, p_uncond,
                              prediction=prediction, weights=weights)
    if gen.kind == "flow":
        return flow_matching_loss(key, model_fn, x0, cond, p_uncond, weights)
    return consistency_loss(key, model_fn, gen.consistency_config, x0, cond, p_uncond, weights, teacher)
