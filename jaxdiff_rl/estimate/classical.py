"""Classical MIMO channel estimators from pilots Y = H P + N (conventions: `envs.mimo_channels`), all jittable and
batched over instances.

- `ls_estimate`: least squares / minimum-norm, H_hat = Y P^+ (the pseudo-inverse; under-determined when N_p < N_t).
- `lmmse_estimate` with `lmmse_matrix`: vec(H_hat) = C A^H (A C A^H + sigma^2 I)^{-1} vec(Y), A = I kron P^T, for a
  zero-mean channel with covariance C = cov(vec H) (the genie one or `sample_covariance` of training channels);
  `lmmse_error` is its analytic MSE tr(C - W A C), the Bayes-optimal MSE on Gaussian channels.
- `omp_estimate` and `lasso_estimate`: sparse recovery in the angular domain, vec(H) = D x with the (oversampled)
  ULA dictionary `angular_dictionary`; OMP stops when the residual energy falls below the expected noise energy
  (N_r N_p sigma^2) or after `max_atoms` atoms; LASSO by FISTA with a complex soft threshold.

Shapes: Y [B, N_r, N_p], P [N_t, N_p], C [N_r N_t, N_r N_t], estimates [B, N_r, N_t] complex64.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from envs.channels import ula_steering
from envs.mimo_channels import pilot_operator

__all__ = [
    "ls_estimate",
    "sample_covariance",
    "lmmse_matrix",
    "lmmse_estimate",
    "lmmse_error",
    "angular_dictionary",
    "omp_estimate",
    "lasso_estimate",
]


def _check(y: jax.Array, pilots: jax.Array) -> None:
    for name, arr in (("y", y), ("pilots", pilots)):
        if not jnp.iscomplexobj(arr):
            raise TypeError(f"{name} must be complex, got dtype {jnp.asarray(arr).dtype}")
    if y.ndim != 3 or pilots.ndim != 2 or y.shape[-1] != pilots.shape[1]:
        raise ValueError(f"y must be [B, N_r, N_p] and pilots [N_t, N_p] with the same N_p; got y {y.shape}, "
                         f"pilots {pilots.shape}")


def ls_estimate(y: jax.Array, pilots: jax.Array) -> jax.Array:
    """H_hat = Y P^+: [B, N_r, N_p], [N_t, N_p] -> [B, N_r, N_t] (the minimum-norm solution when N_p < N_t)."""
    _check(y, pilots)
    return (y @ jnp.linalg.pinv(pilots)).astype(jnp.complex64)


def sample_covariance(channels: jax.Array) -> jax.Array:
    """Zero-mean sample covariance E[vec(H) vec(H)^H] of training channels [B, N_r, N_t] -> [N, N], N = N_r N_t."""
    h = channels.reshape(channels.shape[0], -1)
    return (h.T @ jnp.conj(h) / h.shape[0]).astype(jnp.complex64)


def lmmse_matrix(cov: jax.Array, pilots: jax.Array, n_r: int, noise_var: jax.Array | float) -> jax.Array:
    """W = C A^H (A C A^H + sigma^2 I)^{-1} [N, N_r N_p]; sigma^2 = complex noise variance (scalar)."""
    a = pilot_operator(pilots, n_r)
    if cov.shape != (a.shape[1], a.shape[1]):
        raise ValueError(f"cov must be [N_r N_t, N_r N_t] = {(a.shape[1],) * 2}, got {cov.shape}")
    cov = jnp.asarray(cov, jnp.complex64)
    gram = a @ cov @ jnp.conj(a.T) + noise_var * jnp.eye(a.shape[0], dtype=jnp.complex64)
    # W = (gram^{-1} A C)^H, gram and C Hermitian
    return jnp.conj(jnp.linalg.solve(gram, a @ cov).T)


def lmmse_estimate(y: jax.Array, pilots: jax.Array, cov: jax.Array, noise_var: jax.Array | float) -> jax.Array:
    """LMMSE estimate [B, N_r, N_t] for a zero-mean channel with covariance `cov` (module docstring)."""
    _check(y, pilots)
    n_r, n_t = y.shape[1], pilots.shape[0]
    w = lmmse_matrix(cov, pilots, n_r, noise_var)
    return (y.reshape(y.shape[0], -1) @ w.T).reshape(-1, n_r, n_t).astype(jnp.complex64)


def lmmse_error(cov: jax.Array, pilots: jax.Array, n_r: int, noise_var: jax.Array | float) -> jax.Array:
    """Analytic MSE of the LMMSE estimator, tr(C - W A C) = E ||H_hat - H||_F^2 (scalar, real)."""
    a = pilot_operator(pilots, n_r)
    w = lmmse_matrix(cov, pilots, n_r, noise_var)
    cov = jnp.asarray(cov, jnp.complex64)
    return jnp.real(jnp.trace(cov - w @ a @ cov))


def angular_dictionary(n_r: int, n_t: int, oversample: int = 1) -> jax.Array:
    """ULA virtual-channel dictionary D [N_r N_t, (s N_r)(s N_t)] complex64: columns vec(a_r(u) a_t(v)^H) on grids
    of sin(angle) uniform in [-1, 1) with s = `oversample` points per antenna (s = 1: the 2-D DFT basis, unitary)."""
    if isinstance(oversample, bool) or not isinstance(oversample, int) or oversample < 1:
        raise ValueError(f"oversample must be an integer >= 1, got {oversample!r}")
    grid = lambda n: np.arcsin(-1.0 + 2.0 * np.arange(oversample * n) / (oversample * n))
    a_r = ula_steering(jnp.asarray(grid(n_r)), n_r)  # [G_r, N_r]
    a_t = ula_steering(jnp.asarray(grid(n_t)), n_t)  # [G_t, N_t]
    atoms = jnp.einsum("pi,qj->pqij", a_r, jnp.conj(a_t)).reshape(a_r.shape[0] * a_t.shape[0], n_r * n_t)
    return atoms.T.astype(jnp.complex64)


def _sensing(y: jax.Array, pilots: jax.Array, dictionary: jax.Array | None) -> tuple[int, int, jax.Array, jax.Array]:
    """(N_r, N_t, D, Phi = A D) of the angular-domain problem vec(Y) = Phi x + noise; D defaults to the 2-D DFT."""
    _check(y, pilots)
    n_r, n_t = y.shape[1], pilots.shape[0]
    d = angular_dictionary(n_r, n_t) if dictionary is None else dictionary
    return n_r, n_t, d, pilot_operator(pilots, n_r) @ d


def _omp_one(y: jax.Array, phi: jax.Array, noise_energy: jax.Array, max_atoms: int) -> jax.Array:
    """OMP for one instance: y [M], phi [M, K] (columns not normalised) -> coefficients x [K]."""
    col_norm = jnp.linalg.norm(phi, axis=0)
    k = phi.shape[1]

    def body(carry, i):
        support, r, done, x_best = carry
        corr = jnp.abs(jnp.conj(phi.T) @ r) / col_norm
        corr = corr.at[support].set(-1.0, mode="drop")  # never pick an atom twice (unused slots hold k: dropped)
        support = support.at[i].set(jnp.argmax(corr))
        mask = jnp.arange(max_atoms) <= i
        sub = phi[:, jnp.where(mask, support, 0)] * mask[None, :]
        gram = jnp.conj(sub.T) @ sub + jnp.diag(jnp.where(mask, 0.0, 1.0)).astype(sub.dtype)
        coef = jnp.linalg.solve(gram, jnp.conj(sub.T) @ y) * mask
        r_new = y - sub @ coef
        x = jnp.zeros(k, phi.dtype).at[support].add(coef, mode="drop")
        # keep the first solution whose residual reaches the noise floor
        x_best = jnp.where(done, x_best, x)
        done = done | (jnp.sum(jnp.abs(r_new) ** 2) <= noise_energy)
        return (support, r_new, done, x_best), None

    init = (jnp.full(max_atoms, k, jnp.int32), y, jnp.sum(jnp.abs(y) ** 2) <= noise_energy, jnp.zeros(k, phi.dtype))
    (_, _, _, x), _ = jax.lax.scan(body, init, jnp.arange(max_atoms))
    return x


def omp_estimate(y: jax.Array, pilots: jax.Array, noise_var: jax.Array | float, max_atoms: int = 32,
                 dictionary: jax.Array | None = None) -> jax.Array:
    """Orthogonal matching pursuit in the angular domain: [B, N_r, N_p] -> [B, N_r, N_t]. Stops at the first
    residual energy <= N_r N_p sigma^2 or after `max_atoms` (static) atoms; `dictionary` default: the 2-D DFT."""
    n_r, n_t, d, phi = _sensing(y, pilots, dictionary)
    if isinstance(max_atoms, bool) or not isinstance(max_atoms, int) or not 1 <= max_atoms <= phi.shape[0]:
        raise ValueError(f"max_atoms must be an integer in [1, N_r N_p = {phi.shape[0]}], got {max_atoms!r}")
    noise_energy = jnp.asarray(noise_var, jnp.float32) * phi.shape[0]
    x = jax.vmap(lambda yy: _omp_one(yy, phi, noise_energy, max_atoms))(y.reshape(y.shape[0], -1))
    return (x @ d.T).reshape(-1, n_r, n_t).astype(jnp.complex64)


def lasso_estimate(y: jax.Array, pilots: jax.Array, lam: jax.Array | float, num_iters: int = 200,
                   dictionary: jax.Array | None = None) -> jax.Array:
    """LASSO in the angular domain, min_x 1/2 ||vec(Y) - A D x||^2 + lam ||x||_1 (complex soft threshold), by FISTA
    with step 1 / ||A D||_2^2 and `num_iters` (static) iterations: [B, N_r, N_p] -> [B, N_r, N_t]."""
    n_r, n_t, d, phi = _sensing(y, pilots, dictionary)
    step = 1.0 / jnp.linalg.norm(phi, 2) ** 2
    yv = y.reshape(y.shape[0], -1)
    lam = jnp.asarray(lam, jnp.float32)

    def shrink(v: jax.Array) -> jax.Array:
        mag = jnp.abs(v)
        return v * (jnp.maximum(mag - step * lam, 0.0) / jnp.maximum(mag, 1e-30))

    def body(carry, _):
        x, z, t = carry
        x_new = shrink(z + step * ((yv - z @ phi.T) @ jnp.conj(phi)))
        t_new = 0.5 * (1.0 + jnp.sqrt(1.0 + 4.0 * t**2))
        z_new = x_new + ((t - 1.0) / t_new) * (x_new - x)
        return (x_new, z_new, t_new), None

    x0 = jnp.zeros((yv.shape[0], phi.shape[1]), jnp.complex64)
    (x, _, _), _ = jax.lax.scan(body, (x0, x0, jnp.float32(1.0)), None, length=num_iters)
    return (x @ d.T).reshape(-1, n_r, n_t).astype(jnp.complex64)
