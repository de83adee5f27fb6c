"""MIMO channel generators and the pilot model against closed forms."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import mimo_channels as mc


def test_kronecker_covariance_matches_the_closed_form():
    h = mc.kronecker_rayleigh(jax.random.PRNGKey(0), 40_000, 2, 3, rho_r=0.7, rho_t=0.4)
    v = np.asarray(h).reshape(h.shape[0], -1)
    empirical = v.T @ v.conj() / v.shape[0]
    closed = mc.kronecker_covariance(2, 3, 0.7, 0.4)
    # R_r kron R_t^T by hand for the first row: rho_t^|j-k| within a receive antenna, scaled by rho_r across
    np.testing.assert_allclose(closed[0, :3], [1.0, 0.4, 0.16])
    np.testing.assert_allclose(closed[0, 3:], 0.7 * np.array([1.0, 0.4, 0.16]))
    assert np.max(np.abs(empirical - closed)) < 0.03


@pytest.mark.parametrize("profile", sorted(mc.PROFILES))
def test_clustered_channels_have_unit_power_and_are_sparse_in_the_angular_domain(profile):
    n_r, n_t = 8, 16
    h = np.asarray(mc.clustered_channels(jax.random.PRNGKey(1), 4000, n_r, n_t, profile))
    np.testing.assert_allclose(np.mean(np.abs(h) ** 2), 1.0, rtol=0.05)
    # angular (2-D DFT) domain: the share of the energy in the 10% strongest bins
    ang = np.fft.fft(np.fft.fft(h, axis=1, norm="ortho"), axis=2, norm="ortho")
    e = np.sort((np.abs(ang) ** 2).reshape(len(h), -1), axis=1)[:, ::-1]
    top = e[:, : n_r * n_t // 10].sum(1) / e.sum(1)
    rayleigh = np.asarray(mc.kronecker_rayleigh(jax.random.PRNGKey(2), 4000, n_r, n_t, 0.0, 0.0))
    ang_r = np.fft.fft(np.fft.fft(rayleigh, axis=1, norm="ortho"), axis=2, norm="ortho")
    e_r = np.sort((np.abs(ang_r) ** 2).reshape(4000, -1), axis=1)[:, ::-1]
    top_r = e_r[:, : n_r * n_t // 10].sum(1) / e_r.sum(1)
    assert np.mean(top_r) < 0.35  # i.i.d. channels spread their energy
    assert np.mean(top) > {"cdl-a": 0.8, "cdl-b": 0.6, "cdl-c": 0.45}[profile]


def test_single_ray_channel_is_rank_one_with_the_stated_gain():
    prof = mc.ClusterProfile("one", num_clusters=1, rays_per_cluster=1, angular_spread_deg=0.0, power_decay=0.0)
    h = np.asarray(mc.clustered_channels(jax.random.PRNGKey(3), 200, 4, 6, prof))
    s = np.linalg.svd(h, compute_uv=False)
    assert np.all(s[:, 1] < 1e-4 * s[:, 0])
    # ||H||_F^2 = N_r N_t |g|^2 with |g|^2 ~ Exp(1)
    np.testing.assert_allclose(np.mean(np.sum(np.abs(h) ** 2, axis=(1, 2))), 24.0, rtol=0.2)


def test_observation_has_unit_signal_power_and_the_stated_noise_variance():
    h = mc.kronecker_rayleigh(jax.random.PRNGKey(4), 20_000, 4, 8, 0.0, 0.0)
    p = mc.qpsk_pilots(jax.random.PRNGKey(5), 8, 4)
    np.testing.assert_allclose(np.abs(np.asarray(p)) ** 2, 1 / 8, rtol=1e-6)
    y = mc.observe(jax.random.PRNGKey(6), h, p, 3.0)
    noise = np.asarray(y - h @ p)
    np.testing.assert_allclose(np.mean(np.abs(noise) ** 2), 10 ** -0.3, rtol=0.03)
    np.testing.assert_allclose(np.mean(np.abs(np.asarray(h @ p)) ** 2), 1.0, rtol=0.03)
    # vec(Y) = (I kron P^T) vec(H) in the row-major convention
    a = np.asarray(mc.pilot_operator(p, 4))
    np.testing.assert_allclose(np.asarray(h[0] @ p).reshape(-1), a @ np.asarray(h[0]).reshape(-1), atol=1e-5)


def test_quantiser_levels_and_error():
    y = (jax.random.normal(jax.random.PRNGKey(7), (1000,)) + 1j * jax.random.normal(jax.random.PRNGKey(8), (1000,)))
    q = np.asarray(mc.quantize(y.astype(jnp.complex64), 3, 2.0))
    delta = 4.0 / 8
    levels = (np.arange(8) + 0.5) * delta - 2.0
    assert np.all(np.isin(np.round(q.real, 5), np.round(levels, 5)))
    inside = np.abs(np.asarray(y.real)) < 2.0
    assert np.all(np.abs(q.real - np.asarray(y.real))[inside] <= delta / 2 + 1e-6)
    assert np.all(np.abs(q.real[~inside]) == pytest.approx(2.0 - delta / 2))


def test_real_stacking_round_trip_and_bad_input():
    h = mc.kronecker_rayleigh(jax.random.PRNGKey(9), 3, 2, 4)
    np.testing.assert_array_equal(np.asarray(mc.from_real(mc.to_real(h), 2, 4)), np.asarray(h))
    p = mc.qpsk_pilots(jax.random.PRNGKey(0), 4, 2)
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="pilots must be"):
        mc.observe(key, h, mc.qpsk_pilots(key, 3, 2), 10.0)
    with pytest.raises(TypeError, match="snr_db"):
        mc.observe(key, h, p, "10")
    with pytest.raises(TypeError, match="snr_db"):
        mc.observe(key, h, p, 10.0 + 1j)
    with pytest.raises(TypeError, match="channels must be complex"):
        mc.observe(key, jnp.abs(h), p, 10.0)
    with pytest.raises(TypeError, match="from_real"):
        mc.from_real(h.reshape(3, -1), 2, 4)
    with pytest.raises(TypeError, match="to_real"):
        mc.to_real(jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="unknown channel profile"):
        mc.clustered_channels(key, 2, 2, 4, "cdl-z")
    with pytest.raises(ValueError, match="rho"):
        mc.kronecker_rayleigh(key, 2, 2, 4, rho_r=1.0)


@pytest.mark.parametrize("profile", ["cdl-a", "cdl-c"])
def test_conditional_covariances_match_the_drawn_channels(profile):
    """Given its angles a clustered channel is CN(0, C_n): E[h h^H - C_n] = 0 over channels, and the whitened
    energy h^H C_n^+ h has mean rank(C_n) (chi-square with rank(C_n) complex degrees of freedom)."""
    key = jax.random.PRNGKey(4)
    h = np.asarray(mc.clustered_channels(key, 12000, 3, 5, profile)).reshape(12000, -1).astype(np.complex128)
    c = np.asarray(mc.clustered_conditional_covariances(key, 12000, 3, 5, profile)).astype(np.complex128)
    outer = np.einsum("ni,nj->nij", h, h.conj())
    mean_c = c.mean(0)
    assert np.linalg.norm(outer.mean(0) - mean_c) / np.linalg.norm(mean_c) < 0.06
    np.testing.assert_allclose(np.real(np.trace(mean_c)), 15.0, rtol=1e-4)  # E||H||_F^2 = N_r N_t
    w, v = np.linalg.eigh(c[:1000])
    keep = w > 1e-3 * w[:, -1:]  # the numerically nonzero eigen-directions of each C_n
    proj = np.abs(np.einsum("nij,ni->nj", v.conj(), h[:1000])) ** 2
    quad = np.sum(np.where(keep, proj / np.where(keep, w, 1.0), 0.0), axis=1)
    ranks = keep.sum(1)
    np.testing.assert_allclose(quad.mean(), ranks.mean(), rtol=0.05)
