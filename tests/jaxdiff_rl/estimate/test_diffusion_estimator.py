"""Posterior-sampling channel estimation: on Gaussian channels the posterior mean is the LMMSE estimate, so the
sample-averaged estimate must come within 1 dB of LMMSE's NMSE (it fails if the likelihood score, its annealing or
the Langevin sampler is wrong)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import mimo_channels as mc
from jaxdiff_rl.diffusion.score import annealed_langevin, geometric_sigmas
from jaxdiff_rl.estimate import classical as ce
from jaxdiff_rl.estimate.diffusion import (ScorePriorConfig, diffusion_estimate, gaussian_prior_score,
                                           langevin_step_sizes, likelihood_score, posterior_estimate, real_operator,
                                           train_score_prior)

N_R, N_T, RHO = 2, 4, 0.8
COV = jnp.asarray(mc.kronecker_covariance(N_R, N_T, RHO, RHO))
CASES = [(2, 10.0), (4, 0.0), (4, 20.0)]  # (N_p, SNR dB): under-determined, low and high SNR


def _problem(n_p, snr_db):
    h = mc.kronecker_rayleigh(jax.random.PRNGKey(0), 500, N_R, N_T, RHO, RHO)
    p = mc.qpsk_pilots(jax.random.PRNGKey(1), N_T, n_p)
    return h, p, mc.observe(jax.random.PRNGKey(2), h, p, snr_db), mc.noise_variance(snr_db)


def test_likelihood_score_is_the_gradient_of_the_complex_gaussian_log_likelihood():
    _, p, y, var = _problem(2, 5.0)
    x = mc.to_real(mc.kronecker_rayleigh(jax.random.PRNGKey(5), y.shape[0], N_R, N_T))
    log_lik = lambda x: -jnp.sum(jnp.abs(y - mc.from_real(x, N_R, N_T) @ p) ** 2) / var
    np.testing.assert_allclose(np.asarray(likelihood_score(y, p, var)(x, 0.0)), np.asarray(jax.grad(log_lik)(x)),
                               rtol=1e-4, atol=1e-4)
    # the real operator reproduces the complex product
    a_r = real_operator(p, N_R)
    np.testing.assert_allclose(np.asarray(x[:3] @ a_r.T), np.asarray(mc.to_real(mc.from_real(x[:3], N_R, N_T) @ p)),
                               atol=1e-5)


@pytest.mark.parametrize("n_p,snr_db", CASES)
def test_posterior_mean_with_the_exact_prior_score_is_lmmse(n_p, snr_db):
    h, p, y, var = _problem(n_p, snr_db)
    sigmas = geometric_sigmas(10.0, 0.01, 30)
    est = posterior_estimate(jax.random.PRNGKey(3), gaussian_prior_score(COV, sigmas), sigmas, y, p, var, N_T,
                             num_samples=16, steps_per_level=40, step_size=5e-5)
    lmmse = ce.lmmse_estimate(y, p, COV, var)
    # 16 averaged posterior samples: MSE = MMSE (1 + 1/16), +0.26 dB
    assert abs(float(mc.nmse_db(est, h)) - float(mc.nmse_db(lmmse, h))) < 0.5
    assert float(mc.nmse_db(est, lmmse)) < -12.0  # and it is close to the LMMSE estimate itself


def test_langevin_step_sizes_keep_the_chains_stable_under_a_strong_likelihood():
    """N_p = 2 N_t pilots at 30 dB: the likelihood's curvature ||P||^2 / sigma_i^2 (||P||_2^2 = 4.6 here) beats the
    prior's, and NCSN's constant step diverges (NaN); the per-level steps of `langevin_step_sizes` stay within
    0.5 dB of LMMSE (measured 0.33 dB)."""
    h, p, y, var = _problem(8, 30.0)
    sigmas = geometric_sigmas(10.0, 0.01, 30)
    score = gaussian_prior_score(COV, sigmas)
    steps = np.asarray(langevin_step_sizes(5e-5, sigmas, p, var))
    lam = float(np.linalg.norm(np.asarray(p), 2)) ** 2
    s2 = np.asarray(sigmas, np.float64) ** 2
    np.testing.assert_allclose(steps, 5e-5 / (1 + lam * s2 / (var / 2 + s2)), rtol=1e-5)
    est = posterior_estimate(jax.random.PRNGKey(3), score, sigmas, y, p, var, N_T, num_samples=16,
                             steps_per_level=40, step_size=5e-5)
    gap = float(mc.nmse_db(est, h)) - float(mc.nmse_db(ce.lmmse_estimate(y, p, COV, var), h))
    assert abs(gap) < 0.5, gap
    y16 = jnp.tile(y, (16, 1, 1))
    x = annealed_langevin(jax.random.PRNGKey(3), score, 10.0 * jax.random.normal(jax.random.PRNGKey(0), (8000, 16)),
                          sigmas, 40, 5e-5, likelihood_score=likelihood_score(y16, p, var))
    assert not np.isfinite(np.asarray(x)).all()  # the constant step is unstable here


@pytest.mark.parametrize("n_p,snr_db", [(2, 10.0), (4, 20.0)])
def test_dps_with_the_exact_prior_comes_close_to_lmmse_at_moderate_and_high_snr(n_p, snr_db):
    """DPS (the shared DDPM sampler on the ladder's VP schedule, guidance through x0_hat) is an approximate
    posterior sampler: measured within ~1 dB of LMMSE here (60 levels, zeta 0.5; at 0 dB it over-fits the noise,
    DPS's known weakness: its step ignores sigma). Fails if the VP conversion or the DPS step is wrong (the prior
    mean alone gives 0 dB)."""
    h, p, y, var = _problem(n_p, snr_db)
    sigmas = geometric_sigmas(10.0, 0.01, 60)
    est = posterior_estimate(jax.random.PRNGKey(3), gaussian_prior_score(COV, sigmas), sigmas, y, p, var, N_T,
                             num_samples=16, sampler="dps", guide_scale=0.5)
    gap = float(mc.nmse_db(est, h)) - float(mc.nmse_db(ce.lmmse_estimate(y, p, COV, var), h))
    assert 0.0 < gap < 1.5, gap


@pytest.mark.slow
def test_trained_score_prior_estimator_is_within_1db_of_lmmse_on_gaussian_channels():
    train = mc.kronecker_rayleigh(jax.random.PRNGKey(10), 20_000, N_R, N_T, RHO, RHO)
    config = ScorePriorConfig(N_R, N_T, hidden_dims=(128, 128), time_dim=16, num_levels=30, sigma_max=10.0,
                              sigma_min=0.01, train_steps=4000)
    prior, losses = train_score_prior(jax.random.PRNGKey(0), train, config)
    assert losses[-500:].mean() < losses[:100].mean()
    for n_p, snr_db in CASES:
        h, p, y, var = _problem(n_p, snr_db)
        est = diffusion_estimate(jax.random.PRNGKey(3), prior, y, p, var, 16, steps_per_level=20, step_size=5e-5)
        gap = float(mc.nmse_db(est, h)) - float(mc.nmse_db(ce.lmmse_estimate(y, p, COV, var), h))
        assert gap < 1.0, (n_p, snr_db, gap)


def test_bad_input_is_refused_with_the_argument_named():
    _, p, y, var = _problem(2, 5.0)
    sigmas = geometric_sigmas(10.0, 0.01, 5)
    score = gaussian_prior_score(COV, sigmas)
    with pytest.raises(ValueError, match="pilots must be complex"):
        posterior_estimate(jax.random.PRNGKey(0), score, sigmas, y, mc.qpsk_pilots(jax.random.PRNGKey(0), N_T, 3),
                           var, N_T)
    with pytest.raises(ValueError, match="pilots must be complex"):
        posterior_estimate(jax.random.PRNGKey(0), score, sigmas, y, jnp.abs(p), var, N_T)
    with pytest.raises(ValueError, match="y must be complex"):
        posterior_estimate(jax.random.PRNGKey(0), score, sigmas, jnp.abs(y), p, var, N_T)
    with pytest.raises(ValueError, match="sampler"):
        posterior_estimate(jax.random.PRNGKey(0), score, sigmas, y, p, var, N_T, sampler="ddim")
    with pytest.raises(ValueError, match="step_size"):
        annealed_langevin(jax.random.PRNGKey(0), score, jnp.zeros((2, 16)), sigmas, 1, 1e-3)
    with pytest.raises(TypeError, match="channels must be complex"):
        train_score_prior(jax.random.PRNGKey(0), mc.to_real(mc.kronecker_rayleigh(jax.random.PRNGKey(0), 4, N_R, N_T)),
                          ScorePriorConfig(N_R, N_T, train_steps=1))
    with pytest.raises(ValueError, match="sigma_min"):
        ScorePriorConfig(N_R, N_T, sigma_min=2.0, sigma_max=1.0)
