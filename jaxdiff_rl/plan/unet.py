"""The temporal U-Net of Diffuser (Janner et al., ICML 2022): a noise predictor over whole trajectories.

A trajectory is [H, C]: H time steps (the planning horizon) of C = state_dim + action_dim channels. The network
convolves over time, so every output step sees a window of neighbouring steps that grows with depth, and a plan
is denoised as a whole, consistent from its first step to its last.

Architecture: the same as Diffuser's, at widths of our choosing.
- The time step is embedded as sinusoidal(`time_dim`) -> Dense(4 `time_dim`) -> mish -> Dense(`time_dim`).
- Down path: at each level, two residual blocks, then a stride-2 convolution (none after the last level).
  A residual block is conv(kernel 5) -> GroupNorm -> mish, plus a projection of the time embedding added per
  channel, then conv -> GroupNorm -> mish; a 1x1 convolution forms the skip when the widths differ.
- Two residual blocks in the middle.
- Up path: at each level, the skip is concatenated, two residual blocks follow, then a transposed stride-2
  convolution.
- A final conv block and a 1x1 convolution give the C output channels.

The horizon must be divisible by 2^(levels - 1), where levels = len(`dim_mults`), so that each downsampling has a
matching upsampling; `check_horizon` raises a ValueError that names it.

`as_model_fn(module, params, horizon, channels)` adapts the module to the shared sampler's flat
`model_fn(x [B, H C], t, cond, use_cond)`, so trajectories are drawn, guided and in-painted by
`jaxdiff_rl.diffusion.sample`: one sampler for actions, solutions and plans.
"""

from __future__ import annotations

from typing import Any, Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdiff_rl.nets import activation, sinusoidal_embedding

_mish = activation("mish")

__all__ = ["TemporalUNet", "check_horizon", "as_model_fn"]


def check_horizon(horizon: int, levels: int) -> None:
    """ValueError unless `horizon` is a positive integer divisible by 2^(levels - 1)."""
    factor = 2 ** (levels - 1)
    if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1 or horizon % factor:
        raise ValueError(f"horizon must be a positive integer divisible by 2^(len(dim_mults) - 1) = {factor} (the "
                         f"U-Net's downsampling), got {horizon!r}")


def _groups(width: int, requested: int) -> int:
    g = min(requested, width)
    while width % g:
        g -= 1
    return g


class _ConvBlock(nn.Module):
    width: int
    kernel: int = 5
    groups: int = 8

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = nn.Conv(self.width, (self.kernel,), padding="SAME")(x)
        x = nn.GroupNorm(num_groups=_groups(self.width, self.groups))(x)
        return _mish(x)


class _ResidualBlock(nn.Module):
    width: int
    kernel: int = 5

    @nn.compact
    def __call__(self, x: jax.Array, temb: jax.Array) -> jax.Array:
        h = _ConvBlock(self.width, self.kernel)(x)
        h = h + nn.Dense(self.width)(_mish(temb))[..., None, :]
        h = _ConvBlock(self.width, self.kernel)(h)
        skip = x if x.shape[-1] == self.width else nn.Conv(self.width, (1,))(x)
        return h + skip


class TemporalUNet(nn.Module):
    """eps_theta(tau_t, t): trajectories [B, H, C] and steps t [B] or scalar int -> [B, H, C].

    Attributes:
        channels: C = state_dim + action_dim.
        base_width: channels at the first level; level i has base_width * dim_mults[i].
        dim_mults: width multipliers per level (len = levels; H must be divisible by 2^(levels - 1)).
        time_dim: width of the time embedding. kernel: temporal kernel size.
    """

    channels: int
    base_width: int = 32
    dim_mults: Sequence[int] = (1, 2, 4)
    time_dim: int = 32
    kernel: int = 5

    @nn.compact
    def __call__(self, x: jax.Array, t: jax.Array) -> jax.Array:
        if x.ndim != 3 or x.shape[-1] != self.channels:
            raise ValueError(f"TemporalUNet: x must be [batch, horizon, channels={self.channels}], got {x.shape}")
        check_horizon(int(x.shape[1]), len(self.dim_mults))
        temb = sinusoidal_embedding(jnp.asarray(t), self.time_dim)
        temb = nn.Dense(self.time_dim)(_mish(nn.Dense(4 * self.time_dim)(temb)))
        temb = jnp.broadcast_to(temb, (x.shape[0], self.time_dim))
        widths = [self.base_width * m for m in self.dim_mults]
        h, skips = x, []
        for i, width in enumerate(widths):
            h = _ResidualBlock(width, self.kernel)(h, temb)
            h = _ResidualBlock(width, self.kernel)(h, temb)
            skips.append(h)
            if i < len(widths) - 1:
                h = nn.Conv(width, (3,), strides=(2,), padding="SAME")(h)
        h = _ResidualBlock(widths[-1], self.kernel)(h, temb)
        h = _ResidualBlock(widths[-1], self.kernel)(h, temb)
        for i, width in reversed(list(enumerate(widths))):
            h = jnp.concatenate([h, skips[i]], axis=-1)
            h = _ResidualBlock(width, self.kernel)(h, temb)
            h = _ResidualBlock(width, self.kernel)(h, temb)
            if i > 0:
                h = nn.ConvTranspose(widths[i - 1], (4,), strides=(2,), padding="SAME")(h)
        h = _ConvBlock(self.base_width, self.kernel)(h)
        return nn.Conv(self.channels, (1,))(h)


def as_model_fn(module: TemporalUNet, params: Any, horizon: int) -> Callable:
    """The shared sampler's `model_fn(x [B, H C], t, cond, use_cond) -> [B, H C]` for a TemporalUNet (the
    condition arguments are unused: plans are conditioned by in-painting and guidance)."""
    check_horizon(horizon, len(module.dim_mults))
    c = module.channels

    def model_fn(x: jax.Array, t: jax.Array, cond: Any = None, use_cond: Any = None) -> jax.Array:
        del cond, use_cond
        out = module.apply(params, x.reshape(x.shape[0], horizon, c), t)
        return out.reshape(x.shape[0], horizon * c)

    return model_fn
