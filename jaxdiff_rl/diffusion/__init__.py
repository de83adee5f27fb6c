"""Diffusion core (DDPM family, flow matching, consistency models) shared by every diffusion agent, the generative optimizer and the D2RL exploration networks."""

from jaxdiff_rl.diffusion.consistency import ConsistencyConfig, consistency_loss, consistency_sample, flow_teacher
from jaxdiff_rl.diffusion.ema import ema_decay_warmup, ema_update
from jaxdiff_rl.diffusion.flow import flow_matching_loss, flow_sample
from jaxdiff_rl.diffusion.generators import GENERATORS, GeneratorConfig, generate, generator_loss
from jaxdiff_rl.diffusion.guidance import cfg_combine, cfg_normalize, gradient_guidance
from jaxdiff_rl.diffusion.losses import diffusion_loss
from jaxdiff_rl.diffusion.samplers import METHODS, SamplerConfig, ddpm_log_prob, ddpm_trajectory_log_prob, sample
from jaxdiff_rl.diffusion.schedules import (
    SCHEDULES,
    Schedule,
    make_schedule,
    predict_eps_from_x0,
    predict_x0_from_eps,
    q_posterior,
    q_sample,
)

__all__ = [
    "Schedule", "make_schedule", "SCHEDULES", "q_sample", "q_posterior", "predict_x0_from_eps",
    "predict_eps_from_x0", "SamplerConfig", "METHODS", "sample", "ddpm_log_prob", "ddpm_trajectory_log_prob", "diffusion_loss",
    "cfg_combine", "cfg_normalize", "gradient_guidance", "ema_update", "ema_decay_warmup",
    "GENERATORS", "GeneratorConfig", "generate", "generator_loss", "flow_matching_loss", "flow_sample",
    "ConsistencyConfig", "consistency_loss", "consistency_sample", "flow_teacher",
]
