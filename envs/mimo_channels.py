"""MIMO channel generators and the pilot observation model for channel estimation (seed 001 sec. III).

Conventions (every function here and in `jaxdiff_rl.estimate` follows them):
- A channel is H [N_r, N_t] complex64 (receive x transmit), normalised so that E|H_ij|^2 = 1, i.e.
  E ||H||_F^2 = N_r N_t, for every generator.
- vec(H) is the row-major flattening `H.reshape(N_r * N_t)`; then vec(A H B) = (A kron B^T) vec(H), and the
  pilot model below is vec(Y) = (I_{N_r} kron P^T) vec(H) + vec(N).
- Pilots: Y = H P + N with P [N_t, N_p] (N_p < N_t allowed: under-determined) and N i.i.d. CN(0, sigma^2). The
  default pilots are random QPSK with unit-norm columns (|P_jk|^2 = 1 / N_t), so every received entry has
  E|[H P]_ik|^2 = 1 and SNR = 1 / sigma^2 (per receive antenna and pilot symbol).

Generators:
- `kronecker_rayleigh`: spatially correlated Rayleigh, H = R_r^{1/2} G R_t^{1/2} with G i.i.d. CN(0, 1) and
  exponential correlation [R]_ij = rho^|i-j| at each end; cov(vec H) = R_r kron R_t^T (`kronecker_covariance`).
- `clustered_channels`: clustered sparse multipath on half-wavelength ULAs,
  H = sqrt(N_r N_t / R) sum_c sqrt(p_c) sum_r g_cr a_r(theta_cr) a_t(phi_cr)^H, g_cr ~ CN(0, 1), C clusters of R
  rays each, cluster centre angles uniform on [-pi/2, pi/2) (independently at both ends), ray offsets Laplacian
  with the profile's angular spread (rms, deg), cluster powers p_c proportional to exp(-c * decay) (sum 1),
  steering vectors `envs.channels.ula_steering` (unit norm). `PROFILES` holds three parameter sets that play the
  role of 3GPP CDL profiles here (they are not the 3GPP tables): "cdl-a" few narrow clusters (the sparsest),
  "cdl-b" more and wider clusters, "cdl-c" rich scattering (closest to Rayleigh).
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from envs.channels import ula_steering

__all__ = [
    "ClusterProfile",
    "PROFILES",
    "exponential_correlation",
    "kronecker_covariance",
    "kronecker_rayleigh",
    "clustered_channels",
    "clustered_conditional_covariances",
    "qpsk_pilots",
    "pilot_operator",
    "observe",
    "noise_variance",
    "quantize",
    "to_real",
    "from_real",
    "nmse_db",
]


@dataclasses.dataclass(frozen=True)
class ClusterProfile:
    """Clustered multipath parameters. Attributes: num_clusters C, rays_per_cluster R, angular_spread_deg (rms of
    the Laplacian ray offsets around the cluster centre, the same at both ends), power_decay (p_c ~ exp(-c decay))."""

    name: str
    num_clusters: int
    rays_per_cluster: int
    angular_spread_deg: float
    power_decay: float

    def __post_init__(self) -> None:
        for field in ("num_clusters", "rays_per_cluster"):
            v = getattr(self, field)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"ClusterProfile.{field} must be an integer >= 1, got {v!r}")
        if not 0.0 <= self.angular_spread_deg <= 90.0:
            raise ValueError(f"ClusterProfile.angular_spread_deg must be in [0, 90], got {self.angular_spread_deg!r}")
        if not self.power_decay >= 0.0:
            raise ValueError(f"ClusterProfile.power_decay must be >= 0, got {self.power_decay!r}")


PROFILES = {
    "cdl-a": ClusterProfile("cdl-a", num_clusters=3, rays_per_cluster=4, angular_spread_deg=2.0, power_decay=0.5),
    "cdl-b": ClusterProfile("cdl-b", num_clusters=6, rays_per_cluster=6, angular_spread_deg=5.0, power_decay=0.3),
    "cdl-c": ClusterProfile("cdl-c", num_clusters=12, rays_per_cluster=10, angular_spread_deg=10.0, power_decay=0.1),
}


def _check_dims(n_r: int, n_t: int) -> None:
    for name, v in (("n_r", n_r), ("n_t", n_t)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} (antennas) must be an integer >= 1, got {v!r}")


def exponential_correlation(n: int, rho: float) -> np.ndarray:
    """[R]_ij = rho^|i - j|, float64 [n, n]; rho in [0, 1) (0: uncorrelated)."""
    if not 0.0 <= rho < 1.0:
        raise ValueError(f"correlation rho must be in [0, 1), got {rho!r}")
    idx = np.arange(n)
    return rho ** np.abs(idx[:, None] - idx[None, :])


def _sqrtm_psd(r: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh(r)
    return (v * np.sqrt(np.maximum(w, 0.0))) @ v.conj().T


def kronecker_covariance(n_r: int, n_t: int, rho_r: float, rho_t: float) -> np.ndarray:
    """cov(vec H) = R_r kron R_t^T for the Kronecker model, complex128 [N_r N_t, N_r N_t] (row-major vec)."""
    _check_dims(n_r, n_t)
    return np.kron(exponential_correlation(n_r, rho_r), exponential_correlation(n_t, rho_t).T).astype(np.complex128)


def kronecker_rayleigh(key: jax.Array, num: int, n_r: int, n_t: int, rho_r: float = 0.5,
                       rho_t: float = 0.5) -> jax.Array:
    """`num` Kronecker-correlated Rayleigh channels, complex64 [num, N_r, N_t], E|H_ij|^2 = 1."""
    _check_dims(n_r, n_t)
    sr = jnp.asarray(_sqrtm_psd(exponential_correlation(n_r, rho_r)), jnp.complex64)
    st = jnp.asarray(_sqrtm_psd(exponential_correlation(n_t, rho_t)), jnp.complex64)
    kr, ki = jax.random.split(key)
    g = (jax.random.normal(kr, (num, n_r, n_t)) + 1j * jax.random.normal(ki, (num, n_r, n_t))) / math.sqrt(2.0)
    return (sr @ g.astype(jnp.complex64) @ st).astype(jnp.complex64)


def _profile(profile: str | ClusterProfile) -> ClusterProfile:
    if isinstance(profile, str):
        if profile not in PROFILES:
            raise ValueError(f"unknown channel profile {profile!r}; valid: {sorted(PROFILES)}")
        return PROFILES[profile]
    return profile


def _cluster_geometry(key: jax.Array, num: int, n_r: int, n_t: int, profile: ClusterProfile
                      ) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(ray atoms sqrt(N_r N_t / R) vec(a_r a_t^H) [num, C R, N_r N_t], ray powers p_c [C R], gain key)."""
    c, r = profile.num_clusters, profile.rays_per_cluster
    # a Laplacian with rms s has scale s / sqrt(2)
    scale = math.radians(profile.angular_spread_deg) / math.sqrt(2.0)
    k_ca, k_cd, k_ra, k_rd, k_g = jax.random.split(key, 5)
    centre_r = jax.random.uniform(k_ca, (num, c, 1), minval=-math.pi / 2, maxval=math.pi / 2)
    centre_t = jax.random.uniform(k_cd, (num, c, 1), minval=-math.pi / 2, maxval=math.pi / 2)
    theta = centre_r + scale * jax.random.laplace(k_ra, (num, c, r))
    phi = centre_t + scale * jax.random.laplace(k_rd, (num, c, r))
    powers = np.exp(-profile.power_decay * np.arange(c))
    powers = jnp.asarray(np.repeat(powers / powers.sum(), r), jnp.float32)
    a_r = ula_steering(theta, n_r)  # [num, C, R, N_r]
    a_t = ula_steering(phi, n_t)  # [num, C, R, N_t]
    atoms = jnp.einsum("ncri,ncrj->ncrij", a_r, jnp.conj(a_t)).reshape(num, c * r, n_r * n_t)
    return (math.sqrt(n_r * n_t / r) * atoms).astype(jnp.complex64), powers, k_g


def clustered_channels(key: jax.Array, num: int, n_r: int, n_t: int, profile: str | ClusterProfile = "cdl-a"
                       ) -> jax.Array:
    """`num` clustered sparse multipath channels (module docstring), complex64 [num, N_r, N_t], E|H_ij|^2 = 1."""
    _check_dims(n_r, n_t)
    atoms, powers, k_g = _cluster_geometry(key, num, n_r, n_t, _profile(profile))
    kr, ki = jax.random.split(k_g)
    shape = (num, powers.shape[0])
    g = (jax.random.normal(kr, shape) + 1j * jax.random.normal(ki, shape)) / math.sqrt(2.0)
    h = jnp.einsum("nk,nki->ni", g * jnp.sqrt(powers), atoms)
    return h.reshape(num, n_r, n_t).astype(jnp.complex64)


def clustered_conditional_covariances(key: jax.Array, num: int, n_r: int, n_t: int,
                                      profile: str | ClusterProfile = "cdl-a") -> jax.Array:
    """cov(vec H | ray angles) of the channels `clustered_channels(key, ...)` draws with the same arguments,
    complex64 [num, N_r N_t, N_r N_t]: given its angles a clustered channel is Gaussian, so the LMMSE estimate with
    this covariance is the angle-genie MMSE, a lower bound on any estimator's MSE (the true MMSE included)."""
    _check_dims(n_r, n_t)
    atoms, powers, _ = _cluster_geometry(key, num, n_r, n_t, _profile(profile))
    return jnp.einsum("k,nki,nkj->nij", powers, atoms, jnp.conj(atoms)).astype(jnp.complex64)


def qpsk_pilots(key: jax.Array, n_t: int, n_p: int) -> jax.Array:
    """Random QPSK pilot matrix P [N_t, N_p] complex64 with |P_jk|^2 = 1 / N_t (unit-norm columns)."""
    _check_dims(n_t, n_p)
    bits = jax.random.bernoulli(key, 0.5, (2, n_t, n_p))
    sym = (2.0 * bits[0] - 1.0) + 1j * (2.0 * bits[1] - 1.0)
    return (sym / math.sqrt(2.0 * n_t)).astype(jnp.complex64)


def pilot_operator(pilots: jax.Array, n_r: int) -> jax.Array:
    """A = I_{N_r} kron P^T [N_r N_p, N_r N_t] complex64, so that vec(Y) = A vec(H) + vec(N)."""
    return jnp.kron(jnp.eye(n_r, dtype=jnp.complex64), jnp.asarray(pilots, jnp.complex64).T)


def _check_snr(snr_db) -> jax.Array:
    if isinstance(snr_db, (str, bytes)) or (hasattr(snr_db, "dtype") and not jnp.issubdtype(snr_db.dtype, jnp.number)):
        raise TypeError(f"snr_db must be a number (dB) or a numeric array, got {type(snr_db).__name__} {snr_db!r}")
    snr = jnp.asarray(snr_db)
    if jnp.iscomplexobj(snr):
        raise TypeError(f"snr_db must be real (dB), got a complex value {snr_db!r}")
    return snr.astype(jnp.float32)


def noise_variance(snr_db) -> jax.Array:
    """sigma^2 = 10^(-SNR/10): the complex noise variance at unit received power per entry (module docstring)."""
    return jnp.power(10.0, -_check_snr(snr_db) / 10.0)


def _check_channels_pilots(channels: jax.Array, pilots: jax.Array) -> None:
    for name, arr in (("channels", channels), ("pilots", pilots)):
        if not jnp.iscomplexobj(arr):
            raise TypeError(f"{name} must be complex (complex64), got dtype {jnp.asarray(arr).dtype}; "
                            "use envs.mimo_channels.from_real for real-stacked arrays")
    if channels.ndim < 2 or pilots.ndim != 2 or pilots.shape[0] != channels.shape[-1]:
        raise ValueError(f"pilots must be [N_t, N_p] with N_t = channels.shape[-1] = {channels.shape[-1]}, got "
                         f"pilots of shape {pilots.shape} for channels of shape {channels.shape}")


def observe(key: jax.Array, channels: jax.Array, pilots: jax.Array, snr_db) -> jax.Array:
    """Y = H P + N, N i.i.d. CN(0, 10^(-SNR/10)). channels [..., N_r, N_t] complex, pilots [N_t, N_p] complex,
    snr_db scalar or broadcastable to the batch dims -> Y [..., N_r, N_p] complex64."""
    _check_channels_pilots(channels, pilots)
    var = noise_variance(snr_db)
    y = channels @ pilots
    kr, ki = jax.random.split(key)
    noise = (jax.random.normal(kr, y.shape) + 1j * jax.random.normal(ki, y.shape)) / math.sqrt(2.0)
    std = jnp.sqrt(var).reshape(jnp.shape(var) + (1, 1)) if jnp.ndim(var) else jnp.sqrt(var)
    return (y + std * noise).astype(jnp.complex64)


def quantize(y: jax.Array, bits: int, clip: float | jax.Array) -> jax.Array:
    """Few-bit ADC: uniform mid-rise quantiser with 2^bits levels on [-clip, clip], applied to the real and the
    imaginary part separately. Levels are (k + 1/2) Delta - clip, Delta = 2 clip / 2^bits; inputs beyond the range
    map to the outermost level. y complex [...] -> complex64 [...]."""
    if isinstance(bits, bool) or not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer in [1, 16], got {bits!r}")
    if not jnp.iscomplexobj(y):
        raise TypeError(f"quantize expects complex samples, got dtype {jnp.asarray(y).dtype}")
    levels = 2**bits
    delta = 2.0 * jnp.asarray(clip, jnp.float32) / levels

    def q(x: jax.Array) -> jax.Array:
        k = jnp.clip(jnp.floor((x + clip) / delta), 0, levels - 1)
        return (k + 0.5) * delta - clip

    return (q(y.real) + 1j * q(y.imag)).astype(jnp.complex64)


def to_real(h: jax.Array) -> jax.Array:
    """complex [..., N_r, N_t] -> real-stacked float32 [..., 2 N_r N_t] = [Re vec(H), Im vec(H)]."""
    if not jnp.iscomplexobj(h):
        raise TypeError(f"to_real expects a complex array, got dtype {jnp.asarray(h).dtype}")
    flat = h.reshape(h.shape[:-2] + (-1,))
    return jnp.concatenate([flat.real, flat.imag], axis=-1).astype(jnp.float32)


def from_real(x: jax.Array, n_r: int, n_t: int) -> jax.Array:
    """Inverse of `to_real`: float [..., 2 N_r N_t] -> complex64 [..., N_r, N_t]."""
    if jnp.iscomplexobj(x) or not jnp.issubdtype(jnp.asarray(x).dtype, jnp.floating):
        raise TypeError(f"from_real expects a real floating array, got dtype {jnp.asarray(x).dtype}")
    n = n_r * n_t
    if x.shape[-1] != 2 * n:
        raise ValueError(f"from_real: last axis must be 2 N_r N_t = {2 * n}, got shape {x.shape}")
    return (x[..., :n] + 1j * x[..., n:]).reshape(x.shape[:-1] + (n_r, n_t)).astype(jnp.complex64)


def nmse_db(estimate: jax.Array, channels: jax.Array) -> jax.Array:
    """10 log10( sum ||H_hat - H||_F^2 / sum ||H||_F^2 ) over the batch (the usual NMSE of a test set), scalar dB."""
    err = jnp.sum(jnp.abs(estimate - channels) ** 2)
    return 10.0 * jnp.log10(err / jnp.sum(jnp.abs(channels) ** 2))
