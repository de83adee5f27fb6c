"""The shared sampler's gradient guidance and in-painting (the planners' two conditioning tools; issue 25).

On a Gaussian toy every DDPM step is linear-Gaussian: with data x0 ~ N(mu0, s0^2 I) the exact noise predictor is
eps(x_t) = sqrt(1 - abar) (x_t - sqrt(abar) mu0) / (abar s0^2 + 1 - abar), and classifier guidance by the quadratic
J(x) = -||x - c||^2 / 2 adds -w sqrt(1 - abar) grad J = w sqrt(1 - abar) (x - c). So the chain's output mean and
variance follow a closed-form recursion, written here in NumPy float64 from the schedule; the sampler's empirical
moments must match it, and the guided mean must move towards c by the amount it gives."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff_rl.diffusion import SamplerConfig, make_schedule, sample

MU0, S0, C = 0.5, 0.3, 2.0


def exact_eps(schedule):
    def model_fn(x, t, cond, use_cond):
        abar = schedule.alpha_bars[t]
        return jnp.sqrt(1 - abar) * (x - jnp.sqrt(abar) * MU0) / (abar * S0 ** 2 + 1 - abar)
    return model_fn


def closed_form_moments(schedule, w):
    """(mean, variance) of x_0 per dimension after the guided DDPM chain from x_T ~ N(0, 1)."""
    abar = np.asarray(schedule.alpha_bars, np.float64)
    c1, c2 = np.asarray(schedule.posterior_mean_coef1, np.float64), np.asarray(schedule.posterior_mean_coef2, np.float64)
    std = np.exp(0.5 * np.asarray(schedule.posterior_log_variance_clipped, np.float64))
    m, v = 0.0, 1.0
    for t in reversed(range(len(abar))):
        k = 1.0 / (abar[t] * S0 ** 2 + 1 - abar[t])
        # eps = e_a x + e_b (exact predictor plus guidance), x0_hat = (x - sqrt(1 - abar) eps) / sqrt(abar)
        e_a = np.sqrt(1 - abar[t]) * k + w * np.sqrt(1 - abar[t])
        e_b = -np.sqrt(1 - abar[t]) * k * np.sqrt(abar[t]) * MU0 - w * np.sqrt(1 - abar[t]) * C
        x0_a = (1 - np.sqrt(1 - abar[t]) * e_a) / np.sqrt(abar[t])
        x0_b = -np.sqrt(1 - abar[t]) * e_b / np.sqrt(abar[t])
        a, b = c1[t] * x0_a + c2[t], c1[t] * x0_b
        m, v = a * m + b, a * a * v + (std[t] ** 2 if t > 0 else 0.0)
    return m, v


@pytest.mark.parametrize("w", [0.0, 0.5])
def test_guided_gaussian_chain_matches_the_closed_form(w):
    schedule = make_schedule("vp", 10)
    n, d = 40_000, 2
    guide = (lambda x, cond: -0.5 * jnp.sum((x - C) ** 2, axis=-1)) if w else None
    x0 = jax.jit(lambda k: sample(k, exact_eps(schedule), schedule, (n, d), guide_fn=guide, guide_scale=w))(
        jax.random.PRNGKey(0))
    m, v = closed_form_moments(schedule, w)
    x = np.asarray(x0, np.float64)
    np.testing.assert_allclose(x.mean(0), m, atol=4 * np.sqrt(v / n))
    np.testing.assert_allclose(x.var(0), v, rtol=0.03)
    if w == 0.0:  # the exact predictor without guidance gives back the data mean (a 10-step chain with the
        np.testing.assert_allclose(m, MU0, atol=0.01)  # clipped posterior variance under-disperses: v < s0^2)
        assert 0.3 * S0 ** 2 < v < S0 ** 2
    else:  # guidance pulls the mean towards the maximum c = 2 of J (by 0.23 at w = 0.5) and narrows it
        assert MU0 + 0.2 < m < C and v < closed_form_moments(schedule, 0.0)[1]


def test_inpainting_keeps_the_conditioned_entries_exactly_at_every_step():
    schedule = make_schedule("vp", 8)
    n, d = 64, 6
    mask = jnp.array([True, True, False, False, False, False])
    known = jax.random.normal(jax.random.PRNGKey(1), (n, d)) * 3.0
    config = SamplerConfig(return_trajectory=True)
    x0, traj = sample(jax.random.PRNGKey(2), exact_eps(schedule), schedule, (n, d), config=config,
                      inpaint=(mask, known))
    np.testing.assert_array_equal(np.asarray(x0[:, :2]), np.asarray(known[:, :2]))
    np.testing.assert_array_equal(np.asarray(traj["x"][:, :, :2]), np.broadcast_to(np.asarray(known[:, :2]), (9, n, 2)))
    # the free entries are still denoised to the data distribution (the exact predictor is separable here)
    free = np.asarray(jax.jit(lambda k: sample(k, exact_eps(schedule), schedule, (20_000, d),
                                              inpaint=(mask, jnp.zeros((20_000, d)))))(jax.random.PRNGKey(3)))[:, 2:]
    m, v = closed_form_moments(schedule, 0.0)
    np.testing.assert_allclose(free.mean(0), m, atol=4 * np.sqrt(v / 20_000))
    with pytest.raises(ValueError, match="inpaint mask"):
        sample(jax.random.PRNGKey(0), exact_eps(schedule), schedule, (n, d), inpaint=(jnp.ones(5, bool), known))
