"""Wireless channel primitives: unit conversions, path loss, ULA steering vectors, fading, Shannon rate.

All functions are pure, jittable and broadcast over leading dimensions. Units are SI (W, m, Hz, rad);
dB quantities only appear at the edges through the converters here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = [
    "db_to_linear",
    "linear_to_db",
    "dbm_to_watt",
    "watt_to_dbm",
    "noise_power",
    "path_loss",
    "ula_steering",
    "los_channel",
    "rayleigh_fading",
    "rician_fading",
    "block_fading",
    "shannon_rate",
]


def db_to_linear(x_db: jax.Array) -> jax.Array:
    """Power ratio in dB -> linear: 10^(x/10). Any shape."""
    return jnp.power(10.0, jnp.asarray(x_db, jnp.float32) / 10.0)


def linear_to_db(x: jax.Array) -> jax.Array:
    """Linear power ratio (> 0) -> dB: 10 log10(x). Any shape."""
    return 10.0 * jnp.log10(jnp.asarray(x, jnp.float32))


def dbm_to_watt(p_dbm: jax.Array) -> jax.Array:
    """Power in dBm -> W: 10^((p - 30)/10). Any shape."""
    return jnp.power(10.0, (jnp.asarray(p_dbm, jnp.float32) - 30.0) / 10.0)


def watt_to_dbm(p_w: jax.Array) -> jax.Array:
    """Power in W (> 0) -> dBm: 10 log10(p) + 30. Any shape."""
    return 10.0 * jnp.log10(jnp.asarray(p_w, jnp.float32)) + 30.0


def noise_power(density_dbm_per_hz: jax.Array, bandwidth_hz: jax.Array) -> jax.Array:
    """Thermal noise power in W from a spectral density in dBm/Hz over a bandwidth in Hz.

    Example: -174 dBm/Hz over 1 MHz -> 10^(-20.4) W = -114 dBm.
    """
    return dbm_to_watt(density_dbm_per_hz) * jnp.asarray(bandwidth_hz, jnp.float32)


def path_loss(distance_m: jax.Array, rho0: float | jax.Array, alpha: float | jax.Array) -> jax.Array:
    """Large-scale power gain rho0 * d^-alpha (linear, dimensionless); rho0 is the gain at 1 m.

    Args:
        distance_m: distances in m, any shape, > 0.
        rho0: reference gain at 1 m (linear), e.g. 4.16e-6.
        alpha: path-loss exponent, e.g. 3.6.
    """
    d = jnp.asarray(distance_m, jnp.float32)
    return jnp.asarray(rho0, jnp.float32) * jnp.power(d, -jnp.asarray(alpha, jnp.float32))


def ula_steering(theta_rad: jax.Array, num_antennas: int, spacing_wavelengths: float = 0.5) -> jax.Array:
    """Normalised uniform-linear-array steering vector.

    a(theta) = N^-1/2 [1, e^{j 2 pi s sin theta}, ..., e^{j 2 pi s (N-1) sin theta}]^T with element spacing
    s (in wavelengths; s = 1/2 gives the e^{j pi n sin theta} of seed 003 section III-A). ||a|| = 1.

    Args:
        theta_rad: angles in rad, shape [...].
        num_antennas: N (static).
        spacing_wavelengths: element spacing in wavelengths.
    Returns:
        complex64 [..., N].
    """
    theta = jnp.asarray(theta_rad, jnp.float32)[..., None]
    n = jnp.arange(num_antennas, dtype=jnp.float32)
    phase = 2.0 * jnp.pi * spacing_wavelengths * n * jnp.sin(theta)
    return (jnp.exp(1j * phase) / jnp.sqrt(jnp.float32(num_antennas))).astype(jnp.complex64)


def los_channel(
    distance_m: jax.Array,
    theta_rad: jax.Array,
    num_antennas: int,
    rho0: float | jax.Array,
    alpha: float | jax.Array,
) -> jax.Array:
    """Line-of-sight MISO/SIMO channel h = sqrt(rho0 d^-alpha) a(theta): complex64 [..., N]."""
    amplitude = jnp.sqrt(path_loss(distance_m, rho0, alpha))[..., None]
    return (amplitude * ula_steering(theta_rad, num_antennas)).astype(jnp.complex64)


def rayleigh_fading(key: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    """Small-scale Rayleigh coefficients h ~ CN(0, 1): complex64 of `shape`, E|h|^2 = 1, |h|^2 ~ Exp(1)."""
    re_key, im_key = jax.random.split(key)
    re = jax.random.normal(re_key, shape, jnp.float32)
    im = jax.random.normal(im_key, shape, jnp.float32)
    return ((re + 1j * im) / jnp.sqrt(jnp.float32(2.0))).astype(jnp.complex64)


def rician_fading(
    key: jax.Array,
    shape: tuple[int, ...],
    k_factor: float | jax.Array,
    los: jax.Array | complex = 1.0,
) -> jax.Array:
    """Rician coefficients h = sqrt(K/(K+1)) h_los + sqrt(1/(K+1)) CN(0,1).

    Args:
        k_factor: Rician K (linear, >= 0); K = 0 is Rayleigh, K -> inf is pure LoS.
        los: unit-modulus line-of-sight component, broadcastable to `shape` (default 1).
    Returns:
        complex64 of `shape`; E[h] = sqrt(K/(K+1)) los, E|h|^2 = 1 when |los| = 1.
    """
    k = jnp.asarray(k_factor, jnp.float32)
    scattered = rayleigh_fading(key, shape)
    return (jnp.sqrt(k / (k + 1.0)) * jnp.asarray(los) + jnp.sqrt(1.0 / (k + 1.0)) * scattered).astype(
        jnp.complex64
    )


def block_fading(
    key: jax.Array,
    num_slots: int,
    block_length: int,
    shape: tuple[int, ...],
    k_factor: float | jax.Array = 0.0,
    los: jax.Array | complex = 1.0,
) -> jax.Array:
    """Block fading over time: an independent Rician (Rayleigh for K = 0) draw every `block_length` slots,
    held constant within the block.

    Returns:
        complex64 [num_slots, *shape]; slots t and t' share a coefficient iff t // L == t' // L.
    """
    num_blocks = -(-num_slots // block_length)
    blocks = rician_fading(key, (num_blocks, *shape), k_factor, los)
    return jnp.repeat(blocks, block_length, axis=0)[:num_slots]


def shannon_rate(snr: jax.Array, bandwidth_hz: float | jax.Array = 1.0) -> jax.Array:
    """Shannon rate B log2(1 + SNR): bit/s for a bandwidth in Hz, bit/s/Hz with the default B = 1.
    Computed with log1p, so it stays accurate at low SNR (float32 1 + 1e-4 keeps only 3 digits of the SNR)."""
    return jnp.asarray(bandwidth_hz, jnp.float32) * jnp.log1p(jnp.asarray(snr, jnp.float32)) / jnp.log(2.0)
