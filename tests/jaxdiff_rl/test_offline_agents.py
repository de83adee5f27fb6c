"""Offline agents against independent references: Diffusion-QL's loss by hand (NumPy), IQL's expectile loss (NumPy),
the discrete soft-choice Q, and behaviour cloning of a two-mode behaviour (a diffusion and a flow policy recover
both modes, an MLP averages them)."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff_rl import agents
from jaxdiff_rl.agents import bc, diffusion_ql, iql
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.agents.offline_base import (OfflineConfig, OfflineHparams, actor_vectors, init_offline,
                                            make_critic, normalised_q_loss, q_policy, validate_offline_hparams)
from jaxdiff_rl.diffusion import make_schedule
from jaxdiff_rl.train.buffer import Batch


def test_diffusion_ql_actor_loss_matches_a_hand_computation():
    rng = np.random.default_rng(0)
    b, s_dim, a_dim = 6, 3, 2
    obs = rng.normal(size=(b, s_dim)).astype(np.float32)
    target = rng.uniform(-1, 1, size=(b, a_dim)).astype(np.float32)
    t = np.array([0, 1, 2, 3, 4, 2], np.int32)
    noise = rng.normal(size=(b, a_dim)).astype(np.float32)
    w, v = rng.normal(size=(a_dim, a_dim)).astype(np.float32), rng.normal(size=(s_dim, a_dim)).astype(np.float32)
    c = rng.normal(size=(2, a_dim)).astype(np.float32)
    eps_model = lambda x, tt, cond, use_cond: x @ w + cond @ v + 0.1 * jnp.asarray(tt, jnp.float32)[:, None]
    q_fn = lambda x: jnp.stack([-jnp.sum((x - c[0]) ** 2, -1) + 3.0, -jnp.sum((x - c[1]) ** 2, -1) + 2.0])
    schedule = make_schedule("vp", 5)
    eta, key = 0.7, jax.random.PRNGKey(3)
    loss, (bc_loss, q_loss) = diffusion_ql.actor_loss(eps_model, q_fn, schedule, jnp.asarray(obs),
                                                      jnp.asarray(target), t, jnp.asarray(noise), None, eta, key)
    # NumPy: VP betas, alpha_bar, x_t, eps_hat, the one-step x0 estimate (EDP), the normalised Q term
    i = np.arange(1, 6)
    betas = 1 - np.exp(-0.1 / 5 - 0.5 * 9.9 * (2 * i - 1) / 25)
    abar = np.cumprod(1 - betas)[t][:, None]
    x_t = np.sqrt(abar) * target + np.sqrt(1 - abar) * noise
    eps_hat = x_t @ w + obs @ v + 0.1 * t[:, None]
    bc_ref = np.mean((eps_hat - noise) ** 2)
    x0 = np.clip((x_t - np.sqrt(1 - abar) * eps_hat) / np.sqrt(abar), -1, 1)
    q = np.stack([-((x0 - c[0]) ** 2).sum(-1) + 3.0, -((x0 - c[1]) ** 2).sum(-1) + 2.0])
    first = bool(jax.random.bernoulli(key))
    num, den = (q[0], q[1]) if first else (q[1], q[0])
    q_ref = -num.mean() / np.abs(den).mean()
    np.testing.assert_allclose(bc_loss, bc_ref, rtol=1e-5)
    np.testing.assert_allclose(q_loss, q_ref, rtol=1e-5)
    np.testing.assert_allclose(loss, bc_ref + eta * q_ref, rtol=1e-5)
    # a given chain action replaces x0_hat in the Q term only
    chain = jnp.zeros((b, a_dim))
    _, (bc2, q2) = diffusion_ql.actor_loss(eps_model, q_fn, schedule, jnp.asarray(obs), jnp.asarray(target), t,
                                           jnp.asarray(noise), chain, eta, key)
    q0 = np.stack([-(c[0] ** 2).sum() + 3.0, -(c[1] ** 2).sum() + 2.0])
    np.testing.assert_allclose(bc2, bc_ref, rtol=1e-5)
    np.testing.assert_allclose(q2, -(q0[0] if first else q0[1]) / abs(q0[1] if first else q0[0]), rtol=1e-5)


def test_iql_expectile_loss_matches_numpy_and_its_minimiser_is_the_expectile():
    rng = np.random.default_rng(1)
    u = rng.normal(size=1000).astype(np.float32)
    for tau in (0.5, 0.7, 0.9):
        ref = np.mean(np.where(u > 0, tau, 1 - tau) * u**2)
        np.testing.assert_allclose(iql.expectile_loss(jnp.asarray(u), tau), ref, rtol=1e-5)
    # argmin_v E L2_tau(x - v) is the tau-expectile: solve tau E[(x-v)+] = (1-tau) E[(v-x)+] by bisection in NumPy
    x = rng.exponential(size=4000).astype(np.float32)
    tau = 0.8
    lo, hi = 0.0, 10.0
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if tau * np.mean(np.maximum(x - mid, 0)) > (1 - tau) * np.mean(np.maximum(mid - x, 0)) \
            else (lo, mid)
    grad = jax.grad(lambda v: iql.expectile_loss(jnp.asarray(x) - v, tau))
    v = jax.jit(lambda: jax.lax.fori_loop(0, 3000, lambda i, v: v - 0.5 * grad(v), 0.0))()
    np.testing.assert_allclose(v, 0.5 * (lo + hi), rtol=1e-3)


def test_discrete_soft_choice_q_and_normalised_q_loss():
    config = OfflineConfig(algo="td3_bc", actor=ActorConfig(kind="deterministic", hidden_dims=(8,)),
                           critic_hidden_dims=(8,), logit_scale=4.0)
    critic = make_critic(config, 3, True)
    obs = jnp.asarray(np.random.default_rng(2).normal(size=(5, 4)), jnp.float32)
    params = critic.init(jax.random.PRNGKey(0), obs)
    x = jnp.asarray(np.random.default_rng(3).uniform(-1, 1, size=(5, 3)), jnp.float32)
    q_all = np.asarray(critic.apply(params, obs))  # [2, 5, 3]
    probs = np.exp(4.0 * np.asarray(x)) / np.exp(4.0 * np.asarray(x)).sum(-1, keepdims=True)
    np.testing.assert_allclose(q_policy(critic, params, obs, x, True, 4.0), (q_all * probs[None]).sum(-1), rtol=1e-5)
    q = jnp.asarray([[1.0, 3.0], [-2.0, 2.0]])
    key = jax.random.PRNGKey(0)
    expect = -2.0 / 2.0 if bool(jax.random.bernoulli(key)) else 0.0 / 2.0
    np.testing.assert_allclose(normalised_q_loss(key, q), expect, rtol=1e-6)


def _two_mode_batch(key, n=256):
    """State s ~ U(-1, 1) (1-D), action a = +-0.6 with probability 1/2 each (+ N(0, 0.03^2)), independent of s."""
    k_s, k_m, k_n = jax.random.split(key, 3)
    s = jax.random.uniform(k_s, (n, 1), minval=-1.0, maxval=1.0)
    a = jnp.where(jax.random.bernoulli(k_m, 0.5, (n, 1)), 0.6, -0.6) + 0.03 * jax.random.normal(k_n, (n, 1))
    return Batch(obs=s, action=jnp.clip(a, -1, 1), reward=jnp.zeros(n), next_obs=s, discount=jnp.zeros(n))


@functools.lru_cache(maxsize=None)
def _cloned(kind: str):
    actor = {"mlp": ActorConfig(kind="deterministic", hidden_dims=(64, 64)),
             "diffusion": ActorConfig(kind="diffusion", hidden_dims=(64, 64), diffusion_steps=10, output_tanh=False),
             "flow": ActorConfig(kind="diffusion", generator="flow", hidden_dims=(64, 64), diffusion_steps=10)}[kind]
    config = bc.default_config(actor=actor)
    hp = bc.default_hparams(lr_actor=2e-3)
    state = init_offline(jax.random.PRNGKey(0), config, 1, 1, False)

    @jax.jit
    def fit(state):
        def step(state, k):
            k_b, k_u = jax.random.split(k)
            return bc.update(k_u, config, state, _two_mode_batch(k_b), hp, 1, False)[0], None
        return jax.lax.scan(step, state, jax.random.split(jax.random.PRNGKey(1), 2500))[0]

    state = fit(state)
    obs = jnp.linspace(-1, 1, 2000)[:, None]
    return np.asarray(jax.jit(lambda k: actor_vectors(k, config, state, state.actor, obs, 1))(jax.random.PRNGKey(5)))[:, 0]


@pytest.mark.parametrize("kind", ["diffusion", "flow"])
def test_generative_bc_recovers_both_modes_and_mlp_averages_them(kind):
    a = _cloned(kind)
    near_pos, near_neg = np.mean(np.abs(a - 0.6) < 0.2), np.mean(np.abs(a + 0.6) < 0.2)
    assert 0.35 < near_pos < 0.65 and 0.35 < near_neg < 0.65, (near_pos, near_neg)
    assert near_pos + near_neg > 0.85, (near_pos, near_neg)  # little mass between the modes
    assert np.mean(np.abs(a) < 0.2) < 0.1  # where the MLP puts everything
    mlp = _cloned("mlp")
    assert np.all(np.abs(mlp) < 0.2), np.abs(mlp).max()  # the conditional mean: 0, a mode of neither


def test_offline_config_and_hparams_validation():
    with pytest.raises(ValueError, match="algo"):
        OfflineConfig(algo="cql")
    with pytest.raises(ValueError, match="actor.kind"):
        agents.default_config("td3_bc", actor=ActorConfig(kind="gaussian"))
    with pytest.raises(ValueError, match="generator"):
        agents.default_config("diffusion_ql", actor=ActorConfig(kind="diffusion", generator="flow"))
    with pytest.raises(ValueError, match="edp"):
        agents.default_config("fql", edp=True)
    with pytest.raises(ValueError, match="action_candidates"):
        agents.default_config("bc", action_candidates=4)
    with pytest.raises(ValueError, match="batch_size"):
        agents.default_config("iql", batch_size=0)
    with pytest.raises(ValueError, match="expectile"):
        validate_offline_hparams(OfflineHparams(expectile=1.0))
    with pytest.raises(ValueError, match="eta"):
        agents.default_hparams("diffusion_ql", eta=-1.0)
    with pytest.raises(TypeError):
        validate_offline_hparams(agents.Hparams())
