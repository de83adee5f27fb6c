"""Flax linen networks: the diffusion denoiser (shared by every diffusion agent and the optimizer) and MLPs.

The denoiser is a pure function `apply(params, x_t, t, cond, use_cond)`; params are an ordinary pytree, so
networks vmap over independent parameter sets (seeds, sweeps) like any other array.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

__all__ = ["ACTIVATIONS", "activation", "mish", "sinusoidal_embedding", "MLP", "Denoiser", "dense_layer", "MATMUL_DTYPES"]

def mish(x: jax.Array) -> jax.Array:
    """Mish x tanh(softplus(x)) with one exp: tanh(log(1 + e^x)) = n / (n + 2), n = e^x (e^x + 2).

    Same values as `jax.nn.mish` to float32 rounding, about 3x faster on CPU (one transcendental instead of
    exp + log1p + tanh); the denoiser's activations are a large share of a sampling step's time.
    """
    e = jnp.exp(jnp.minimum(x, 20.0))  # above 20, tanh(softplus(x)) = 1 in float32
    n = e * (e + 2.0)
    return jnp.where(x > 20.0, x, x * n / (n + 2.0))


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "mish": mish,
    "relu": jax.nn.relu,
    "silu": jax.nn.silu,
    "gelu": jax.nn.gelu,
    "tanh": jnp.tanh,
    "elu": jax.nn.elu,
}


def activation(name: str | None) -> Callable[[jax.Array], jax.Array]:
    """Activation by name (None or "identity" -> identity). Raises ValueError for an unknown name."""
    if name is None or name == "identity":
        return lambda x: x
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; valid: {sorted(ACTIVATIONS)} or None")
    return ACTIVATIONS[name]


def sinusoidal_embedding(t: jax.Array, dim: int) -> jax.Array:
    """Transformer-style sinusoidal embedding of diffusion steps: t [B] -> [B, dim] = [sin(t f), cos(t f)],
    frequencies f_k = 10000^(-k / (dim/2 - 1)), k = 0 .. dim/2 - 1 (as in Diffusion-QL / D2SAC)."""
    if dim < 4 or dim % 2:
        raise ValueError(f"time embedding dim must be an even integer >= 4, got {dim}")
    half = dim // 2
    freqs = jnp.exp(-math.log(10000.0) / (half - 1) * jnp.arange(half, dtype=jnp.float32))
    args = jnp.asarray(t, jnp.float32)[..., None] * freqs
    return jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)


MATMUL_DTYPES = ("float32", "bfloat16")


def dense_layer(matmul_dtype: str = "float32") -> Callable[..., nn.Dense]:
    """`nn.Dense` with f32 parameters whose matmuls run in `matmul_dtype`: "float32", or "bfloat16" (mixed precision
    for accelerators: inputs and kernel rounded to bf16, products accumulated and returned in f32, bias and
    activations in f32). Parameter trees are the same in both, so a checkpoint loads into either."""
    if matmul_dtype == "float32":
        return nn.Dense
    if matmul_dtype != "bfloat16":
        raise ValueError(f"matmul_dtype must be one of {MATMUL_DTYPES}, got {matmul_dtype!r}")

    def dot_general(x, w, dimension_numbers, precision=None, preferred_element_type=None):
        return jax.lax.dot_general(x.astype(jnp.bfloat16), w.astype(jnp.bfloat16), dimension_numbers,
                                   precision=precision, preferred_element_type=jnp.float32)

    return functools.partial(nn.Dense, dot_general=dot_general)


class MLP(nn.Module):
    """Dense stack: hidden layers with activation (optional LayerNorm, residual when widths match), then a
    linear output layer of width `out_dim` with an optional output activation. [..., in] -> [..., out_dim]."""

    out_dim: int
    hidden_dims: Sequence[int] = (256, 256)
    activation: str = "mish"
    layer_norm: bool = False
    residual: bool = False
    output_activation: str | None = None
    matmul_dtype: str = "float32"

    @nn.compact
    def __call__(self, h: jax.Array) -> jax.Array:
        act = activation(self.activation)
        dense = dense_layer(self.matmul_dtype)
        for width in self.hidden_dims:
            z = dense(width)(h)
            if self.layer_norm:
                z = nn.LayerNorm()(z)
            z = act(z)
            h = h + z if self.residual and h.shape[-1] == width else z
        return activation(self.output_activation)(dense(self.out_dim)(h))


class Denoiser(nn.Module):
    """Noise (or x0) predictor f_theta(x_t, t, cond) for a data/action vector of width `out_dim`.

    Architecture (D2SAC / Diffusion-QL style): time embedding = sinusoidal(time_dim) -> Dense(2 time_dim) ->
    act -> Dense(time_dim); trunk = MLP on [x_t, time embedding, cond]. With `cond_dim > 0` a learned null
    condition (a parameter of width cond_dim) replaces `cond` wherever `use_cond` is False, which is what
    classifier-free training (condition dropout) and guidance need.

    Call: x_t [B, out_dim] float, t [B] or scalar int (0-indexed step), cond [B, cond_dim] or None (null),
    use_cond [B] bool or None (all True). Returns [B, out_dim].
    """

    out_dim: int
    cond_dim: int = 0
    hidden_dims: Sequence[int] = (256, 256)
    time_dim: int = 16
    activation: str = "mish"
    layer_norm: bool = False
    residual: bool = False
    output_activation: str | None = None
    matmul_dtype: str = "float32"

    @nn.compact
    def __call__(
        self,
        x_t: jax.Array,
        t: jax.Array,
        cond: jax.Array | None = None,
        use_cond: jax.Array | None = None,
    ) -> jax.Array:
        if x_t.shape[-1] != self.out_dim:
            raise ValueError(f"Denoiser: x_t must have width out_dim={self.out_dim}, got shape {x_t.shape}")
        batch = x_t.shape[:-1]
        act = activation(self.activation)
        # embed t in its own shape: a scalar t (all chains at the same step, as in sampling) is embedded once
        temb = sinusoidal_embedding(jnp.asarray(t), self.time_dim)
        dense = dense_layer(self.matmul_dtype)
        temb = dense(self.time_dim)(act(dense(2 * self.time_dim)(temb)))
        parts = [x_t, jnp.broadcast_to(temb, (*batch, self.time_dim))]
        if self.cond_dim > 0:
            null = self.param("null_cond", nn.initializers.zeros, (self.cond_dim,))
            if cond is None:
                cond = jnp.broadcast_to(null, (*batch, self.cond_dim))
            else:
                if cond.shape[-1] != self.cond_dim:
                    raise ValueError(
                        f"Denoiser: cond must have width cond_dim={self.cond_dim}, got shape {cond.shape}"
                    )
                cond = jnp.broadcast_to(cond, (*batch, self.cond_dim))
                if use_cond is not None:
                    cond = jnp.where(jnp.asarray(use_cond)[..., None], cond, null)
            parts.append(cond.astype(x_t.dtype))
        elif cond is not None:
            raise ValueError(f"Denoiser: got a condition of shape {cond.shape} but cond_dim=0 (unconditional)")
        return MLP(
            out_dim=self.out_dim,
            hidden_dims=tuple(self.hidden_dims),
            activation=self.activation,
            layer_norm=self.layer_norm,
            residual=self.residual,
            output_activation=self.output_activation,
            matmul_dtype=self.matmul_dtype,
        )(jnp.concatenate(parts, axis=-1))
