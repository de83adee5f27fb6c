"""LS, LMMSE, OMP and LASSO against closed forms and NumPy re-implementations."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import mimo_channels as mc
from jaxdiff_rl.estimate import classical as ce

N_R, N_T = 4, 8


def _setup(n_p, snr_db, num=4000, rho=0.6, seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    h = mc.kronecker_rayleigh(k[0], num, N_R, N_T, rho, rho)
    p = mc.qpsk_pilots(k[1], N_T, n_p)
    y = mc.observe(k[2], h, p, snr_db)
    return h, p, y, float(mc.noise_variance(snr_db))


def _mse(a, b):
    return float(np.mean(np.sum(np.abs(np.asarray(a) - np.asarray(b)) ** 2, axis=(1, 2))))


def test_ls_error_matches_the_closed_form():
    h, p, y, var = _setup(N_T, 10.0)
    est = ce.ls_estimate(y, p)
    pinv = np.linalg.pinv(np.asarray(p, np.complex128))
    # E ||N P^+||_F^2 = sigma^2 N_r ||P^+||_F^2
    np.testing.assert_allclose(_mse(est, h), var * N_R * np.sum(np.abs(pinv) ** 2), rtol=0.03)
    noiseless = ce.ls_estimate(h[:5] @ p, p)
    np.testing.assert_allclose(np.asarray(noiseless), np.asarray(h[:5]), atol=1e-4)


@pytest.mark.parametrize("n_p,snr_db", [(N_T, 0.0), (N_T // 2, 10.0), (N_T // 4, -5.0)])
def test_lmmse_matches_numpy_and_its_analytic_mse(n_p, snr_db):
    h, p, y, var = _setup(n_p, snr_db)
    cov = mc.kronecker_covariance(N_R, N_T, 0.6, 0.6)
    est = ce.lmmse_estimate(y, p, jnp.asarray(cov), var)
    # NumPy closed form in complex128: W = C A^H (A C A^H + s^2 I)^-1
    a = np.kron(np.eye(N_R), np.asarray(p, np.complex128).T)
    w = cov @ a.conj().T @ np.linalg.inv(a @ cov @ a.conj().T + var * np.eye(a.shape[0]))
    ref = (np.asarray(y, np.complex128).reshape(len(y), -1) @ w.T).reshape(-1, N_R, N_T)
    np.testing.assert_allclose(np.asarray(est), ref, atol=2e-4)
    analytic = float(ce.lmmse_error(jnp.asarray(cov), p, N_R, var))
    np.testing.assert_allclose(analytic, np.real(np.trace(cov - w @ a @ cov)), rtol=1e-4)
    np.testing.assert_allclose(_mse(est, h), analytic, rtol=0.02)  # empirical vs analytic within 2%
    # a sample covariance from training channels approaches the genie
    train = mc.kronecker_rayleigh(jax.random.PRNGKey(11), 20_000, N_R, N_T, 0.6, 0.6)
    est_s = ce.lmmse_estimate(y, p, ce.sample_covariance(train), var)
    assert _mse(est_s, h) < 1.03 * analytic
    assert _mse(est, h) < _mse(ce.ls_estimate(y, p), h)


def _sparse_channels(num, atoms, seed):
    """`atoms` DFT atoms per channel, in distinct receive-angle bins (so every receive bin's transmit-side problem
    is 1-sparse and identifiable from fewer pilots than transmit antennas)."""
    d = np.asarray(ce.angular_dictionary(N_R, N_T))
    rng = np.random.default_rng(seed)
    x = np.zeros((num, d.shape[1]), np.complex64)
    for i in range(num):
        idx = rng.choice(N_R, atoms, replace=False) * N_T + rng.integers(0, N_T, atoms)
        x[i, idx] = (rng.normal(size=atoms) + 1j * rng.normal(size=atoms)) * np.sqrt(N_R * N_T / (2 * atoms))
    return jnp.asarray((x @ d.T).reshape(num, N_R, N_T))


def test_dft_dictionary_is_unitary():
    d = np.asarray(ce.angular_dictionary(N_R, N_T))
    np.testing.assert_allclose(d.conj().T @ d, np.eye(N_R * N_T), atol=1e-5)
    assert ce.angular_dictionary(N_R, N_T, oversample=2).shape == (N_R * N_T, 4 * N_R * N_T)


def _numpy_omp(y, phi, noise_energy, max_atoms):
    support, r = [], y.copy()
    x = np.zeros(phi.shape[1], complex)
    if np.sum(np.abs(r) ** 2) <= noise_energy:
        return x
    for _ in range(max_atoms):
        corr = np.abs(phi.conj().T @ r) / np.linalg.norm(phi, axis=0)
        corr[support] = -1
        support.append(int(np.argmax(corr)))
        coef = np.linalg.lstsq(phi[:, support], y, rcond=None)[0]
        r = y - phi[:, support] @ coef
        x = np.zeros(phi.shape[1], complex)
        x[support] = coef
        if np.sum(np.abs(r) ** 2) <= noise_energy:
            break
    return x


def test_omp_matches_a_numpy_omp():
    h, p, y, var = _setup(N_T // 2, 5.0, num=16, rho=0.9)
    d = np.asarray(ce.angular_dictionary(N_R, N_T), np.complex128)
    phi = np.kron(np.eye(N_R), np.asarray(p, np.complex128).T) @ d
    ref = np.stack([_numpy_omp(v, phi, var * phi.shape[0], 6) for v in np.asarray(y, np.complex128).reshape(16, -1)])
    ref_h = (ref @ d.T).reshape(-1, N_R, N_T)
    np.testing.assert_allclose(np.asarray(ce.omp_estimate(y, p, var, max_atoms=6)), ref_h, atol=2e-4)


def test_omp_and_lasso_recover_an_exactly_sparse_channel_from_half_the_pilots():
    h = _sparse_channels(64, 3, seed=0)
    p = mc.qpsk_pilots(jax.random.PRNGKey(1), N_T, N_T // 2)
    y = mc.observe(jax.random.PRNGKey(2), h, p, 40.0)
    var = float(mc.noise_variance(40.0))
    nmse = lambda e: float(mc.nmse_db(e, h))
    assert nmse(ce.omp_estimate(y, p, var, max_atoms=8)) < -30.0
    assert nmse(ce.lasso_estimate(y, p, lam=0.01, num_iters=500)) < -15.0
    # with half the pilots, the minimum-norm LS solution recovers only about half the energy
    assert nmse(ce.ls_estimate(y, p)) > -4.0


def test_bad_input_is_refused_with_the_argument_named():
    h, p, y, var = _setup(4, 10.0, num=4)
    with pytest.raises(ValueError, match="pilots"):
        ce.ls_estimate(y, mc.qpsk_pilots(jax.random.PRNGKey(0), N_T, 3))
    with pytest.raises(TypeError, match="y must be complex"):
        ce.ls_estimate(jnp.abs(y), p)
    with pytest.raises(ValueError, match="cov must be"):
        ce.lmmse_estimate(y, p, jnp.eye(5, dtype=jnp.complex64), var)
    with pytest.raises(ValueError, match="max_atoms"):
        ce.omp_estimate(y, p, var, max_atoms=0)
