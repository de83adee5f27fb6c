"""Entropy of a generator's samples: a Gaussian mixture fitted by EM to N draws per condition (DACER, Wang et al.
2024), the estimate H_hat = -1/N sum_n log q(a_n) under the fitted mixture q.

A diffusion / flow / consistency policy has no tractable density, so SAC's entropy terms (seed 000 eqs. 12-14)
need an estimate. Gradients: the mixture's parameters are fitted under `stop_gradient` and the estimate is
differentiated through the samples only. For reparameterised samples a = g_theta(z),
    grad_theta H(pi) = -E_z[grad_a log pi(a) d g_theta(z) / d theta]
(the score term E_pi[grad_theta log pi_theta] vanishes), so with q ~ pi the pathwise gradient of H_hat estimates
the true entropy gradient.

Shapes: samples [B, N, A] (B conditions, N draws each, A dims) -> [B] nats.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

__all__ = ["fit_gmm", "gmm_log_prob", "gmm_entropy", "MIN_VAR"]

#: variance floor of each mixture component (std 0.03 in the [-1, 1] action box): actions clipped to the box
#: edge form point masses whose fitted variance would otherwise collapse to 0 and the log-density diverge
MIN_VAR = 1e-3


def _component_log_prob(x: jax.Array, means: jax.Array, variances: jax.Array) -> jax.Array:
    """log N(x_n; mu_k, diag var_k): x [B, N, A], means/variances [B, K, A] -> [B, N, K]."""
    d = x[:, :, None, :] - means[:, None, :, :]
    return -0.5 * jnp.sum(d**2 / variances[:, None] + jnp.log(2 * math.pi * variances[:, None]), axis=-1)


def fit_gmm(samples: jax.Array, components: int = 3, iterations: int = 20, min_var: float = MIN_VAR):
    """EM for a diagonal Gaussian mixture per condition. samples [B, N, A] (N >= components) ->
    (log_weights [B, K], means [B, K, A], variances [B, K, A]). Deterministic: the means start at K samples
    spread over the draws (draws are i.i.d., so any K of them are a random initialisation), the variances at
    each condition's per-dimension variance."""
    batch, n, dim = samples.shape
    if components < 1 or n < components:
        raise ValueError(f"fit_gmm needs 1 <= components <= draws per condition, got components={components}, "
                         f"draws={n}")
    x = jax.lax.stop_gradient(samples)
    means = x[:, jnp.linspace(0, n - 1, components).astype(jnp.int32)]
    var0 = jnp.maximum(jnp.var(x, axis=1), min_var)
    variances = jnp.broadcast_to(var0[:, None], (batch, components, dim))
    log_w = jnp.full((batch, components), -math.log(components))

    def em(carry, _):
        log_w, means, variances = carry
        log_r = log_w[:, None] + _component_log_prob(x, means, variances)  # [B, N, K]
        r = jnp.exp(log_r - jax.scipy.special.logsumexp(log_r, axis=-1, keepdims=True))
        nk = jnp.sum(r, axis=1) + 1e-8  # [B, K]
        means = jnp.einsum("bnk,bna->bka", r, x) / nk[..., None]
        second = jnp.einsum("bnk,bna->bka", r, x**2) / nk[..., None]
        variances = jnp.maximum(second - means**2, min_var)
        return (jnp.log(nk / n), means, variances), None

    (log_w, means, variances), _ = jax.lax.scan(em, (log_w, means, variances), None, length=iterations)
    return log_w, means, variances


def gmm_log_prob(x: jax.Array, log_w: jax.Array, means: jax.Array, variances: jax.Array) -> jax.Array:
    """log q(x_n) under per-condition mixtures: x [B, N, A] -> [B, N]."""
    return jax.scipy.special.logsumexp(log_w[:, None] + _component_log_prob(x, means, variances), axis=-1)


def gmm_entropy(samples: jax.Array, components: int = 3, iterations: int = 20, min_var: float = MIN_VAR
                ) -> jax.Array:
    """H_hat [B] = -mean_n log q(a_n), q the mixture fitted to samples [B, N, A]; differentiable in the samples
    (the fit is not), see the module docstring."""
    params = jax.tree_util.tree_map(jax.lax.stop_gradient, fit_gmm(samples, components, iterations, min_var))
    return -jnp.mean(gmm_log_prob(samples, *params), axis=1)
