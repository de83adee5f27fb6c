"""uav-aoi: a UAV collecting updates from M ground IoT nodes, minimising their age of information (AoI).

The first environment here whose steps depend on each other over a long horizon, so that planning pays: where the UAV
flies now decides which nodes it can reach for many slots. It is built for the diffusion planners (seed 000 sec.
II-B7: Diffuser-style trajectory diffusion, receding-horizon control), and follows the gymnax 1.x API.

A rotary-wing UAV flies at a fixed altitude H over an L x L area, starting at its centre. M nodes sit at uniform random
positions, redrawn every episode. Every slot of tau seconds:

1. The UAV moves: the action a = (a_0, a_1) in Box([-1, 0], [1, 1]) gives heading pi a_0 (rad) and speed
   V = V_max a_1. The new position is clipped to the area.
2. Each node m offers a fresh update of D bits. From the UAV's new position it sends it at rate
       R_m = B log2(1 + P_tx / (PL_m N0 B NF)),
       PL_m [dB] = 20 log10(4 pi f_c d_m / c) + P_LoS(theta_m) eta_LoS + (1 - P_LoS(theta_m)) eta_NLoS,
       P_LoS(theta) = 1 / (1 + a exp(-b (theta - a))),
   with d_m the 3-D distance and theta_m the elevation angle in degrees. This is the mean path loss of the air-to-ground
   LoS-probability model (Al-Hourani, Kandeepan, Lardner, IEEE WCL 2014; urban a = 9.61, b = 0.16, eta_LoS = 1 dB,
   eta_NLoS = 20 dB), computed by `envs.channels.path_loss` for the free-space part.
3. The update is collected when R_m tau >= D. The node's AoI A_m, counted in slots, then resets to 1; otherwise it
   grows by 1. With the defaults this gives a collection radius of 161 m horizontally (`collection_radius_m`).
4. The reward is -(1/M) sum_m A_m - w_E P(V). P(V) is the rotary-wing propulsion power of Zeng, Xu and Zhang
   (IEEE TWC 2019, eq. 12 and Table I):
       P(V) = P0 (1 + 3 V^2 / U_tip^2) + P_i (sqrt(1 + V^4 / (4 v0^4)) - V^2 / (2 v0^2))^(1/2)
              + 0.5 d0 rho s A V^3                                                                  [W]
   With P0 = 79.86 W, P_i = 88.63 W, U_tip = 120 m/s, v0 = 4.03 m/s, d0 = 0.6, rho = 1.225 kg/m^3, s = 0.05 and
   A = 0.503 m^2, hovering costs 168.5 W. The power is lowest at 10.2 m/s (126 W, the maximum-endurance speed) and
   reaches 356 W at 30 m/s.

The defaults are our choice, stated here: L = 1000 m, H = 100 m, V_max = 30 m/s, tau = 1 s, P_tx = 0 dBm (an IoT
sensor), B = 1 MHz, N0 = -174 dBm/Hz, NF = 10 dB, f_c = 2 GHz, D = 5 Mbit, w_E = 0.01 per W, and 100 slots per
episode. The episode ends by truncation.

Observation, shape [3 M + 3]: the UAV position / L [2], each node's offset from the UAV / L [2 M], the AoIs / the
episode length [M], and the slot index / the episode length [1].

References:
- `greedy`: fly towards the node with the largest AoI / distance at up to V_max, without overshooting it.
- `random`: uniform actions.
- `best_tour(state, params)`: every visiting order, enumerated for M <= 7 and flown cyclically at V_max (`fly_tour`),
  picking the one with the highest episode return. It is a strong reference, not the optimum: the optimal
  trajectory need not visit the nodes in a fixed cycle.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.channels import dbm_to_watt, noise_power, path_loss
from envs.environment import Box, Environment, require_episode_steps, require_scalars

__all__ = ["UAVAoI", "UAVAoIParams", "UAVAoIState", "propulsion_power", "path_loss_db", "uplink_rates",
           "collection_radius_m", "fly_tour", "best_tour", "MAX_NODES", "MAX_TOUR_NODES"]

MAX_NODES = 20
MAX_TOUR_NODES = 7
SPEED_OF_LIGHT = 299_792_458.0


@struct.dataclass
class UAVAoIParams:
    """uav-aoi parameters (SI units unless the name says otherwise; see the module docstring for the sources).

    Attributes:
        area_m: side L of the square area (m). altitude_m: UAV height H (m). max_speed_mps: V_max (m/s).
        slot_s: slot length tau (s). tx_power_dbm: node transmit power (dBm). bandwidth_hz: B (Hz).
        noise_dbm_per_hz: N0 (dBm/Hz). noise_figure_db: NF (dB). carrier_hz: f_c (Hz).
        los_a, los_b: the LoS-probability model's a and b. eta_los_db, eta_nlos_db: excess losses (dB).
        packet_bits: D (bit). energy_weight: w_E (reward per W).
        blade_power_w, induced_power_w, tip_speed_mps, induced_velocity_mps, fuselage_drag_ratio,
        air_density, rotor_solidity, rotor_area_m2: P0, P_i, U_tip, v0, d0, rho, s, A of the propulsion model.
        max_steps_in_episode: slots per episode (>= 1).
        num_nodes: M in [2, 20] (static: sets shapes).
    """

    area_m: Any = 1000.0
    altitude_m: Any = 100.0
    max_speed_mps: Any = 30.0
    slot_s: Any = 1.0
    tx_power_dbm: Any = 0.0
    bandwidth_hz: Any = 1e6
    noise_dbm_per_hz: Any = -174.0
    noise_figure_db: Any = 10.0
    carrier_hz: Any = 2e9
    los_a: Any = 9.61
    los_b: Any = 0.16
    eta_los_db: Any = 1.0
    eta_nlos_db: Any = 20.0
    packet_bits: Any = 5e6
    energy_weight: Any = 0.01
    blade_power_w: Any = 79.86
    induced_power_w: Any = 88.63
    tip_speed_mps: Any = 120.0
    induced_velocity_mps: Any = 4.03
    fuselage_drag_ratio: Any = 0.6
    air_density: Any = 1.225
    rotor_solidity: Any = 0.05
    rotor_area_m2: Any = 0.503
    max_steps_in_episode: Any = 100
    num_nodes: int = struct.field(pytree_node=False, default=5)


@struct.dataclass
class UAVAoIState:
    uav: jax.Array  # [2] m
    nodes: jax.Array  # [M, 2] m
    aoi: jax.Array  # [M] slots
    time: jax.Array  # int32 slot index


def propulsion_power(speed: jax.Array, params: UAVAoIParams) -> jax.Array:
    """Rotary-wing propulsion power P(V) in W for speeds V [...] in m/s (Zeng et al. 2019, eq. 12)."""
    v2 = speed * speed
    v0 = params.induced_velocity_mps
    blade = params.blade_power_w * (1.0 + 3.0 * v2 / params.tip_speed_mps ** 2)
    induced = params.induced_power_w * jnp.sqrt(jnp.sqrt(1.0 + v2 * v2 / (4.0 * v0 ** 4)) - v2 / (2.0 * v0 ** 2))
    parasite = 0.5 * params.fuselage_drag_ratio * params.air_density * params.rotor_solidity * params.rotor_area_m2 \
        * v2 * speed
    return blade + induced + parasite


def path_loss_db(horizontal_m: jax.Array, params: UAVAoIParams) -> jax.Array:
    """Mean air-to-ground path loss in dB at horizontal distances [...] (m): free space + the LoS-weighted excess."""
    h = params.altitude_m
    d = jnp.sqrt(horizontal_m ** 2 + h ** 2)
    wavelength = SPEED_OF_LIGHT / params.carrier_hz
    # free space: path_loss(d, rho0, 2) with rho0 = (lambda / 4 pi)^2, the gain at 1 m
    free = -10.0 * jnp.log10(path_loss(d, (wavelength / (4.0 * math.pi)) ** 2, 2.0))
    elevation = jnp.degrees(jnp.arctan2(h, horizontal_m))
    p_los = 1.0 / (1.0 + params.los_a * jnp.exp(-params.los_b * (elevation - params.los_a)))
    return free + p_los * params.eta_los_db + (1.0 - p_los) * params.eta_nlos_db


def uplink_rates(uav: jax.Array, nodes: jax.Array, params: UAVAoIParams) -> jax.Array:
    """Each node's rate to the UAV in bit/s: uav [2] (m), nodes [M, 2] (m) -> [M]."""
    horizontal = jnp.linalg.norm(nodes - uav, axis=-1)
    noise = noise_power(params.noise_dbm_per_hz, params.bandwidth_hz) * 10.0 ** (params.noise_figure_db / 10.0)
    snr = dbm_to_watt(params.tx_power_dbm) * 10.0 ** (-path_loss_db(horizontal, params) / 10.0) / noise
    return params.bandwidth_hz * jnp.log2(1.0 + snr)


def collection_radius_m(params: UAVAoIParams) -> float:
    """The horizontal distance (m) up to which a node's update is collected in one slot, by bisection (the rate
    decreases with distance). 0 if not even a node right below the UAV is collected."""
    rate = lambda x: float(uplink_rates(jnp.zeros(2), jnp.array([[x, 0.0]]), params)[0]) * float(params.slot_s)
    if rate(0.0) < float(params.packet_bits):
        return 0.0
    low, high = 0.0, 10.0 * float(params.area_m)
    for _ in range(60):
        mid = 0.5 * (low + high)
        low, high = (mid, high) if rate(mid) >= float(params.packet_bits) else (low, mid)
    return low


def _move(uav: jax.Array, heading: jax.Array, speed: jax.Array, params: UAVAoIParams) -> jax.Array:
    step = speed * params.slot_s * jnp.stack([jnp.cos(heading), jnp.sin(heading)])
    return jnp.clip(uav + step, 0.0, params.area_m)


def _heading_to(uav: jax.Array, target: jax.Array, params: UAVAoIParams) -> jax.Array:
    """The action that flies towards `target` at up to V_max without overshooting it: [2] in the action Box."""
    delta = target - uav
    dist = jnp.linalg.norm(delta)
    heading = jnp.arctan2(delta[1], delta[0])
    speed = jnp.minimum(params.max_speed_mps, dist / params.slot_s)
    return jnp.stack([heading / jnp.pi, speed / params.max_speed_mps])


def _advance(state: UAVAoIState, action: jax.Array, params: UAVAoIParams) -> tuple[UAVAoIState, jax.Array, dict]:
    """The deterministic part of a step (no new episode): (next state, reward, info)."""
    a = jnp.clip(action, jnp.array([-1.0, 0.0]), jnp.array([1.0, 1.0]))
    speed = params.max_speed_mps * a[1]
    uav = _move(state.uav, jnp.pi * a[0], speed, params)
    collected = uplink_rates(uav, state.nodes, params) * params.slot_s >= params.packet_bits
    aoi = jnp.where(collected, 1.0, state.aoi + 1.0)
    power = propulsion_power(speed, params)
    reward = -jnp.mean(aoi) - params.energy_weight * power
    info = {"aoi_mean": jnp.mean(aoi), "collected": jnp.sum(collected.astype(jnp.int32)), "propulsion_w": power}
    return UAVAoIState(uav=uav, nodes=state.nodes, aoi=aoi, time=state.time + 1), reward, info


def fly_tour(order: jax.Array, state: UAVAoIState, params: UAVAoIParams, num_steps: int) -> jax.Array:
    """Episode return of flying the cyclic visiting `order` [M] (node indices) at V_max from `state` for
    `num_steps` slots: the UAV heads for the current target and moves on to the next one once it has collected it."""
    def body(carry, _):
        st, pointer = carry
        target = state.nodes[order[pointer]]
        st, reward, _ = _advance(st, _heading_to(st.uav, target, params), params)
        done_target = st.aoi[order[pointer]] == 1.0
        return (st, jnp.where(done_target, (pointer + 1) % order.shape[0], pointer)), reward

    _, rewards = jax.lax.scan(body, (state, jnp.int32(0)), None, length=num_steps)
    return jnp.sum(rewards)


def _orders(m: int) -> np.ndarray:
    return np.asarray(list(itertools.permutations(range(m))), np.int32)


def best_tour(state: UAVAoIState, params: UAVAoIParams, num_steps: int | None = None) -> tuple[jax.Array, jax.Array]:
    """(order [M], its episode return): the best of all M! cyclic visiting orders flown by `fly_tour` (M <= 7).
    `num_steps` defaults to the remaining slots of the episode if concrete, else `max_steps_in_episode`."""
    m = params.num_nodes
    if m > MAX_TOUR_NODES:
        raise ValueError(f"UAVAoI.best_tour: num_nodes (M) must be <= {MAX_TOUR_NODES} (M! orders), got {m}")
    steps = int(params.max_steps_in_episode) if num_steps is None else int(num_steps)
    orders = jnp.asarray(_orders(m))
    returns = jax.vmap(lambda o: fly_tour(o, state, params, steps))(orders)
    best = jnp.argmax(returns)
    return orders[best], returns[best]


class UAVAoI(Environment):
    """UAV data collection with age of information; see the module docstring."""

    params_type = UAVAoIParams

    @property
    def name(self) -> str:
        return "UAVAoI"

    def validate_params(self, params: UAVAoIParams) -> UAVAoIParams:
        m = params.num_nodes
        if isinstance(m, bool) or not isinstance(m, (int, np.integer)) or not 2 <= m <= MAX_NODES:
            raise ValueError(f"UAVAoI: num_nodes (M) must be an integer in [2, {MAX_NODES}], got {m!r}")
        require_scalars("UAVAoI", params, ("area_m", "altitude_m", "max_speed_mps", "slot_s", "bandwidth_hz",
                                           "carrier_hz", "packet_bits", "tip_speed_mps", "induced_velocity_mps",
                                           "air_density", "rotor_area_m2", "los_a"))
        require_scalars("UAVAoI", params, ("energy_weight", "blade_power_w", "induced_power_w", "fuselage_drag_ratio",
                                           "rotor_solidity", "los_b", "eta_los_db", "eta_nlos_db"), minimum=0.0,
                       inclusive=True)
        require_scalars("UAVAoI", params, ("tx_power_dbm", "noise_dbm_per_hz", "noise_figure_db"), minimum=-np.inf)
        require_episode_steps("UAVAoI", params)
        return params

    def reset_env(self, key: jax.Array, params: UAVAoIParams):
        m = params.num_nodes
        nodes = jax.random.uniform(key, (m, 2), maxval=params.area_m)
        state = UAVAoIState(uav=jnp.full((2,), 0.5 * params.area_m, jnp.float32), nodes=nodes,
                            aoi=jnp.ones((m,), jnp.float32), time=jnp.int32(0))
        return self.get_obs(state, params), state

    def step_env(self, key: jax.Array, state: UAVAoIState, action: jax.Array, params: UAVAoIParams):
        del key  # the dynamics are deterministic within an episode
        next_state, reward, info = _advance(state, action, params)
        return self.get_obs(next_state, params), next_state, reward, False, info

    def get_obs(self, state: UAVAoIState, params: UAVAoIParams) -> jax.Array:
        horizon = jnp.asarray(params.max_steps_in_episode, jnp.float32)
        return jnp.concatenate([state.uav / params.area_m, ((state.nodes - state.uav) / params.area_m).reshape(-1),
                                state.aoi / horizon, (state.time / horizon)[None]]).astype(jnp.float32)

    def observation_space(self, params: UAVAoIParams | None = None) -> Box:
        params = self.default_params if params is None else params
        return Box(-jnp.inf, jnp.inf, (3 * params.num_nodes + 3,))

    def action_space(self, params: UAVAoIParams | None = None) -> Box:
        return Box(jnp.array([-1.0, 0.0]), jnp.array([1.0, 1.0]), (2,))

    def policies(self) -> dict[str, Any]:
        def greedy(key, obs, state, params):
            dist = jnp.linalg.norm(state.nodes - state.uav, axis=-1)
            target = state.nodes[jnp.argmax(state.aoi / jnp.maximum(dist, 1.0))]
            return _heading_to(state.uav, target, params)

        return {**super().policies(), "greedy": greedy}
