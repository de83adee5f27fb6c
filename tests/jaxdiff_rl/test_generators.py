"""Flow matching, consistency models, Q-gradient guidance and the mixture entropy estimate against closed forms.

For Gaussian data N(mu, s^2 I) every optimal network is known in closed form: the rectified-flow velocity, the
VE consistency function (the probability-flow ODE maps x_sigma to mu + s / sqrt(s^2 + sigma^2) (x_sigma - mu)) and
the DDPM noise predictor. With a quadratic Q(a) = -kappa/2 ||a - a*||^2 every guided chain stays linear-Gaussian,
so its output mean and variance follow a scalar NumPy recursion: the references below.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate

from jaxdiff_rl.diffusion import (
    ConsistencyConfig,
    GeneratorConfig,
    SamplerConfig,
    consistency_loss,
    flow_matching_loss,
    generate,
    generator_loss,
    make_schedule,
)
from jaxdiff_rl.diffusion.consistency import _coefficients, karras_sigmas
from jaxdiff_rl.diffusion.entropy import fit_gmm, gmm_entropy
from jaxdiff_rl.diffusion.flow import FLOW_TIME_SCALE, flow_times

MU, S = 0.4, 0.3  # data N(MU, S^2) per dimension
KAPPA, A_STAR = 1.0, -0.5  # Q(a) = -KAPPA/2 ||a - A_STAR||^2


def q_fn(a, cond=None):
    return -0.5 * KAPPA * jnp.sum((a - A_STAR) ** 2, axis=-1)


# --- closed-form networks ---------------------------------------------------------------------------------------
def exact_velocity(x, time, cond=None, use_cond=None):
    t = time / FLOW_TIME_SCALE
    t = t[:, None] if jnp.ndim(t) == 1 else t  # [B] in training, scalar in sampling
    var = (1 - t) ** 2 * S**2 + t**2
    dev = x - (1 - t) * MU
    e_x0 = MU + (1 - t) * S**2 / var * dev
    e_eps = t / var * dev
    return e_eps - e_x0


def exact_consistency_raw(config: ConsistencyConfig):
    """The raw network F whose parameterised output c_skip x + c_out F is the exact consistency function."""

    def model_fn(x_in, noise, cond=None, use_cond=None):
        sigma = jnp.exp(noise / (0.25 * FLOW_TIME_SCALE))
        sigma = sigma[:, None] if jnp.ndim(sigma) == 1 else sigma  # [B] in training, scalar in sampling
        c_skip, c_out, c_in = _coefficients(config, sigma)
        x = x_in / c_in
        f = MU + S / jnp.sqrt(S**2 + sigma**2) * (x - MU)
        return (f - c_skip * x) / c_out

    return model_fn


def exact_eps(schedule):
    abar = np.asarray(schedule.alpha_bars)

    def model_fn(x, t, cond=None, use_cond=None):
        a = jnp.asarray(abar)[t]
        return jnp.sqrt(1 - a) * (x - jnp.sqrt(a) * MU) / (a * S**2 + 1 - a)

    return model_fn


# --- flow ---------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ode,steps,tol", [("euler", 200, 0.01), ("heun", 20, 0.01)])
def test_flow_ode_with_the_exact_velocity_recovers_the_data_distribution(ode, steps, tol):
    x = np.asarray(generate(jax.random.key(0), GeneratorConfig("flow", steps=steps, ode=ode), exact_velocity,
                            (20000, 2)))
    assert abs(x.mean() - MU) < tol and abs(x.std() - S) < tol, (x.mean(), x.std())


def test_flow_matching_loss_of_the_exact_velocity_is_the_irreducible_conditional_variance():
    """min E||v - (eps - x0)||^2 = int_0^1 [Var(eps - x0) - Cov(eps - x0, x_t)^2 / Var(x_t)] dt (per dimension)."""
    floor = integrate.quad(lambda t: 1 + S**2 - (t - (1 - t) * S**2) ** 2 / ((1 - t) ** 2 * S**2 + t**2), 0, 1)[0]
    x0 = MU + S * jax.random.normal(jax.random.key(1), (200_000, 1))
    loss = float(flow_matching_loss(jax.random.key(2), exact_velocity, x0))
    assert loss == pytest.approx(floor, rel=0.01)
    worse = float(flow_matching_loss(jax.random.key(2), lambda *a: exact_velocity(*a) + 0.1, x0))
    assert worse == pytest.approx(floor + 0.01, rel=0.01)  # a constant error adds its square


def test_flow_times_and_generator_errors():
    np.testing.assert_allclose(flow_times(4), [1.0, 0.75, 0.5, 0.25, 0.0])
    with pytest.raises(ValueError, match="kind"):
        GeneratorConfig("gan")
    with pytest.raises(ValueError, match="steps"):
        GeneratorConfig("flow", steps=0)
    with pytest.raises(ValueError, match="ode"):
        GeneratorConfig("flow", ode="rk4")
    with pytest.raises(ValueError, match="return_trajectory"):
        generate(jax.random.key(0), GeneratorConfig("flow"), exact_velocity, (4, 2),
                 sampler=SamplerConfig(return_trajectory=True))
    with pytest.raises(ValueError, match="teacher"):
        generator_loss(jax.random.key(0), GeneratorConfig("flow"), exact_velocity, jnp.zeros((4, 2)),
                       teacher=lambda x, s, c: x)
    with pytest.raises(ValueError, match="sample_sigmas"):
        ConsistencyConfig(sample_sigmas=(0.5, 0.8))
    with pytest.raises(ValueError, match="sampling steps"):
        GeneratorConfig("consistency", steps=1, consistency=ConsistencyConfig(sample_sigmas=(0.8,)))
    assert GeneratorConfig("flow", steps=3, ode="heun").evaluations() == 6
    assert GeneratorConfig("consistency", steps=2).evaluations() == 2


# --- consistency --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps", [1, 2])
def test_consistency_sampling_with_the_exact_function_draws_the_data_distribution(steps):
    gen = GeneratorConfig("consistency", steps=steps)
    model = exact_consistency_raw(gen.consistency_config)
    x = np.asarray(generate(jax.random.key(3), gen, model, (20000, 2)))
    # one step from sigma_max z: mean MU (1 - S / sqrt(S^2 + 80^2)), std S * 80 / sqrt(S^2 + 80^2)
    assert abs(x.mean() - MU) < 0.01 and abs(x.std() - S) < 0.01, (x.mean(), x.std())


def test_consistency_boundary_condition_and_karras_levels():
    cfg = ConsistencyConfig(levels=5)
    sig = karras_sigmas(cfg)
    assert sig[0] == pytest.approx(cfg.sigma_min) and sig[-1] == pytest.approx(cfg.sigma_max)
    assert np.all(np.diff(sig) > 0)
    c_skip, c_out, _ = _coefficients(cfg, cfg.sigma_min)
    assert c_skip == pytest.approx(1.0) and c_out == pytest.approx(0.0)  # f(x, sigma_min) = x


def test_consistency_training_levels_follow_the_discretised_lognormal():
    """p(n) is the lognormal(-1.1, 2.0) mass of [sigma_n, sigma_{n+1}] (scipy's CDF as the reference); uniform with
    p_std = inf."""
    from scipy import stats

    from jaxdiff_rl.diffusion.consistency import level_probabilities

    cfg = ConsistencyConfig(levels=12)
    sig = karras_sigmas(cfg).astype(np.float64)
    cdf = stats.lognorm(s=2.0, scale=np.exp(-1.1)).cdf(sig)
    np.testing.assert_allclose(level_probabilities(cfg), np.diff(cdf) / np.diff(cdf).sum(), rtol=1e-4)
    np.testing.assert_allclose(level_probabilities(ConsistencyConfig(levels=12, p_std=np.inf)), np.full(11, 1 / 11))
    with pytest.raises(ValueError, match="p_std"):
        ConsistencyConfig(p_std=0.0)


def test_consistency_distillation_loss_vanishes_for_the_exact_pair_only():
    """With the exact teacher denoiser and the exact consistency function, the CD loss is the Euler step's
    discretisation error (tiny); a consistency function with a wrong mean gives a loss orders larger."""
    cfg = ConsistencyConfig(levels=200)
    teacher = lambda x, sigma, cond: MU + (S**2 / (S**2 + sigma**2))[:, None] * (x - MU)  # E[x0 | x_sigma]
    model = exact_consistency_raw(cfg)
    x0 = MU + S * jax.random.normal(jax.random.key(4), (4096, 2))
    exact = float(consistency_loss(jax.random.key(5), model, cfg, x0, teacher=teacher))
    shifted = lambda x, n, c=None, u=None: model(x, n) + 0.05
    wrong = float(consistency_loss(jax.random.key(5), shifted, cfg, x0, teacher=teacher))
    assert exact < 0.05 * wrong, (exact, wrong)


# --- Q-gradient guidance: output mean vs the linear-Gaussian recursion -------------------------------------------
def _ddpm_guided_moments(schedule, w):
    """NumPy recursion of (mean, var) of the DDPM chain with the exact eps and the eps-form guidance shift."""
    abar = np.asarray(schedule.alpha_bars, np.float64)
    c1 = np.asarray(schedule.posterior_mean_coef1, np.float64)
    c2 = np.asarray(schedule.posterior_mean_coef2, np.float64)
    std = np.exp(0.5 * np.asarray(schedule.posterior_log_variance_clipped, np.float64))
    m, v = 0.0, 1.0
    for t in range(len(abar) - 1, -1, -1):
        a = abar[t]
        # eps(x) = g (x - sqrt(a) MU) with g = sqrt(1-a)/(a S^2 + 1 - a); guided: eps + w sqrt(1-a) KAPPA (x - A*)
        g = math.sqrt(1 - a) / (a * S**2 + 1 - a)
        e_lin, e_const = g + w * math.sqrt(1 - a) * KAPPA, -g * math.sqrt(a) * MU - w * math.sqrt(1 - a) * KAPPA * A_STAR
        # x0 = (x - sqrt(1-a) eps) / sqrt(a); x' = c1 x0 + c2 x + std z
        lin = c1[t] * (1 - math.sqrt(1 - a) * e_lin) / math.sqrt(a) + c2[t]
        const = -c1[t] * math.sqrt(1 - a) * e_const / math.sqrt(a)
        m, v = lin * m + const, lin**2 * v + (std[t] ** 2 if t > 0 else 0.0)
    return m, v


def _flow_guided_moments(steps, w):
    times = flow_times(steps).astype(np.float64)
    m, v = 0.0, 1.0
    for t, tn in zip(times[:-1], times[1:]):
        var = (1 - t) ** 2 * S**2 + t**2
        # v(x) = (t - (1-t) S^2)/var (x - (1-t) MU) - MU, guided: + w t KAPPA (x - A*)
        k = (t - (1 - t) * S**2) / var + w * t * KAPPA
        c = -(t - (1 - t) * S**2) / var * (1 - t) * MU - MU - w * t * KAPPA * A_STAR
        lin, const = 1 + (tn - t) * k, (tn - t) * c
        m, v = lin * m + const, lin**2 * v
    return m, v


@pytest.mark.parametrize("w", [0.0, 0.5, 2.0])
def test_q_guided_ddpm_moves_the_mean_toward_argmax_q_as_the_recursion_predicts(w):
    sch = make_schedule("vp", 5)
    x = np.asarray(generate(jax.random.key(6), GeneratorConfig("ddpm", steps=5), exact_eps(sch), (40000, 1),
                            guide_fn=q_fn, guide_scale=w))
    m, v = _ddpm_guided_moments(sch, w)
    assert x.mean() == pytest.approx(m, abs=0.01) and x.var() == pytest.approx(v, rel=0.03), (x.mean(), m)
    if w > 0:
        assert abs(x.mean() - A_STAR) < abs(MU - A_STAR) - 0.05  # towards argmax Q


@pytest.mark.parametrize("w", [0.0, 0.5, 2.0])
def test_q_guided_flow_moves_the_mean_as_the_recursion_predicts(w):
    x = np.asarray(generate(jax.random.key(7), GeneratorConfig("flow", steps=8), exact_velocity, (40000, 1),
                            guide_fn=q_fn, guide_scale=w))
    m, v = _flow_guided_moments(8, w)
    assert x.mean() == pytest.approx(m, abs=0.01) and x.var() == pytest.approx(v, rel=0.03), (x.mean(), m)
    if w > 0:
        assert abs(m - A_STAR) < abs(MU - A_STAR)


@pytest.mark.parametrize("w", [0.0, 0.3])
def test_q_guided_consistency_step_is_one_gradient_ascent_step_on_its_output(w):
    """a' = a + w grad Q(a) = (1 - w KAPPA) a + w KAPPA A*: mean (1 - w K) MU + w K A*, std |1 - w K| S."""
    gen = GeneratorConfig("consistency", steps=1)
    x = np.asarray(generate(jax.random.key(8), gen, exact_consistency_raw(gen.consistency_config), (40000, 1),
                            guide_fn=q_fn, guide_scale=w))
    assert x.mean() == pytest.approx((1 - w * KAPPA) * MU + w * KAPPA * A_STAR, abs=0.01)
    assert x.std() == pytest.approx(abs(1 - w * KAPPA) * S, rel=0.03)


# --- entropy ------------------------------------------------------------------------------------------------------
def _two_mode(rng, batch, n, sep, weight=0.3, stds=(0.1, 0.15)):
    comp = rng.random((batch, n, 1)) < weight
    c = np.array([1.0, 1.0]) * sep / 2
    return np.where(comp, -c + stds[0] * rng.standard_normal((batch, n, 2)),
                    c + stds[1] * rng.standard_normal((batch, n, 2)))


def _two_mode_entropy(sep, weight=0.3, stds=(0.1, 0.15), n=400_000):
    """Monte-Carlo entropy of the known mixture (its exact density), an independent reference."""
    x = _two_mode(np.random.default_rng(99), 1, n, sep, weight, stds)[0]
    c = np.array([1.0, 1.0]) * sep / 2
    logn = lambda m, s: -0.5 * np.sum((x - m) ** 2, -1) / s**2 - np.log(2 * np.pi * s**2)
    return -np.mean(np.log(weight * np.exp(logn(-c, stds[0])) + (1 - weight) * np.exp(logn(c, stds[1]))))


@pytest.mark.parametrize("sep", [0.0, 0.5, 1.5])
def test_mixture_entropy_estimate_tracks_the_true_entropy_within_10_percent(sep):
    samples = _two_mode(np.random.default_rng(0), 32, 256, sep)
    est = float(np.mean(gmm_entropy(jnp.asarray(samples, jnp.float32), components=3)))
    true = _two_mode_entropy(sep)
    assert est == pytest.approx(true, rel=0.10), (est, true)


def test_gmm_fit_recovers_the_mixture_weights_and_means():
    samples = _two_mode(np.random.default_rng(1), 8, 512, 1.5)
    log_w, means, _ = fit_gmm(jnp.asarray(samples, jnp.float32), components=2)
    order = np.argsort(np.asarray(means)[:, :, 0], axis=1)
    w = np.take_along_axis(np.exp(np.asarray(log_w)), order, 1)
    np.testing.assert_allclose(w.mean(0), [0.3, 0.7], atol=0.03)
    np.testing.assert_allclose(np.take_along_axis(np.asarray(means)[:, :, 0], order, 1).mean(0), [-0.75, 0.75],
                               atol=0.03)


def test_entropy_estimate_pathwise_gradient_matches_d_entropy_d_scale():
    """For a = s z (2-D Gaussian) H = 2 log s + const, so dH/ds = 2 / s; the estimate's gradient through the
    samples (fit held fixed) must give that."""
    z = jax.random.normal(jax.random.key(9), (16, 256, 2))
    grad = jax.grad(lambda s: jnp.mean(gmm_entropy(s * z, components=1)))(0.3)
    assert float(grad) == pytest.approx(2 / 0.3, rel=0.05)
