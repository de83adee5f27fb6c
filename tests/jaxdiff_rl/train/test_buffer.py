"""Replay buffer: n-step targets against a brute-force NumPy computation, ring overwrite, uniformity."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff_rl.train.buffer import Transition, buffer_add, buffer_init, buffer_sample


def _fill(steps: int, num_envs: int, capacity: int, seed: int = 0):
    """Buffer with obs = unique transition id, random rewards, random ends; also returns the NumPy log."""
    rng = np.random.default_rng(seed)
    log = []
    state = None
    for t in range(steps):
        ids = (t * num_envs + np.arange(num_envs)).astype(np.float32)
        reward = rng.normal(size=num_envs).astype(np.float32)
        done = rng.random(num_envs) < 0.3
        terminated = done & (rng.random(num_envs) < 0.5)
        tr = Transition(obs=jnp.asarray(ids[:, None]), action=jnp.asarray(ids[:, None]), reward=jnp.asarray(reward),
                        next_obs=jnp.asarray(ids[:, None] + 0.5), terminated=jnp.asarray(terminated),
                        done=jnp.asarray(done))
        if state is None:
            state = buffer_init(tr, capacity)
        state = jax.jit(buffer_add)(state, tr)
        log.append((ids, reward, done, terminated))
    return state, log


def _reference(log, first_step: int, lane: int, n: int, gamma: float, oldest_step: int):
    ret, disc, last = 0.0, 1.0, first_step
    for k in range(n):
        t = first_step + k
        if t >= len(log):
            break
        ids, reward, done, terminated = log[t]
        ret += disc * reward[lane]
        disc *= gamma
        last = t
        if done[lane]:
            break
    disc *= 1.0 - float(log[last][3][lane])
    return ret, disc, log[last][0][lane] + 0.5


@pytest.mark.parametrize("n_step", [1, 3])
@pytest.mark.parametrize("steps,capacity", [(7, 40), (23, 40)])  # partly filled; wrapped around (rows = 10)
def test_nstep_targets_match_bruteforce(n_step, steps, capacity):
    num_envs, gamma = 4, 0.9
    state, log = _fill(steps, num_envs, capacity)
    rows = capacity // num_envs
    oldest_step = max(0, steps - rows)
    batch = jax.jit(buffer_sample, static_argnums=(2, 3))(state, jax.random.key(1), 256, n_step, gamma)
    ids = np.asarray(batch.obs[:, 0]).astype(int)
    assert np.array_equal(np.asarray(batch.action[:, 0]).astype(int), ids)
    for i, uid in enumerate(ids):
        step, lane = divmod(uid, num_envs)
        assert oldest_step <= step < steps, "sampled an overwritten or unwritten transition"
        ret, disc, nxt = _reference(log, step, lane, n_step, gamma, oldest_step)
        np.testing.assert_allclose(float(batch.reward[i]), ret, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(float(batch.discount[i]), disc, rtol=1e-6)
        assert float(batch.next_obs[i, 0]) == nxt


def test_sampling_is_uniform_over_stored_transitions():
    state, _ = _fill(10, 4, 40)
    batch = buffer_sample(state, jax.random.key(3), 40_000, 1, 0.9)
    counts = np.bincount(np.asarray(batch.obs[:, 0]).astype(int), minlength=40)
    # chi-square against uniform over 40 cells (df = 39): 99.9% quantile ~ 72.1
    chi2 = np.sum((counts - 1000.0) ** 2 / 1000.0)
    assert chi2 < 72.1, chi2
