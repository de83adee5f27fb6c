"""Diffusion planning (seed 000 sec. II-B7; issue 25): trajectory diffusion over [horizon, state + action] with the
temporal U-Net (`unet`), conditioned by in-painting and guided by a learned return through the shared sampler
(`jaxdiff_rl.diffusion.sample`)."""

from jaxdiff_rl.plan.unet import TemporalUNet, as_model_fn, check_horizon

__all__ = ["TemporalUNet", "as_model_fn", "check_horizon"]
