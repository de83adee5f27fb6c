"""FD-ISAC: a full-duplex base station serving K downlink and L uplink users amid clutter (seed 003, section III,
Table I), the environment of D2RL.

System (seed 003 eqs. 9-13). The BS (height 100 m, cell radius 300 m) transmits x = sum_k v_k s_k with an
N_t-element ULA and receives with an N_r-element ULA. LoS channels h = sqrt(rho0 d^-alpha) a(theta) with the 3-D
distance d and the azimuth theta of the user, normalised half-wavelength steering vectors (`channels.ula_steering`).
    DL SNR (11):   gamma_k = |g_k^H v_k|^2 / sigma^2
    UL SINR (12):  gamma_l = p_l |w_l^H h_l|^2 / w_l^H (sum_{l' != l} p_l' h_l' h_l'^H + G Q G^H + sigma^2 I) w_l
    C (13a) = sum_l log2(1 + gamma_l) + sum_k log2(1 + gamma_k),  s.t. sum_k ||v_k||^2 <= Pmax, 0 <= p_l <= P_l,
with Q = sum_k v_k v_k^H and the clutter channel G = sum_f beta_f a_r(theta_f) a_t(theta_f)^H from F interferers at
fixed angles, |beta_f|^2 = INR * sigma^2 (20 dB INR; beta_f real: only the interferers' relative phase matters and
it is fixed, documented choice).

Units. Noise: Table I gives -97 dBm/Hz; we turn it into a power over a normalised `bandwidth` of 1 Hz
(sigma^2 = -97 dBm), so rates are in bit/s/Hz and the SNRs match the scale of the paper's sum rates (a few to
~10 bit/s/Hz). Over a physical 1 MHz the same density gives SNRs ~1e-6 and C ~ 0; set `bandwidth` to study that.

Mobility (documented choice): users start uniformly in the disk (area-uniform) and, every step, each moves by an
isotropic Gaussian displacement of std `step_std` m (default 5 m, pedestrian-to-vehicular speeds at ~1 s steps),
reflected back into the disk if it leaves it. Channels are recomputed from the positions.

State / observation: positions / radius [2(K+L)], then Re/Im of g_k / sigma [2 K N_t] and h_l / sigma [2 L N_r].
Action (real parametrisation in Box(-1, 1, [2 K N_t + 2 L N_r + L])), mapped to satisfy (13b)-(13c):
    V = A_v sqrt(Pmax) / max(||A_v||_F, 1)   (A_v = Re + j Im, [K, N_t]; any power in [0, Pmax], never above),
    w_l = A_w,l / ||A_w,l||                  (SINR is invariant to the scale of w; 0 maps to e_1),
    p_l = P_l (a_p,l + 1) / 2.
Episodes: truncated after `max_steps_in_episode` steps, or, with `one_shot`, terminated after every step.
Reward modes (`reward_mode`, static): "raw" = C; "designed" = C - R' (D2RL's "Designed R."), with the upper bound
    R' = DL optimum (MRT + water-filling over ||g_k||^2 / sigma^2 with the whole Pmax; exact since DL users see
         no interference, eq. 11)  +  sum_l log2(1 + P_l ||h_l||^2 / sigma^2)  (each UL user at full power with
         matched filtering and no interference),
so R' >= C for every feasible action (tested). Exact pieces: `mmse_receivers` (max-SINR w_l = R_l^-1 h_l, optimal
given V and p), `downlink_optimum`. Baselines: random, and "mrt-wf-mmse" (DL optimum, full UL power, MMSE receivers).
"""

from __future__ import annotations

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.channels import db_to_linear, los_channel, noise_power, ula_steering
from envs.environment import Box, Environment, is_concrete, require_episode_steps, require_scalars
from envs.msr import water_filling

__all__ = ["FDISAC", "FDParams", "FDState", "fd_sum_rate", "mmse_receivers", "downlink_optimum", "upper_bound"]

REWARD_MODES = ("raw", "designed")


@struct.dataclass
class FDParams:
    """FD-ISAC parameters (Table I defaults). Angles in degrees, distances in m, powers in W.

    Static (shapes): num_dl (K), num_ul (L), num_tx (N_t), num_rx (N_r), reward_mode.
    one_shot: end every step with terminated=True (fresh placements each step). The action never changes the next
    state, so each slot is its own decision; with one_shot the critic learns Q(s, a) = E[R | s, a], which is how
    D2RL's Table II gamma = 1 is well defined (GDMOPT's one-step episodes).
    """

    radius: Any = 300.0
    bs_height: Any = 100.0
    rho0: Any = 4.16e-6
    alpha: Any = 3.6
    noise_dbm_per_hz: Any = -97.0
    bandwidth: Any = 1.0
    p_max: Any = 3.0
    p_ul: Any = 1.0
    clutter_angles: Any = struct.field(default_factory=lambda: jnp.array([-50.0, 20.0]))
    inr_db: Any = 20.0
    step_std: Any = 5.0
    max_steps_in_episode: Any = 100
    one_shot: Any = False
    num_dl: int = struct.field(pytree_node=False, default=6)
    num_ul: int = struct.field(pytree_node=False, default=4)
    num_tx: int = struct.field(pytree_node=False, default=6)
    num_rx: int = struct.field(pytree_node=False, default=6)
    reward_mode: str = struct.field(pytree_node=False, default="raw")


@struct.dataclass
class FDState:
    dl_pos: jax.Array  # [K, 2] m
    ul_pos: jax.Array  # [L, 2] m
    time: jax.Array


def _noise(params: FDParams) -> jax.Array:
    return noise_power(params.noise_dbm_per_hz, params.bandwidth)


def _channels(positions: jax.Array, num_antennas: int, params: FDParams) -> jax.Array:
    """LoS channels [U, N] (complex64) of users at `positions` [U, 2] (BS at the origin, height bs_height)."""
    distance = jnp.sqrt(jnp.sum(positions**2, axis=-1) + params.bs_height**2)
    theta = jnp.arctan2(positions[:, 1], positions[:, 0])
    return los_channel(distance, theta, num_antennas, params.rho0, params.alpha)


def _clutter(params: FDParams) -> jax.Array:
    """G = sum_f beta_f a_r(theta_f) a_t(theta_f)^H, [N_r, N_t]."""
    theta = jnp.deg2rad(jnp.asarray(params.clutter_angles, jnp.float32))
    beta = jnp.full(theta.shape, jnp.sqrt(db_to_linear(params.inr_db) * _noise(params)))
    a_r, a_t = ula_steering(theta, params.num_rx), ula_steering(theta, params.num_tx)  # [F, N]
    return jnp.einsum("f,fr,ft->rt", beta.astype(jnp.complex64), a_r, jnp.conj(a_t))


def _ul_covariances(h: jax.Array, V: jax.Array, p: jax.Array, params: FDParams) -> jax.Array:
    """Interference-plus-noise covariance R_l for every uplink user, [L, N_r, N_r] (noise-normalised units)."""
    sigma2 = _noise(params)
    G = _clutter(params)
    Q = jnp.einsum("kt,ku->tu", V, jnp.conj(V))  # sum_k v_k v_k^H
    clutter = G @ Q @ jnp.conj(G.T)
    users = jnp.einsum("l,lr,ls->lrs", p.astype(jnp.complex64), h, jnp.conj(h))  # p_l h_l h_l^H
    total = jnp.sum(users, axis=0) + clutter + sigma2 * jnp.eye(params.num_rx)
    return (total[None] - users) / sigma2  # dividing by sigma^2 keeps float32 well scaled


def fd_sum_rate(
    g: jax.Array, h: jax.Array, V: jax.Array, W: jax.Array, p: jax.Array, params: FDParams
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """C of eq. (13a) and its parts. g [K, N_t], h [L, N_r], V [K, N_t], W [L, N_r], p [L].

    Returns (C, DL rates [K], UL rates [L]) in bit/s/Hz.
    """
    sigma2 = _noise(params)
    dl_snr = jnp.abs(jnp.sum(jnp.conj(g) * V, axis=-1)) ** 2 / sigma2
    R = _ul_covariances(h, V, p, params)
    signal = p * jnp.abs(jnp.sum(jnp.conj(W) * h, axis=-1)) ** 2 / sigma2
    interference = jnp.real(jnp.einsum("lr,lrs,ls->l", jnp.conj(W), R, W))
    ul_snr = signal / interference
    dl, ul = jnp.log1p(dl_snr) / math.log(2.0), jnp.log1p(ul_snr) / math.log(2.0)
    return jnp.sum(dl) + jnp.sum(ul), dl, ul


def mmse_receivers(h: jax.Array, V: jax.Array, p: jax.Array, params: FDParams) -> jax.Array:
    """Max-SINR (MMSE) receive beamformers w_l = R_l^-1 h_l / ||R_l^-1 h_l||, [L, N_r]: optimal given V and p."""
    R = _ul_covariances(h, V, p, params)
    w = jnp.linalg.solve(R, h[..., None])[..., 0]
    return w / jnp.linalg.norm(w, axis=-1, keepdims=True)


def downlink_optimum(g: jax.Array, params: FDParams) -> jax.Array:
    """DL-optimal beamformers: MRT directions with water-filling powers over ||g_k||^2 / sigma^2, [K, N_t]."""
    gain = jnp.sum(jnp.abs(g) ** 2, axis=-1) / _noise(params)
    powers = water_filling(gain, 1.0, params.p_max)
    return (jnp.sqrt(powers)[:, None] * g / jnp.linalg.norm(g, axis=-1, keepdims=True)).astype(jnp.complex64)


def upper_bound(g: jax.Array, h: jax.Array, params: FDParams) -> jax.Array:
    """R' = DL optimum + interference-free full-power UL rates (>= C for every feasible action)."""
    sigma2 = _noise(params)
    V = downlink_optimum(g, params)
    dl = jnp.sum(jnp.log1p(jnp.abs(jnp.sum(jnp.conj(g) * V, axis=-1)) ** 2 / sigma2))
    ul = jnp.sum(jnp.log1p(params.p_ul * jnp.sum(jnp.abs(h) ** 2, axis=-1) / sigma2))
    return (dl + ul) / math.log(2.0)


def _uniform_disk(key: jax.Array, n: int, radius: Any) -> jax.Array:
    k_r, k_a = jax.random.split(key)
    r = radius * jnp.sqrt(jax.random.uniform(k_r, (n,)))
    a = jax.random.uniform(k_a, (n,), minval=-jnp.pi, maxval=jnp.pi)
    return jnp.stack([r * jnp.cos(a), r * jnp.sin(a)], axis=-1)


def _reflect_into_disk(pos: jax.Array, radius: Any) -> jax.Array:
    """Mirror points outside the disk back inside along the radius (r -> 2R - r, clipped to [0, R])."""
    r = jnp.linalg.norm(pos, axis=-1, keepdims=True)
    r_new = jnp.clip(jnp.where(r > radius, 2 * radius - r, r), 0.0, radius)
    return pos * jnp.where(r > 0, r_new / jnp.maximum(r, 1e-9), 1.0)


class FDISAC(Environment[FDState, FDParams]):
    """Full-duplex ISAC base station; see the module docstring."""

    params_type = FDParams
    reference_policy = "mrt-wf-mmse"

    @property
    def name(self) -> str:
        return "FD-ISAC"

    def make_state(self, dl_pos: Any, ul_pos: Any, params: FDParams) -> FDState:
        """A user-given placement: dl_pos [K, 2], ul_pos [L, 2] in m inside the cell. Raises ValueError otherwise."""
        out = []
        for name, value, count in (("dl_pos", dl_pos, params.num_dl), ("ul_pos", ul_pos, params.num_ul)):
            pos = np.asarray(value, np.float64)
            if pos.shape != (count, 2):
                raise ValueError(f"FD-ISAC: {name} must have shape ({count}, 2), got {pos.shape}")
            if not np.all(np.isfinite(pos)) or np.any(np.linalg.norm(pos, axis=-1) > float(params.radius)):
                raise ValueError(f"FD-ISAC: {name} must be finite and within the {float(params.radius):g} m cell")
            out.append(jnp.asarray(pos, jnp.float32))
        return FDState(dl_pos=out[0], ul_pos=out[1], time=jnp.int32(0))

    def channels(self, state: FDState, params: FDParams) -> tuple[jax.Array, jax.Array]:
        """(g [K, N_t], h [L, N_r]) for the current positions."""
        return _channels(state.dl_pos, params.num_tx, params), _channels(state.ul_pos, params.num_rx, params)

    def get_obs(self, state: FDState, params: FDParams) -> jax.Array:
        g, h = self.channels(state, params)
        scale = jnp.sqrt(_noise(params))
        parts = [
            state.dl_pos.reshape(-1) / params.radius,
            state.ul_pos.reshape(-1) / params.radius,
            jnp.stack([g.real, g.imag], -1).reshape(-1) / scale,
            jnp.stack([h.real, h.imag], -1).reshape(-1) / scale,
        ]
        return jnp.concatenate(parts).astype(jnp.float32)

    def reset_env(self, key: jax.Array, params: FDParams) -> tuple[jax.Array, FDState]:
        k_dl, k_ul = jax.random.split(key)
        state = FDState(
            dl_pos=_uniform_disk(k_dl, params.num_dl, params.radius),
            ul_pos=_uniform_disk(k_ul, params.num_ul, params.radius),
            time=jnp.int32(0),
        )
        return self.get_obs(state, params), state

    def action_to_decision(self, action: jax.Array, params: FDParams) -> tuple[jax.Array, jax.Array, jax.Array]:
        """Box action -> (V [K, N_t], W [L, N_r], p [L]) satisfying (13b)-(13c); see the module docstring."""
        k, l, nt, nr = params.num_dl, params.num_ul, params.num_tx, params.num_rx
        a_v = action[: 2 * k * nt].reshape(k, nt, 2)
        a_w = action[2 * k * nt : 2 * k * nt + 2 * l * nr].reshape(l, nr, 2)
        a_p = action[2 * k * nt + 2 * l * nr :]
        V = a_v[..., 0] + 1j * a_v[..., 1]
        V = V * jnp.sqrt(params.p_max) / jnp.maximum(jnp.linalg.norm(V), 1.0)
        W = a_w[..., 0] + 1j * a_w[..., 1]
        norm = jnp.linalg.norm(W, axis=-1, keepdims=True)
        W = jnp.where(norm > 0, W / jnp.where(norm > 0, norm, 1.0), jnp.eye(nr)[0])
        p = params.p_ul * (jnp.clip(a_p, -1.0, 1.0) + 1.0) / 2.0
        return V.astype(jnp.complex64), W.astype(jnp.complex64), p

    def decision_to_action(self, V: jax.Array, W: jax.Array, p: jax.Array, params: FDParams) -> jax.Array:
        """Inverse of `action_to_decision` for a feasible decision with ||V||_F^2 <= Pmax and unit-norm w_l."""
        a_v = jnp.stack([V.real, V.imag], -1).reshape(-1) / jnp.sqrt(params.p_max)
        a_w = jnp.stack([W.real, W.imag], -1).reshape(-1)
        return jnp.concatenate([a_v, a_w, 2.0 * p / params.p_ul - 1.0]).astype(jnp.float32)

    def step_env(self, key, state: FDState, action: jax.Array, params: FDParams):
        V, W, p = self.action_to_decision(action, params)
        g, h = self.channels(state, params)
        rate, dl, ul = fd_sum_rate(g, h, V, W, p, params)
        reward = rate - upper_bound(g, h, params) if params.reward_mode == "designed" else rate
        k_dl, k_ul = jax.random.split(key)
        next_state = FDState(
            dl_pos=_reflect_into_disk(state.dl_pos + params.step_std * jax.random.normal(k_dl, state.dl_pos.shape),
                                      params.radius),
            ul_pos=_reflect_into_disk(state.ul_pos + params.step_std * jax.random.normal(k_ul, state.ul_pos.shape),
                                      params.radius),
            time=state.time + 1,
        )
        info = {"sum_rate": rate, "dl_rates": dl, "ul_rates": ul}
        return self.get_obs(next_state, params), next_state, reward, jnp.asarray(params.one_shot, bool), info

    # --- references ----------------------------------------------------------------------------------------------
    def reference_decision(self, state: FDState, params: FDParams) -> tuple[jax.Array, jax.Array, jax.Array]:
        """DL optimum, full UL power, MMSE receivers for that V and p."""
        g, h = self.channels(state, params)
        V = downlink_optimum(g, params)
        p = jnp.full((params.num_ul,), params.p_ul)
        return V, mmse_receivers(h, V, p, params), p

    def optimal_value(self, state: FDState, params: FDParams) -> jax.Array:
        """The upper bound R' (no feasible action exceeds it)."""
        g, h = self.channels(state, params)
        return upper_bound(g, h, params)

    def policies(self) -> dict:
        def reference(key, obs, state, params):
            return self.decision_to_action(*self.reference_decision(state, params), params)

        return {**super().policies(), "mrt-wf-mmse": reference}

    # --- spaces and validation ------------------------------------------------------------------------------------
    def action_space(self, params: FDParams | None = None) -> Box:
        p = self.default_params if params is None else params
        return Box(-1.0, 1.0, (2 * p.num_dl * p.num_tx + 2 * p.num_ul * p.num_rx + p.num_ul,))

    def observation_space(self, params: FDParams | None = None) -> Box:
        p = self.default_params if params is None else params
        return Box(-jnp.inf, jnp.inf, (2 * (p.num_dl + p.num_ul) + 2 * p.num_dl * p.num_tx + 2 * p.num_ul * p.num_rx,))

    def validate_params(self, params: FDParams) -> FDParams:
        for field in ("num_dl", "num_ul", "num_tx", "num_rx"):
            value = getattr(params, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"FD-ISAC: {field} must be an integer >= 1, got {value!r}")
        if params.reward_mode not in REWARD_MODES:
            raise ValueError(f"FD-ISAC: reward_mode must be one of {REWARD_MODES}, got {params.reward_mode!r}")
        if not is_concrete(params):
            return params
        require_scalars("FD-ISAC", params, ("radius", "bs_height", "rho0", "alpha", "bandwidth", "p_max", "p_ul"))
        for field in ("noise_dbm_per_hz", "inr_db"):
            value = np.asarray(getattr(params, field), np.float64)
            if value.ndim != 0 or not np.isfinite(value):
                raise ValueError(f"FD-ISAC: {field} must be a finite scalar (dB), got {getattr(params, field)!r}")
        angles = np.asarray(params.clutter_angles, np.float64)
        if angles.ndim != 1 or angles.size < 1 or not np.all(np.isfinite(angles)) or np.any(np.abs(angles) > 90):
            raise ValueError(f"FD-ISAC: clutter_angles must be a 1-D array of degrees in [-90, 90], got {angles}")
        require_scalars("FD-ISAC", params, ("step_std",), inclusive=True)
        if np.asarray(params.one_shot).dtype != np.bool_ or np.ndim(params.one_shot) != 0:
            raise ValueError(f"FD-ISAC: one_shot must be a boolean scalar, got {params.one_shot!r}")
        require_episode_steps("FD-ISAC", params)
        return params
