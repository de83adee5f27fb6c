"""Score-based core (jaxdiff_rl.diffusion.score) on Gaussian targets whose noised scores are known in closed form."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff_rl.diffusion.score import annealed_langevin, dsm_loss, geometric_sigmas, reverse_sde

MU = jnp.array([1.0, -2.0, 0.5, 0.0])
VAR = jnp.array([0.25, 1.0, 2.0, 0.05])


def exact_score(sigmas):
    # the data N(mu, diag var) convolved with N(0, sigma^2 I)
    return lambda x, i: -(x - MU) / (VAR + sigmas[i] ** 2)


def test_geometric_ladder_and_bad_input():
    s = np.asarray(geometric_sigmas(10.0, 0.01, 4))
    np.testing.assert_allclose(s, [10.0, 1.0, 0.1, 0.01], rtol=1e-6)
    with pytest.raises(ValueError, match="sigma_min"):
        geometric_sigmas(0.1, 1.0, 4)
    with pytest.raises(ValueError, match="num_levels"):
        geometric_sigmas(1.0, 0.1, 1)


def test_dsm_loss_of_the_exact_score_is_its_closed_form_minimum():
    sigmas = geometric_sigmas(5.0, 0.1, 6)
    x0 = MU + jnp.sqrt(VAR) * jax.random.normal(jax.random.PRNGKey(0), (200_000, 4))
    # the optimal noise predictor z_hat = -sigma s(x) = sigma (x - mu) / (var + sigma^2)
    opt = lambda x, i, c, u: sigmas[i][:, None] * (x - MU) / (VAR + sigmas[i][:, None] ** 2)
    loss = float(dsm_loss(jax.random.PRNGKey(1), opt, sigmas, x0))
    # E||z_hat - z||^2 per dim = var / (var + sigma^2), averaged over the levels and dims
    closed = float(np.mean(np.asarray(VAR)[None] / (np.asarray(VAR)[None] + np.asarray(sigmas)[:, None] ** 2)))
    np.testing.assert_allclose(loss, closed, rtol=0.01)
    zero = float(dsm_loss(jax.random.PRNGKey(1), lambda x, i, c, u: jnp.zeros_like(x), sigmas, x0))
    np.testing.assert_allclose(zero, 1.0, rtol=0.01)


@pytest.mark.parametrize("sampler", ["langevin", "sde"])
def test_samplers_draw_the_gaussian_target(sampler):
    # Euler-Maruyama needs a fine ladder (its discretisation inflates the variance by ~25% at 30 levels)
    sigmas = geometric_sigmas(10.0, 0.01, 30 if sampler == "langevin" else 100)
    x_init = sigmas[0] * jax.random.normal(jax.random.PRNGKey(2), (8000, 4))
    if sampler == "langevin":
        x = annealed_langevin(jax.random.PRNGKey(3), exact_score(sigmas), x_init, sigmas, 20, 5e-5, final_denoise=False)
    else:
        x = reverse_sde(jax.random.PRNGKey(3), exact_score(sigmas), x_init, sigmas, corrector_steps=1)
    x = np.asarray(x)
    np.testing.assert_allclose(x.mean(0), MU, atol=0.06)
    np.testing.assert_allclose(x.var(0), VAR, rtol=0.1)


def test_likelihood_score_gives_the_gaussian_posterior():
    """Prior N(0, 1) in 2-D, y = x_1 + n with n ~ N(0, 0.1): the posterior of x_1 is N(y / 1.1, 0.1 / 1.1) and
    x_2 keeps its prior."""
    sigmas = geometric_sigmas(10.0, 0.01, 30)
    y = 0.8
    prior = lambda x, i: -x / (1.0 + sigmas[i] ** 2)
    lik = lambda x, sigma: jnp.stack([(y - x[:, 0]) / (0.1 + sigma**2), jnp.zeros(x.shape[0])], axis=1)
    x_init = sigmas[0] * jax.random.normal(jax.random.PRNGKey(4), (8000, 2))
    x = np.asarray(annealed_langevin(jax.random.PRNGKey(5), prior, x_init, sigmas, 20, 5e-5, likelihood_score=lik,
                                     final_denoise=False))
    np.testing.assert_allclose(x[:, 0].mean(), y / 1.1, atol=0.02)
    np.testing.assert_allclose(x[:, 0].var(), 0.1 / 1.1, rtol=0.1)
    np.testing.assert_allclose(x[:, 1].var(), 1.0, rtol=0.08)


def test_vp_from_ladder_gives_the_exact_vp_noise_predictor_of_a_gaussian():
    """A noise-ladder model run as DDPM: for data N(mu, diag var) the VP noise predictor is closed form,
    eps*(x_t) = sqrt(1 - abar) (x_t - sqrt(abar) mu) / (abar var + 1 - abar)."""
    from jaxdiff_rl.diffusion.score import vp_from_ladder

    sigmas = geometric_sigmas(8.0, 0.02, 6)
    def z_model(x, i, c=None, u=None):  # i [] or [B]
        sig = sigmas[i][..., None]
        return sig * (x - MU) / (VAR + sig**2)

    eps_fn, schedule = vp_from_ladder(z_model, sigmas)
    abar = np.asarray(schedule.alpha_bars, np.float64)
    np.testing.assert_allclose(abar, 1.0 / (1.0 + np.asarray(sigmas, np.float64)[::-1] ** 2), rtol=1e-5)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 4))
    for t in range(6):
        want = np.sqrt(1 - abar[t]) * (np.asarray(x) - np.sqrt(abar[t]) * np.asarray(MU)) / (
            abar[t] * np.asarray(VAR) + 1 - abar[t])
        np.testing.assert_allclose(np.asarray(eps_fn(x, jnp.int32(t))), want, rtol=2e-4, atol=2e-5)
        np.testing.assert_allclose(np.asarray(eps_fn(x, jnp.full((5,), t, jnp.int32))), want, rtol=2e-4, atol=2e-5)


def test_ladder_and_step_size_errors_name_the_argument():
    from jaxdiff_rl.diffusion.score import vp_from_ladder

    sigmas = geometric_sigmas(8.0, 0.02, 6)
    with pytest.raises(ValueError, match="concrete noise ladder"):
        jax.jit(lambda s: vp_from_ladder(lambda x, i, c=None, u=None: x, s)[1].betas)(sigmas)
    # inside jit a NumPy ladder is concrete and works
    betas = jax.jit(lambda: vp_from_ladder(lambda x, i, c=None, u=None: x,
                                           geometric_sigmas(8.0, 0.02, 6, as_numpy=True))[1].betas)()
    assert np.all((np.asarray(betas) > 0) & (np.asarray(betas) < 1))
    score = exact_score(sigmas)
    with pytest.raises(ValueError, match="one per level"):
        annealed_langevin(jax.random.PRNGKey(0), score, jnp.zeros((2, 4)), sigmas, 1, jnp.full(5, 1e-4))
    with pytest.raises(ValueError, match="step_size"):
        annealed_langevin(jax.random.PRNGKey(0), score, jnp.zeros((2, 4)), sigmas, 1,
                          np.array([1e-4] * 5 + [1.0]))
