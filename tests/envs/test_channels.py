"""envs.channels against closed forms and NumPy."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from envs import channels as ch


def test_db_conversions_closed_form():
    x_db = np.array([-30.0, -3.0, 0.0, 3.0, 10.0, 23.5])
    np.testing.assert_allclose(ch.db_to_linear(x_db), 10 ** (x_db / 10), rtol=1e-6)
    np.testing.assert_allclose(ch.linear_to_db(10 ** (x_db / 10)), x_db, atol=1e-5)
    np.testing.assert_allclose(ch.dbm_to_watt(np.array([30.0, 0.0, -30.0, 10 * math.log10(3000.0)])), [1.0, 1e-3, 1e-6, 3.0], rtol=1e-5)
    np.testing.assert_allclose(ch.watt_to_dbm(np.array([1.0, 1e-3, 3.0])), [30.0, 0.0, 10 * math.log10(3000)], atol=1e-5)


def test_noise_power_thermal_floor():
    # -174 dBm/Hz over 1 MHz = -114 dBm; seed 003's -97 dBm/Hz over 1 MHz = -37 dBm
    assert float(ch.noise_power(-174.0, 1e6)) == pytest.approx(10 ** (-14.4) * 1e-3, rel=1e-5)
    assert float(ch.watt_to_dbm(ch.noise_power(-97.0, 1e6))) == pytest.approx(-37.0, abs=1e-4)


def test_path_loss_closed_form():
    d = np.array([1.0, 10.0, 100.0, 316.2])
    np.testing.assert_allclose(ch.path_loss(d, 4.16e-6, 3.6), 4.16e-6 * d**-3.6, rtol=1e-5)
    assert float(ch.path_loss(1.0, 60.0, 2.0)) == pytest.approx(60.0)


def test_ula_steering_matches_numpy_and_is_normalised():
    theta = np.deg2rad(np.array([-50.0, 0.0, 20.0, 73.0]))
    a = np.asarray(ch.ula_steering(theta, 6))
    ref = np.exp(1j * np.pi * np.arange(6)[None, :] * np.sin(theta)[:, None]) / np.sqrt(6)
    np.testing.assert_allclose(a, ref, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(a, axis=-1), 1.0, rtol=1e-6)
    # array factor |a(t1)^H a(t2)| is the Dirichlet kernel |sin(N x/2) / (N sin(x/2))|, x = pi (sin t2 - sin t1)
    x = np.pi * (np.sin(theta[2]) - np.sin(theta[0]))
    dirichlet = abs(np.sin(6 * x / 2) / (6 * np.sin(x / 2)))
    assert abs(np.vdot(a[0], a[2])) == pytest.approx(dirichlet, rel=1e-5)


def test_los_channel_amplitude():
    h = np.asarray(ch.los_channel(np.array([150.0]), np.array([0.3]), 4, 4.16e-6, 3.6))
    assert h.shape == (1, 4)
    assert np.linalg.norm(h) ** 2 == pytest.approx(4.16e-6 * 150.0**-3.6, rel=1e-5)


def _ks_exp1(samples):
    """Kolmogorov-Smirnov distance of samples to Exp(1)."""
    x = np.sort(samples)
    n = len(x)
    cdf = 1.0 - np.exp(-x)
    return max(np.max(np.arange(1, n + 1) / n - cdf), np.max(cdf - np.arange(n) / n))


def test_rayleigh_power_is_exponential():
    h = np.asarray(ch.rayleigh_fading(jax.random.key(0), (200_000,)))
    power = np.abs(h) ** 2
    assert power.mean() == pytest.approx(1.0, abs=0.01)
    assert abs(h.mean()) < 0.01
    assert np.mean(h.real * h.imag) == pytest.approx(0.0, abs=0.01)  # circular
    assert _ks_exp1(power) < 1.36 / np.sqrt(len(power)) * 1.5  # well inside the 5% KS band


def test_rician_moments():
    k = 3.0
    los = np.exp(1j * 0.7)
    h = np.asarray(ch.rician_fading(jax.random.key(1), (200_000,), k, los))
    np.testing.assert_allclose(h.mean(), np.sqrt(k / (k + 1)) * los, atol=0.01)
    assert np.mean(np.abs(h) ** 2) == pytest.approx(1.0, abs=0.01)
    assert np.var(h) == pytest.approx(1.0 / (k + 1), abs=0.01)  # scattered power
    # K = 0 is Rayleigh
    h0 = np.asarray(ch.rician_fading(jax.random.key(2), (100_000,), 0.0))
    assert abs(h0.mean()) < 0.01


def test_block_fading_constant_within_blocks():
    h = np.asarray(ch.block_fading(jax.random.key(3), 10, 4, (2,)))
    assert h.shape == (10, 2)
    for t in range(10):
        np.testing.assert_array_equal(h[t], h[(t // 4) * 4])
    assert not np.allclose(h[0], h[4])


def test_shannon_rate():
    snr = np.array([0.0, 1.0, 3.0, 1e3])
    np.testing.assert_allclose(ch.shannon_rate(snr), np.log2(1 + snr), rtol=1e-6)
    np.testing.assert_allclose(ch.shannon_rate(snr, 1e6), 1e6 * np.log2(1 + snr), rtol=1e-6)


def test_channels_jit_and_vmap():
    f = jax.jit(jax.vmap(lambda d, t: ch.los_channel(d, t, 6, 4.16e-6, 3.6)))
    out = f(jnp.array([100.0, 200.0]), jnp.array([0.1, -0.2]))
    assert out.shape == (2, 6) and out.dtype == jnp.complex64
