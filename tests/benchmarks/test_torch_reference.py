"""The PyTorch reference of benchmarks/train_speed.py computes what jaxdiff-rl computes: same VP schedule, same
water-filling optimum, same n-step targets. Skipped unless the `torch` extra is installed."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

import envs  # noqa: E402
from benchmarks.torch_reference.buffer import ReplayBuffer  # noqa: E402
from benchmarks.torch_reference.envs_numpy import MSREnv  # noqa: E402
from benchmarks.torch_reference.nets import VPSchedule  # noqa: E402
from jaxdiff_rl.train.buffer import Transition, buffer_add, buffer_init, buffer_sample  # noqa: E402
from jaxdiff_rl.diffusion import make_schedule  # noqa: E402


def test_vp_schedule_matches():
    ref, ours = VPSchedule(5), make_schedule("vp", 5)
    np.testing.assert_allclose(ref.coef1, ours.posterior_mean_coef1, rtol=1e-6)
    np.testing.assert_allclose(ref.coef2, ours.posterior_mean_coef2, rtol=1e-6)
    np.testing.assert_allclose(ref.std, np.exp(0.5 * np.asarray(ours.posterior_log_variance_clipped)), rtol=1e-6)
    np.testing.assert_allclose(ref.sqrt_recipm1_abar, ours.sqrt_recipm1_alpha_bars, rtol=1e-6)


def test_msr_optimum_is_water_filling():
    env = MSREnv(np.random.default_rng(0))
    env.reset()
    gains = np.asarray(env.loop.gains)
    powers = envs.msr.water_filling(jnp.asarray(gains), 1.0, 20.0)
    assert env.optimum() == pytest.approx(float(envs.msr.sum_rate(powers, jnp.asarray(gains), 1.0)), rel=1e-5)


def test_nstep_targets_match_the_jax_buffer():
    """Fill both buffers with the same transitions (episodes ending at random), sample every (row, lane) by
    forcing the indices, and compare returns, bootstrap observations and discounts."""
    rng = np.random.default_rng(1)
    rows, lanes, obs_dim, n, gamma = 12, 3, 2, 3, 0.9
    ref = ReplayBuffer(rows * lanes, lanes, obs_dim, (), True)
    example = Transition(obs=jnp.zeros(obs_dim), action=jnp.int32(0), reward=jnp.float32(0),
                         next_obs=jnp.zeros(obs_dim), terminated=jnp.bool_(False), done=jnp.bool_(False))
    ours = buffer_init(jax.tree_util.tree_map(lambda a: jnp.stack([a] * lanes), example), rows * lanes)
    for _ in range(rows + 4):  # wraps around
        obs, nxt = rng.normal(size=(lanes, obs_dim)), rng.normal(size=(lanes, obs_dim))
        act, rew, term = rng.integers(0, 4, lanes), rng.normal(size=lanes), rng.random(lanes) < 0.3
        ref.add(obs, act, rew, nxt, term)
        ours = buffer_add(ours, Transition(obs=jnp.asarray(obs, jnp.float32), action=jnp.asarray(act, jnp.int32),
                                           reward=jnp.asarray(rew, jnp.float32), next_obs=jnp.asarray(nxt, jnp.float32),
                                           terminated=jnp.asarray(term), done=jnp.asarray(term)))
    torch.manual_seed(0)
    got = ref.sample(4096, n, gamma)
    # every sampled (obs, G, next, discount) tuple must be one the JAX buffer produces
    theirs = buffer_sample(ours, jax.random.key(0), 4096, n, gamma)
    key = lambda o, g, x, d: (tuple(np.round(o, 5)), round(float(g), 4), tuple(np.round(x, 5)), round(float(d), 4))
    jax_set = {key(*t) for t in zip(np.asarray(theirs.obs), np.asarray(theirs.reward), np.asarray(theirs.next_obs),
                                    np.asarray(theirs.discount))}
    ref_set = {key(*t) for t in zip(got[0].numpy(), got[2].numpy(), got[3].numpy(), got[4].numpy())}
    assert len(ref_set) == rows * lanes and ref_set == jax_set


def test_torch_score_net_and_langevin_step_match_the_jax_estimator():
    from benchmarks.torch_reference.score_langevin import load_flax_denoiser, make_score_net, real_operator
    from envs import mimo_channels as mc
    from jaxdiff_rl.estimate.diffusion import ScorePriorConfig, likelihood_score

    config = ScorePriorConfig(2, 4, hidden_dims=(32, 32), time_dim=16)
    net = config.network()
    x = jax.random.normal(jax.random.key(0), (5, config.dim))
    params = net.init(jax.random.key(1), x, jnp.zeros(5, jnp.int32))
    model = load_flax_denoiser(make_score_net(config.dim, (32, 32), 16), jax.device_get(params))
    t = np.array([0, 3, 7, 1, 2])
    ref = model(torch.from_numpy(np.asarray(x)), torch.from_numpy(t), torch.zeros(5, 0)).detach().numpy()
    np.testing.assert_allclose(ref, np.asarray(net.apply(params, x, jnp.asarray(t))), rtol=1e-4, atol=1e-5)
    # the likelihood score of the torch loop
    p = mc.qpsk_pilots(jax.random.key(2), 4, 2)
    y = mc.observe(jax.random.key(3), mc.kronecker_rayleigh(jax.random.key(4), 5, 2, 4), p, 5.0)
    a_r = real_operator(np.asarray(p), 2)
    y_r = torch.from_numpy(np.asarray(mc.to_real(y)))
    ours = np.asarray(likelihood_score(y, p, 10 ** -0.5)(x, 0.3))
    theirs = (((y_r - torch.from_numpy(np.asarray(x)) @ a_r.T) @ a_r) / (0.5 * 10 ** -0.5 + 0.09)).numpy()
    np.testing.assert_allclose(theirs, ours, rtol=1e-4, atol=1e-4)
    # the preconditioned prior score of the torch loop is the JAX estimator's at every level
    from benchmarks.torch_reference.score_langevin import prior_score
    from jaxdiff_rl.diffusion.score import score_from_model
    from jaxdiff_rl.estimate.diffusion import ScorePrior

    sigmas = config.sigmas()
    score = score_from_model(ScorePrior(config, params).model_fn(), sigmas)
    xt = torch.from_numpy(np.asarray(x))
    for i in (0, 17, config.num_levels - 1):
        theirs = prior_score(model, xt, i, float(sigmas[i]), config.sigma_data).detach().numpy()
        np.testing.assert_allclose(theirs, np.asarray(score(x, jnp.int32(i))), rtol=1e-4, atol=1e-4 * float(
            1 / sigmas[i]))
