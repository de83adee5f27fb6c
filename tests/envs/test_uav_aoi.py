"""uav-aoi: steps against a NumPy re-implementation, the propulsion and channel models against their closed forms,
the collection radius, the enumerated tour against a NumPy brute force, the references' order, bad input."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.uav_aoi import best_tour, collection_radius_m, fly_tour, path_loss_db, propulsion_power, uplink_rates


class NumpyUAV:
    """The module docstring's model written out in NumPy float64, slot by slot."""

    def __init__(self, p):
        self.p = {f: float(getattr(p, f)) for f in ("area_m", "altitude_m", "max_speed_mps", "slot_s", "tx_power_dbm",
                                                    "bandwidth_hz", "noise_dbm_per_hz", "noise_figure_db", "carrier_hz",
                                                    "los_a", "los_b", "eta_los_db", "eta_nlos_db", "packet_bits",
                                                    "energy_weight", "max_steps_in_episode")}

    def power(self, v):
        p0, pi, ut, v0, d0, rho, s, a = 79.86, 88.63, 120.0, 4.03, 0.6, 1.225, 0.05, 0.503
        return (p0 * (1 + 3 * v ** 2 / ut ** 2) + pi * math.sqrt(math.sqrt(1 + v ** 4 / (4 * v0 ** 4)) - v ** 2 / (2 * v0 ** 2))
                + 0.5 * d0 * rho * s * a * v ** 3)

    def rate(self, uav, node):
        p = self.p
        horizontal = math.hypot(*(node - uav))
        d = math.hypot(horizontal, p["altitude_m"])
        fspl = 20 * math.log10(4 * math.pi * p["carrier_hz"] * d / 299_792_458.0)
        theta = math.degrees(math.atan2(p["altitude_m"], horizontal))
        plos = 1 / (1 + p["los_a"] * math.exp(-p["los_b"] * (theta - p["los_a"])))
        pl = fspl + plos * p["eta_los_db"] + (1 - plos) * p["eta_nlos_db"]
        noise_dbm = p["noise_dbm_per_hz"] + 10 * math.log10(p["bandwidth_hz"]) + p["noise_figure_db"]
        snr = 10 ** ((p["tx_power_dbm"] - pl - noise_dbm) / 10)
        return p["bandwidth_hz"] * math.log2(1 + snr)

    def step(self, uav, nodes, aoi, action):
        p = self.p
        heading, speed = math.pi * min(max(action[0], -1), 1), p["max_speed_mps"] * min(max(action[1], 0), 1)
        uav = np.clip(uav + speed * p["slot_s"] * np.array([math.cos(heading), math.sin(heading)]), 0, p["area_m"])
        collected = np.array([self.rate(uav, n) * p["slot_s"] >= p["packet_bits"] for n in nodes])
        aoi = np.where(collected, 1.0, aoi + 1.0)
        return uav, aoi, -aoi.mean() - p["energy_weight"] * self.power(speed)


def test_steps_match_numpy_slot_by_slot():
    env, params = envs.make("uav-aoi", max_steps_in_episode=40)
    ref = NumpyUAV(params)
    key = jax.random.PRNGKey(0)
    obs, state = env.reset(key, params)
    uav, nodes, aoi = np.asarray(state.uav, np.float64), np.asarray(state.nodes, np.float64), np.ones(5)
    greedy = env.policies()["greedy"]
    rng = np.random.default_rng(1)
    for t in range(40):
        key, k_act = jax.random.split(key)
        # half greedy (so that nodes get collected), half random actions
        action = greedy(k_act, obs, state, params) if t % 2 else jnp.asarray(rng.uniform([-1, 0], [1, 1]), jnp.float32)
        obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)
        uav, aoi, r = ref.step(uav, nodes, aoi, np.asarray(action, np.float64))
        if t < 39:
            np.testing.assert_allclose(np.asarray(state.uav), uav, rtol=1e-5, atol=1e-3)
            np.testing.assert_array_equal(np.asarray(state.aoi), aoi)
            expected_obs = np.concatenate([uav / 1000, ((nodes - uav) / 1000).ravel(), aoi / 40, [(t + 1) / 40]])
            np.testing.assert_allclose(np.asarray(obs), expected_obs, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(reward), r, rtol=1e-5)
        assert not bool(terminated) and bool(truncated) == (t == 39)
    assert aoi.min() < 40  # the greedy half did collect (an AoI was reset during the episode)


def test_propulsion_power_closed_form_hover_and_maximum_endurance_speed():
    params = envs.make("uav-aoi")[1]
    np.testing.assert_allclose(float(propulsion_power(jnp.float32(0.0), params)), 79.86 + 88.63, rtol=1e-6)
    ref = NumpyUAV(params)
    for v in (3.0, 10.0, 25.0, 30.0):
        np.testing.assert_allclose(float(propulsion_power(jnp.float32(v), params)), ref.power(v), rtol=1e-5)
    speeds = np.linspace(0, 30, 3001)
    grid = np.array([ref.power(v) for v in speeds])
    assert abs(speeds[grid.argmin()] - 10.2) < 0.1


def test_channel_and_collection_radius():
    params = envs.make("uav-aoi")[1]
    ref = NumpyUAV(params)
    distances = np.array([0.0, 50.0, 160.0, 400.0, 900.0])
    nodes = jnp.asarray(np.stack([distances, np.zeros(5)], -1), jnp.float32)
    rates = np.asarray(uplink_rates(jnp.zeros(2), nodes, params))
    np.testing.assert_allclose(rates, [ref.rate(np.zeros(2), np.array([d, 0.0])) for d in distances], rtol=1e-4)
    assert np.all(np.diff(rates) < 0)
    # the LoS-weighted excess loss lies between eta_LoS and eta_NLoS, near eta_LoS overhead and eta_NLoS far away
    excess = np.asarray(path_loss_db(jnp.asarray(distances), params)) - \
        20 * np.log10(4 * np.pi * 2e9 * np.hypot(distances, 100.0) / 299_792_458.0)
    assert 1.0 <= excess.min() and excess.max() <= 20.0 and excess[0] < 1.1 and excess[-1] > 15.0
    radius = collection_radius_m(params)
    assert 150.0 < radius < 175.0
    inside, outside = (uplink_rates(jnp.zeros(2), jnp.array([[r, 0.0]]), params)[0] for r in (radius - 0.5, radius + 0.5))
    assert float(inside) >= 5e6 > float(outside)


def _numpy_tour_return(ref, order, uav, nodes, steps):
    aoi, total, pointer = np.ones(len(nodes)), 0.0, 0
    for _ in range(steps):
        delta = nodes[order[pointer]] - uav
        dist = math.hypot(*delta)
        action = np.array([math.atan2(delta[1], delta[0]) / math.pi, min(30.0, dist) / 30.0])
        uav, aoi, r = ref.step(uav, nodes, aoi, action)
        total += r
        if aoi[order[pointer]] == 1.0:
            pointer = (pointer + 1) % len(order)
    return total


def test_best_tour_is_the_best_of_every_order_by_numpy_brute_force():
    env, params = envs.make("uav-aoi", num_nodes=3, max_steps_in_episode=60)
    ref = NumpyUAV(params)
    _, state = env.reset(jax.random.PRNGKey(3), params)
    uav, nodes = np.asarray(state.uav, np.float64), np.asarray(state.nodes, np.float64)
    returns = {order: _numpy_tour_return(ref, order, uav, nodes, 60) for order in itertools.permutations(range(3))}
    order, value = best_tour(state, params)
    best = max(returns, key=returns.get)
    np.testing.assert_allclose(float(value), returns[best], rtol=1e-4)
    np.testing.assert_allclose(float(fly_tour(jnp.asarray(best), state, params, 60)), returns[best], rtol=1e-4)
    assert returns[tuple(np.asarray(order).tolist())] == pytest.approx(returns[best], rel=1e-4)


def test_references_rank_tour_over_greedy_over_random():
    env, params = envs.make("uav-aoi")
    pol = env.policies()

    def episode(name, key):
        obs, state = env.reset(key, params)

        def body(carry, k):
            obs, state = carry
            obs, state, reward, _, _, _ = env.step(k, state, pol[name](k, obs, state, params), params)
            return (obs, state), reward

        return jnp.sum(jax.lax.scan(body, (obs, state), jax.random.split(key, 100))[1])

    keys = jax.random.split(jax.random.PRNGKey(0), 16)
    rand, greedy = (float(jnp.mean(jax.jit(jax.vmap(lambda k, n=n: episode(n, k)))(keys))) for n in ("random", "greedy"))
    tour = float(jnp.mean(jax.jit(jax.vmap(lambda k: best_tour(env.reset(k, params)[1], params)[1]))(keys)))
    assert tour > greedy > rand
    assert tour > 1.2 * greedy  # returns are negative: the tour's cost is well below greedy's


def test_same_key_same_bits_and_bad_input():
    env, params = envs.make("uav-aoi")
    a = env.reset(jax.random.PRNGKey(7), params)[1]
    b = env.reset(jax.random.PRNGKey(7), params)[1]
    assert np.array_equal(np.asarray(a.nodes), np.asarray(b.nodes))
    for bad, match in (({"num_nodes": 1}, "num_nodes"), ({"num_nodes": 21}, "num_nodes"),
                       ({"max_speed_mps": 0.0}, "max_speed_mps"), ({"energy_weight": -1.0}, "energy_weight"),
                       ({"max_steps_in_episode": 0}, "max_steps_in_episode")):
        with pytest.raises(ValueError, match=match):
            envs.make("uav-aoi", **bad)
    with pytest.raises(ValueError, match="num_nodes"):
        best_tour(envs.make("uav-aoi-10")[0].reset(jax.random.PRNGKey(0))[1], envs.make("uav-aoi-10")[1])
    # traced agents' actions outside the Box are clipped onto it (speed at most V_max)
    over = env.step(jax.random.PRNGKey(0), a, jnp.array([0.0, 2.0]), params)[1]
    edge = env.step(jax.random.PRNGKey(0), a, jnp.array([0.0, 1.0]), params)[1]
    np.testing.assert_array_equal(np.asarray(over.uav), np.asarray(edge.uav))
    with pytest.raises((ValueError, TypeError)):
        env.step(jax.random.PRNGKey(0), a, jnp.zeros(3), params)
