"""ic-power: K-link interference-channel power control, one agent per transmitter (multi-agent, JaxMARL API).

K transmitter-receiver pairs share one band. `gains[k, j]` is the power gain from transmitter j to receiver k
(so the diagonal holds the direct links); transmitter k sends with power p_k in [0, P_max] (W) and receiver k
decodes at

    r_k = log2(1 + g_kk p_k / (sum_{j != k} g_kj p_j + sigma^2))      [bit/s/Hz]

Every agent gets the team reward G = sum_k w_k r_k (the weighted sum rate; w = 1 by default), so the game is
cooperative. With `reward_mode="difference"` agent k gets instead its difference reward (Wolpert and Tumer 2001)

    D_k = G(p) - G(p with p_k = 0)                                             [bit/s/Hz]

its own weighted rate minus the rate it takes from the others by interfering. dD_k/dp_k = dG/dp_k, so D_k ranks agent
k's choices exactly as G does, but without the noise of the other K - 1 links' rates: the usual credit assignment for
many agents (the mean-field variants use it). `infos["team_reward"]` is G either way; the training loop reports G. The gains are redrawn i.i.d. every slot:

- `gain_model="rayleigh"`: |h_kj|^2 ~ Exp(1) for every pair (the Gaussian interference channel of Sun et al.,
  "Learning to optimize", IEEE TSP 2018, whose defaults P_max = 1 W, sigma^2 = 1 W we use);
- `gain_model="distance"`: transmitters uniform in an `area_m` x `area_m` square, each receiver at a uniform
  distance in [`link_min_m`, `link_max_m`] and a uniform direction from its transmitter, gains
  rho0 d^-alpha |h|^2 with Rayleigh |h|^2 ~ Exp(1) (rho0 = -30 dB at 1 m, alpha = 3.5: an urban microcell;
  our choice, stated here). Positions are redrawn each slot too (i.i.d. instances).

Local observation of agent k (each entry normalised to O(1)), shape [6]:
    [ dB(g_kk P / s2) / 10,                       its direct-link SNR at full power
      dB(1 + sum_{j!=k} g_kj P / s2) / 10,       the interference it would receive if all sent at full power
      dB(1 + sum_{j!=k} g_jk P / s2) / 10,       the interference it would cause at full power
      r_k(t-1) / 5, p_k(t-1) / P_max,             its last rate and power
      w_k ]
Global state (`get_state`, for a centralised critic): dB(g P / s2) / 10 of the whole [K, K] matrix, the last
powers / P_max and the weights, shape [K^2 + 2K].

Actions: agent k's Box(0, P_max, [1]) in W; traced actions outside it are clipped (a concrete one raises).
Episodes are `max_steps_in_episode` slots ending by truncation (a time limit: bootstrap through it). Because the
gains are i.i.d. and the reward does not depend on the previous slot, a slot's optimal power depends on that slot
only (gamma = 0 is the matching discount; the last rate/power are informative features, not state).

References: `wmmse` (Shi et al., IEEE TSP 2011: the classical iterative algorithm, started from full power, jitted
and vmappable), `exhaustive_optimum` (the global optimum on a grid, K <= 3), max power and random policies.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.channels import db_to_linear, linear_to_db
from envs.environment import require_episode_steps, require_scalars
from envs.multi_agent import MultiAgentEnv, stack, unstack
from envs.spaces import Box

__all__ = ["ICPower", "ICPowerParams", "ICPowerState", "wmmse", "link_rates", "weighted_sum_rate", "difference_rewards",
           "REWARD_MODES",
           "exhaustive_optimum", "GAIN_MODELS"]

GAIN_MODELS = ("rayleigh", "distance")
REWARD_MODES = ("team", "difference")
MAX_LINKS = 256


@struct.dataclass
class ICPowerParams:
    """ic-power parameters.

    Attributes:
        p_max: P_max per transmitter in W, > 0.
        noise_power: sigma^2 in W, > 0.
        weights: rate weights w_k (scalar or [K]), >= 0.
        area_m, link_min_m, link_max_m, rho0_db, path_loss_exponent: the distance model (m, dB).
        max_steps_in_episode: slots per episode, >= 1.
        num_links: K in [2, 256] (static: changes shapes).
        gain_model: "rayleigh" or "distance" (static).
        wmmse_iterations: iterations of the WMMSE reference (static).
        reward_per_link: the team reward is the weighted sum rate divided by K (bit/s/Hz per link), so its scale
            does not grow with K (static; the many-agent variants use it). `reference_value` is divided alike.
        reward_mode: "team" (every agent gets G) or "difference" (agent k gets D_k, never divided by K; static).
    """

    p_max: Any = 1.0
    noise_power: Any = 1.0
    weights: Any = 1.0
    area_m: Any = 200.0
    link_min_m: Any = 10.0
    link_max_m: Any = 50.0
    rho0_db: Any = -30.0
    path_loss_exponent: Any = 3.5
    max_steps_in_episode: Any = 16
    num_links: int = struct.field(pytree_node=False, default=5)
    gain_model: str = struct.field(pytree_node=False, default="rayleigh")
    wmmse_iterations: int = struct.field(pytree_node=False, default=100)
    reward_per_link: bool = struct.field(pytree_node=False, default=False)
    reward_mode: str = struct.field(pytree_node=False, default="team")


@struct.dataclass
class ICPowerState:
    gains: jax.Array  # [K, K] power gains, gains[k, j]: transmitter j -> receiver k
    last_power: jax.Array  # [K] W
    last_rate: jax.Array  # [K] bit/s/Hz
    time: jax.Array  # int32 slot within the episode


def link_rates(powers: jax.Array, gains: jax.Array, noise: jax.Array | float) -> jax.Array:
    """Per-link rates r_k [..., K] in bit/s/Hz for powers [..., K] (W) and gains [..., K, K] (gains[k, j]: j -> k)."""
    received = gains * powers[..., None, :]  # [..., K(rx), K(tx)]
    signal = jnp.diagonal(received, axis1=-2, axis2=-1)
    interference = jnp.sum(received, axis=-1) - signal
    return jnp.log2(1.0 + signal / (interference + noise))


def weighted_sum_rate(powers: jax.Array, gains: jax.Array, noise: jax.Array | float,
                      weights: jax.Array | float = 1.0) -> jax.Array:
    """sum_k w_k r_k [...] in bit/s/Hz."""
    return jnp.sum(jnp.asarray(weights, jnp.float32) * link_rates(powers, gains, noise), axis=-1)


def difference_rewards(powers: jax.Array, gains: jax.Array, noise: jax.Array | float,
                       weights: jax.Array | float = 1.0) -> jax.Array:
    """D_k = G(p) - G(p with p_k = 0) for every k: powers [K] (W), gains [K, K] -> [K] bit/s/Hz, in O(K^2).

    Switching k off removes g_jk p_k from receiver j's interference and zeroes r_k."""
    powers = jnp.asarray(powers, jnp.float32)
    gains = jnp.asarray(gains, jnp.float32)
    k = powers.shape[-1]
    w = jnp.broadcast_to(jnp.asarray(weights, jnp.float32), (k,))
    received = gains * powers[None, :]
    signal = jnp.diagonal(received)
    interference = jnp.sum(received, axis=1) - signal  # [K (rx j)]
    total = jnp.sum(w * jnp.log2(1.0 + signal / (interference + noise)))
    # [k (switched off), j]: receiver j's interference without transmitter k (clamped: float cancellation)
    without = jnp.maximum(interference[None, :] - received.T, 0.0)
    rates_without = jnp.where(jnp.eye(k, dtype=bool), 0.0, jnp.log2(1.0 + signal[None, :] / (without + noise)))
    return total - jnp.sum(w[None, :] * rates_without, axis=1)


def wmmse(gains: jax.Array, p_max: jax.Array | float, noise: jax.Array | float, weights: jax.Array | float = 1.0,
          iterations: int = 100) -> jax.Array:
    """WMMSE power control for the SISO interference channel (Shi, Razaviyayn, Luo, He, IEEE TSP 2011).

    With amplitudes v_k = sqrt(p_k) and h_kj = sqrt(gains[k, j]), started from full power v_k = sqrt(P_max):
        u_k = h_kk v_k / (sum_j h_kj^2 v_j^2 + sigma^2)          (MMSE receiver)
        w_k = 1 / (1 - u_k h_kk v_k)                              (MSE weight)
        v_k = clip(a_k w_k u_k h_kk / sum_j a_j w_j u_j^2 h_jk^2, 0, sqrt(P_max))
    for a fixed number of `iterations` (static; a `lax.scan`, so it jits and vmaps). It converges to a stationary
    point of the weighted sum rate, not necessarily the global optimum.

    Args:
        gains: [K, K] power gains, gains[k, j] from transmitter j to receiver k.
        p_max: P_max in W (scalar or [K]); noise: sigma^2 in W; weights: a_k (scalar or [K]).
    Returns:
        powers [K] in W.
    """
    gains = jnp.asarray(gains, jnp.float32)
    k = gains.shape[-1]
    h = jnp.sqrt(gains)
    h_direct = jnp.diagonal(h)
    v_max = jnp.sqrt(jnp.broadcast_to(jnp.asarray(p_max, jnp.float32), (k,)))
    alpha = jnp.broadcast_to(jnp.asarray(weights, jnp.float32), (k,))
    noise = jnp.asarray(noise, jnp.float32)

    def receivers(v):
        u = h_direct * v / (gains @ (v * v) + noise)
        w = 1.0 / (1.0 - u * h_direct * v)
        return u, w

    def body(v, _):
        u, w = receivers(v)
        denominator = gains.T @ (alpha * w * u * u)  # [k] = sum_j a_j w_j u_j^2 h_jk^2
        v = jnp.clip(alpha * w * u * h_direct / denominator, 0.0, v_max)
        return v, None

    v, _ = jax.lax.scan(body, v_max, None, length=iterations)
    return v * v


def exhaustive_optimum(gains: jax.Array, p_max: float, noise: float, weights: Any = 1.0,
                       levels: int = 101) -> tuple[jax.Array, jax.Array]:
    """Global maximum of the weighted sum rate over a grid of `levels` powers per link in [0, P_max] (K <= 3).

    gains [K, K] -> (powers [K] in W, weighted sum rate). Enumerates levels^K allocations."""
    k = int(np.shape(gains)[-1])
    if not 1 <= k <= 3:
        raise ValueError(f"exhaustive_optimum: K must be in [1, 3] (levels^K allocations), got K={k}")
    grid = jnp.linspace(0.0, p_max, levels)
    mesh = jnp.stack(jnp.meshgrid(*([grid] * k), indexing="ij"), -1).reshape(-1, k)
    values = weighted_sum_rate(mesh, jnp.asarray(gains, jnp.float32)[None], noise, weights)
    best = jnp.argmax(values)
    return mesh[best], values[best]


class ICPower(MultiAgentEnv):
    """K-link interference-channel power control; see the module docstring."""

    params_type = ICPowerParams

    @property
    def name(self) -> str:
        return "ICPower"

    def num_agents_of(self, params: ICPowerParams) -> int:
        return int(params.num_links)

    @property
    def agents(self) -> list[str]:
        return [f"tx_{i}" for i in range(self.num_agents)]

    def validate_params(self, params: ICPowerParams) -> ICPowerParams:
        if isinstance(params.num_links, bool) or not isinstance(params.num_links, (int, np.integer)) or \
                not 2 <= params.num_links <= MAX_LINKS:
            raise ValueError(f"ICPower: num_links (K) must be an integer in [2, {MAX_LINKS}], got {params.num_links!r}")
        if params.gain_model not in GAIN_MODELS:
            raise ValueError(f"ICPower: gain_model must be one of {GAIN_MODELS}, got {params.gain_model!r}")
        if params.reward_mode not in REWARD_MODES:
            raise ValueError(f"ICPower: reward_mode must be one of {REWARD_MODES}, got {params.reward_mode!r}")
        if not isinstance(params.reward_per_link, bool):
            raise TypeError(f"ICPower: reward_per_link must be a bool, got {params.reward_per_link!r}")
        if not isinstance(params.wmmse_iterations, int) or params.wmmse_iterations < 1:
            raise ValueError(f"ICPower: wmmse_iterations must be an integer >= 1, got {params.wmmse_iterations!r}")
        require_scalars("ICPower", params, ("p_max", "noise_power", "area_m", "link_min_m", "link_max_m",
                                            "path_loss_exponent"))
        require_scalars("ICPower", params, ("rho0_db",), minimum=-np.inf)
        if float(params.link_min_m) > float(params.link_max_m):
            raise ValueError(f"ICPower: link_min_m ({params.link_min_m}) must be <= link_max_m ({params.link_max_m})")
        weights = np.asarray(params.weights, np.float64)
        if weights.shape not in ((), (params.num_links,)) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValueError(f"ICPower: weights must be >= 0, a scalar or shape [{params.num_links}], got "
                             f"{params.weights!r}")
        require_episode_steps("ICPower", params)
        return params

    # --- dynamics -------------------------------------------------------------------------------------
    def sample_gains(self, key: jax.Array, params: ICPowerParams) -> jax.Array:
        """One slot's gains [K, K] (gains[k, j]: transmitter j -> receiver k)."""
        k = params.num_links
        k_fade, k_tx, k_dist, k_angle = jax.random.split(key, 4)
        # Exp(1) draws are -log(1 - u) with u on the float32 grid, so about one in 2^23 is exactly 0, whose dB
        # observation is -inf; a -60 dB floor removes that (P[Exp(1) < 1e-6] = 1e-6: the law is unchanged in effect).
        fading = jnp.maximum(jax.random.exponential(k_fade, (k, k)), 1e-6)
        if params.gain_model == "rayleigh":
            return fading
        tx = jax.random.uniform(k_tx, (k, 2), maxval=params.area_m)
        dist = jax.random.uniform(k_dist, (k,), minval=params.link_min_m, maxval=params.link_max_m)
        angle = jax.random.uniform(k_angle, (k,), maxval=2.0 * jnp.pi)
        rx = tx + dist[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
        d = jnp.linalg.norm(rx[:, None, :] - tx[None, :, :], axis=-1)  # [rx k, tx j]
        d = jnp.maximum(d, 1.0)
        return db_to_linear(params.rho0_db) * d ** (-params.path_loss_exponent) * fading

    @staticmethod
    def dense_preset(num_links: int) -> dict[str, Any]:
        """Parameters of the many-agent variants (`ic-power-64`, `ic-power-256`): `num_links` links at a constant
        density (one per 100 m x 100 m, so `area_m` = 100 sqrt(K) m), distance gains, P_max = 0.1 W (20 dBm),
        sigma^2 = 10^-12.5 W (-95 dBm: -174 dBm/Hz over 10 MHz plus a 9 dB noise figure), rewards per link and
        difference rewards (the team reward G per link is reported in `infos["team_reward"]`)."""
        return dict(num_links=num_links, gain_model="distance", area_m=100.0 * float(np.sqrt(num_links)), p_max=0.1,
                    noise_power=10.0 ** -12.5, reward_per_link=True, reward_mode="difference")

    def _reward_divisor(self, params: ICPowerParams) -> float:
        return float(params.num_links) if params.reward_per_link else 1.0

    def weights(self, params: ICPowerParams) -> jax.Array:
        return jnp.broadcast_to(jnp.asarray(params.weights, jnp.float32), (params.num_links,))

    def local_obs(self, state: ICPowerState, params: ICPowerParams) -> jax.Array:
        """Stacked local observations [K, 6] (see the module docstring)."""
        snr = state.gains * params.p_max / params.noise_power  # [K, K]
        direct = jnp.diagonal(snr)
        received = jnp.sum(snr, axis=1) - direct
        caused = jnp.sum(snr, axis=0) - direct
        return jnp.stack([linear_to_db(direct) / 10.0, linear_to_db(1.0 + received) / 10.0,
                          linear_to_db(1.0 + caused) / 10.0, state.last_rate / 5.0,
                          state.last_power / params.p_max, self.weights(params)], axis=-1)

    def get_obs(self, state: ICPowerState, params: ICPowerParams | None = None) -> dict[str, jax.Array]:
        params = self.default_params if params is None else params
        return unstack(self.local_obs(state, params), self.agents)

    def get_state(self, state: ICPowerState, params: ICPowerParams | None = None) -> jax.Array:
        params = self.default_params if params is None else params
        snr_db = linear_to_db(state.gains * params.p_max / params.noise_power) / 10.0
        return jnp.concatenate([snr_db.reshape(-1), state.last_power / params.p_max, self.weights(params)])

    def reset_env(self, key: jax.Array, params: ICPowerParams):
        k = params.num_links
        state = ICPowerState(gains=self.sample_gains(key, params), last_power=jnp.zeros(k, jnp.float32),
                             last_rate=jnp.zeros(k, jnp.float32), time=jnp.int32(0))
        return self.get_obs(state, params), state

    def step_env(self, key: jax.Array, state: ICPowerState, actions: dict[str, jax.Array], params: ICPowerParams):
        powers = jnp.clip(stack(actions, self.agents).reshape(params.num_links), 0.0, params.p_max)
        rates = link_rates(powers, state.gains, params.noise_power)
        reward = jnp.sum(self.weights(params) * rates) / self._reward_divisor(params)
        if params.reward_mode == "difference":
            # D_k is one link's worth already: it is not divided by K with reward_per_link
            per_agent = difference_rewards(powers, state.gains, params.noise_power, self.weights(params))
        else:
            per_agent = jnp.broadcast_to(reward, (params.num_links,))
        next_state = ICPowerState(gains=self.sample_gains(key, params), last_power=powers, last_rate=rates,
                                  time=state.time + 1)
        info = {"rates": rates, "sum_rate": reward, "powers": powers, "team_reward": reward}
        return self.get_obs(next_state, params), next_state, unstack(per_agent, self.agents), False, info

    # --- references -----------------------------------------------------------------------------------
    def reference_powers(self, state: ICPowerState, params: ICPowerParams) -> jax.Array:
        """WMMSE powers [K] (W) on this slot's gains."""
        return wmmse(state.gains, params.p_max, params.noise_power, self.weights(params), params.wmmse_iterations)

    def reference_value(self, state: ICPowerState, params: ICPowerParams) -> jax.Array:
        """WMMSE's weighted sum rate on this slot, in the reward's units (the loop's `reference_fraction` divides
        by it)."""
        return weighted_sum_rate(self.reference_powers(state, params), state.gains, params.noise_power,
                                 self.weights(params)) / self._reward_divisor(params)

    def policies(self) -> dict[str, Any]:
        def as_actions(powers):
            return unstack(powers[:, None], self.agents)

        return {
            "wmmse": lambda key, obs, state, params: as_actions(self.reference_powers(state, params)),
            "max_power": lambda key, obs, state, params: as_actions(jnp.full(params.num_links, params.p_max)),
            "random": lambda key, obs, state, params: as_actions(
                jax.random.uniform(key, (params.num_links,), maxval=params.p_max)),
        }

    def observation_space(self, agent: str, params: ICPowerParams | None = None) -> Box:
        return Box(-jnp.inf, jnp.inf, (6,))

    def action_space(self, agent: str, params: ICPowerParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box(0.0, params.p_max, (1,))
