"""D2RL exploration (seed 003): each network's loss decreases on a fixed batch, the chi schedule against a NumPy
loop, the substitution frequency against the binomial distribution, and the stored rewards of a training run
against a NumPy re-computation of C, R' and the MLP correction from the stored states and actions."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxdiff_rl.agents.base import adam_init, adam_step
from jaxdiff_rl.diffusion import make_schedule
from jaxdiff_rl.agents.networks import ActorConfig, actor_forward, actor_init
from jaxdiff_rl.explore import ExploreConfig, d2rl_config, d2rl_hparams
from jaxdiff_rl.explore.reward import reward_init, reward_loss, reward_correction
from jaxdiff_rl.explore.state import explore_states, state_init, state_loss, substitute, update_chi
from jaxdiff_rl.train import make_trainer
from tests.envs.reference_numpy import fd_sum_rate_loop, water_filling_bisection

SMALL = dict(reward_hidden_dims=(32, 32), state_hidden_dims=(32, 32))


def _fit(loss_fn, params, lr, steps):
    """Adam on loss_fn(params, key), a fresh key per step; returns (loss before, loss after, params), both
    evaluated at one fixed key (the same diffusion steps and noise: a fixed batch)."""
    opt = adam_init(params)

    @jax.jit
    def step(params, opt, key):
        loss, g = jax.value_and_grad(loss_fn)(params, key)
        return (*adam_step(params, g, opt, lr), loss)

    fixed = jax.random.key(12345)
    first = float(loss_fn(params, fixed))
    for i in range(steps):
        params, opt, _ = step(params, opt, jax.random.fold_in(jax.random.key(1), i))
    return first, float(loss_fn(params, fixed)), params


def test_senpnn_loss_decreases_and_generates_the_states():
    """Mode II (eq. 22) on 2-D states on the unit circle: the eps-loss at fixed (p, eps) falls, and the Mode II
    samples come to the circle's scale (an independent check: the radius of the generated states)."""
    config = ExploreConfig(state_exploration=True, **SMALL)
    angle = np.linspace(0, 2 * np.pi, 256, endpoint=False)
    states = jnp.asarray(np.stack([np.cos(angle), np.sin(angle)], -1), jnp.float32)
    params = state_init(jax.random.key(0), config, 2)
    untrained = np.linalg.norm(np.asarray(explore_states(config, params, jax.random.key(2), states)), axis=-1)
    first, last, params = _fit(lambda p, k: state_loss(config, p, k, states), params, 3e-3, 600)
    assert last < 0.5 * first
    generated = explore_states(config, params, jax.random.key(2), states)
    radius = np.linalg.norm(np.asarray(generated), axis=-1)
    # P = 6 ancestral steps shrink samples towards the mean a little (median radius ~0.6-0.8), but the samples are
    # on the data's scale, where the untrained chain's are ~15x off
    assert np.median(untrained) > 3.0 and 0.4 < np.median(radius) and np.percentile(radius, 90) < 1.3
    assert np.abs(np.asarray(generated) - np.asarray(states)).mean() > 0.3  # new states, not copies of S^0
    # a partial forward process (p = 1 of P = 6: 93% of S^0 survives the noising) keeps S_hat^0 near S^0, and the
    # trained SENPNN's one reverse step denoises: closer to S^0 than undoing only the scaling, x_1 / sqrt(abar_1),
    # whose mean error per entry is sqrt(1 / abar_1 - 1) E|N(0, 1)|
    near = config.replace(state_forward_steps=1)
    abar = float(make_schedule("vp", 6).alpha_bars[0])
    unscaled_gap = math.sqrt(1 / abar - 1) * math.sqrt(2 / math.pi)
    near_gap = np.abs(np.asarray(explore_states(near, params, jax.random.key(2), states)) - np.asarray(states)).mean()
    full_gap = np.abs(np.asarray(generated) - np.asarray(states)).mean()
    assert near_gap < 0.9 * unscaled_gap and near_gap < 0.5 * full_gap
    # the linear schedule's first beta is 1e-4: one forward + one reverse step moves S^0 by ~1% of the noise scale
    # even with the untrained network, |x_0 - S^0| <= sqrt(1 - abar_1) (|eps| + |eps_hat|) / sqrt(abar_1)
    linear = config.replace(state_forward_steps=1, state_schedule="linear")
    untrained = state_init(jax.random.key(0), config, 2)
    moved = np.abs(np.asarray(explore_states(linear, untrained, jax.random.key(2), states)) - np.asarray(states))
    assert moved.mean() < 0.1 * near_gap and moved.mean() > 0  # noised and denoised, not a copy


@pytest.mark.parametrize("net", ["gdm", "mlp"])
def test_reward_correction_learns_to_rank_actions(net):
    """The RENPNN / MLP correction under its Mode-I loss: the loss falls on a fixed batch, and the correction ends
    up positive where the critic's advantage is positive and negative where it is negative."""
    config = ExploreConfig(reward="designed_gdm" if net == "gdm" else "designed_mlp", **SMALL)
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.normal(size=(128, 3)), jnp.float32)
    action = jnp.asarray(rng.uniform(-1, 1, size=(128, 2)), jnp.float32)
    adv = jnp.asarray(np.asarray(action[:, 0]) - 0.5 * np.asarray(obs[:, 0]), jnp.float32)  # a critic's ranking
    params = reward_init(jax.random.key(0), config, 3, 2)
    first, last, params = _fit(lambda p, k: reward_loss(config, p, k, obs, action, adv), params, 3e-3, 120)
    assert last < first - 0.3
    c = np.asarray(reward_correction(config, params, jax.random.key(5), obs, action, 2.0))
    assert np.all(np.abs(c) <= 2.0)
    a = np.asarray(adv)
    assert c[a > 0.3].mean() > 1.0 and c[a < -0.3].mean() < -1.0


def test_aenpnn_actor_loss_decreases():
    """Mode I on actions (eq. 21, -E[Q]) through all 6 reverse steps, with a fixed critic Q = -||a - a*(s)||^2."""
    actor = ActorConfig(kind="diffusion", hidden_dims=(32, 32), diffusion_steps=6)
    rng = np.random.default_rng(0)
    obs = jnp.asarray(rng.uniform(-1, 1, size=(16, 2)), jnp.float32)
    target = 0.8 * jnp.tanh(obs[:, ::-1])
    loss = lambda p, k: jnp.mean(jnp.sum((actor_forward(actor, p, k, obs, 2, False).action - target) ** 2, -1))
    first, last, _ = _fit(loss, actor_init(jax.random.key(0), actor, 2, 2), 3e-3, 100)
    assert last < 0.25 * first


def test_chi_schedule_matches_algorithm_1():
    """chi <- min(chi + eta, M) only in epochs whose loss is below T, against a NumPy loop (NaN: no change)."""
    rng = np.random.default_rng(0)
    losses = rng.uniform(0, 2e-3, size=300)
    losses[:7] = np.nan
    for threshold, rate, maximum in [(5e-4, 1e-2, 0.9), (1e-3, 0.05, 0.3), (0.0, 0.1, 1.0)]:
        step = jax.jit(lambda c, loss, t=threshold, r=rate, m=maximum: update_chi(c, loss, t, r, m))
        chi, ref = jnp.float32(0.0), 0.0
        for loss in losses:
            chi = step(chi, jnp.float32(loss))
            ref = min(ref + rate, maximum) if loss < threshold else ref
            assert float(chi) == pytest.approx(ref, abs=1e-6)
    assert ref == 0.0  # T = 0: never


@pytest.mark.parametrize("chi", [0.0, 0.3, 1.0])
def test_substitution_frequency(chi):
    n = 20_000
    states, explored = jnp.zeros((n, 3)), jnp.ones((n, 3))
    seen, picked = substitute(jax.random.key(7), states, explored, jnp.float32(chi))
    frac = float(jnp.mean(picked))
    assert abs(frac - chi) <= 4 * math.sqrt(chi * (1 - chi) / n) + 1e-12
    np.testing.assert_array_equal(np.asarray(seen[:, 0]), np.asarray(picked, np.float32))


# --- a whole D2RL run on a small FD-ISAC (K = L = 2, N_t = N_r = 2) --------------------------------------------
def _numpy_upper_bound(dl_pos, ul_pos, sigma2, nt, nr, p_max=3.0, p_ul=1.0):
    from tests.envs.reference_numpy import fd_channel

    g = [fd_channel(x, nt) for x in dl_pos]
    h = [fd_channel(x, nr) for x in ul_pos]
    gains = np.array([np.sum(np.abs(v) ** 2) for v in g]) / sigma2
    powers = water_filling_bisection(gains, 1.0, p_max)
    dl = np.sum(np.log2(1 + gains * powers))
    return dl + sum(math.log2(1 + p_ul * np.sum(np.abs(v) ** 2) / sigma2) for v in h)


def _numpy_mlp(params, x):
    layers = sorted(params["params"], key=lambda name: int(name.split("_")[1]))
    for i, name in enumerate(layers):
        x = x @ np.asarray(params["params"][name]["kernel"], np.float64) + np.asarray(params["params"][name]["bias"])
        if i < len(layers) - 1:
            x = x * np.tanh(np.log1p(np.exp(x)))  # mish
    return x[..., 0]


@pytest.fixture(scope="module")
def small_run():
    env, params = envs.make("fd-isac", num_dl=2, num_ul=2, num_tx=2, num_rx=2, one_shot=True)
    # a deterministic actor keeps the compile short (the diffusion actor has its own test above)
    config = d2rl_config("designed_mlp", state_exploration=True, action_gdm=False, width=16, batch_size=8,
                         buffer_size=400, num_envs=4, num_iterations=30, learning_starts=16)
    # one hidden layer everywhere: the program (and its compile time) stays small; depth is not what is tested
    config = config.replace(actor=ActorConfig(kind="deterministic", hidden_dims=(16,)), critic_hidden_dims=(16,),
                            explore=config.explore.replace(state_hidden_dims=(16,), reward_hidden_dims=(16,)))
    hparams = d2rl_hparams(lr_reward=0.0, reward_scale=0.7, state_threshold=10.0, chi_rate=0.25, chi_max=0.75)
    trainer = make_trainer(config, env, params)
    state, metrics = jax.jit(trainer.train)(jax.random.key(0), hparams)
    return env, params, config, hparams, state, jax.tree_util.tree_map(np.asarray, metrics)


@pytest.mark.xdist_group("explore_run")  # one worker builds the shared run
@pytest.mark.heavy
def test_run_chi_and_substitution(small_run):
    config, m = small_run[2], small_run[5]
    chi, ref = m["chi"], 0.0
    for e in range(len(chi)):  # the epoch's SENPNN loss gates the increment (T = 10: every epoch with updates)
        loss = m["state_net_loss"][e]
        ref = min(ref + 0.25, 0.75) if loss < 10.0 else ref
        assert chi[e] == pytest.approx(ref)
    assert chi[-1] == pytest.approx(0.75) and np.isnan(m["state_net_loss"][0])
    before = np.concatenate([[0.0], chi[:-1]])  # substitution in epoch e uses chi after epoch e - 1
    assert np.all(m["substituted_fraction"][before == 0] == 0)
    picked = m["substituted_fraction"][before == 0.75].sum() * config.num_envs
    draws = (before == 0.75).sum() * config.num_envs
    assert abs(picked / draws - 0.75) < 4 * math.sqrt(0.75 * 0.25 / draws)
    # C over the true-state steps: all of C without substitution, undefined when every step was substituted
    sub, obs_c, all_c = m["substituted_fraction"], m["objective_mean_observed"], m["objective_mean"]
    np.testing.assert_allclose(obs_c[sub == 0], all_c[sub == 0], rtol=1e-6)
    assert np.all(np.isnan(obs_c[sub == 1])) and np.all(np.isfinite(obs_c[sub < 1]))
    assert (sub == 1).any() and ((sub > 0) & (sub < 1)).any()  # both cases occur in this run
    gap = m["substituted_state_gap"]  # sum |S_hat - S| / sum |S| over substituted steps: defined only where some were
    assert np.all(np.isnan(gap[sub == 0])) and np.all(gap[sub > 0] > 0) and np.all(np.isfinite(gap[sub > 0]))


@pytest.mark.xdist_group("explore_run")  # one worker builds the shared run
@pytest.mark.heavy
def test_run_stores_the_designed_reward(small_run):
    """Rows collected while chi = 0 hold the true state: their stored reward must be C - R' + 0.7 tanh(MLP(s, a))
    recomputed in float64 NumPy from the stored (s, a) (MLP frozen with lr_reward = 0)."""
    config, state, m = small_run[2], small_run[4], small_run[5]
    before = np.concatenate([[0.0], m["chi"][:-1]])
    rows = np.flatnonzero(before == 0)
    data = jax.tree_util.tree_map(np.asarray, state.buffer.data)
    sigma2 = 10 ** ((-97 - 30) / 10)
    checked = 0
    for row in rows:
        for lane in range(config.num_envs):
            obs, action = data.obs[row, lane].astype(np.float64), data.action[row, lane].astype(np.float64)
            dl_pos, ul_pos = obs[:4].reshape(2, 2) * 300.0, obs[4:8].reshape(2, 2) * 300.0
            a_v, a_w, a_p = action[:8].reshape(2, 2, 2), action[8:16].reshape(2, 2, 2), action[16:]
            V = a_v[..., 0] + 1j * a_v[..., 1]
            V *= math.sqrt(3.0) / max(np.linalg.norm(V), 1.0)
            W = a_w[..., 0] + 1j * a_w[..., 1]
            W /= np.linalg.norm(W, axis=-1, keepdims=True)
            p = (np.clip(a_p, -1, 1) + 1) / 2
            c = fd_sum_rate_loop(dl_pos, ul_pos, V, W, p, sigma2, nt=2, nr=2)
            bound = _numpy_upper_bound(dl_pos, ul_pos, sigma2, 2, 2)
            correction = 0.7 * np.tanh(_numpy_mlp(state.explore.reward, np.concatenate([obs, action])))
            assert data.reward[row, lane] == pytest.approx(c - bound + correction, rel=1e-3, abs=1e-3)
            checked += 1
    assert checked >= 16 and c < bound


def test_bad_explore_settings():
    with pytest.raises(ValueError, match="ExploreConfig.reward"):
        ExploreConfig(reward="designed+gdm")
    with pytest.raises(ValueError, match="reward_hidden_dims"):
        ExploreConfig(reward_hidden_dims=())
    with pytest.raises(ValueError, match="schedule"):
        ExploreConfig(state_schedule="sigmoid")
    for bad in (0, 7, 2.0, True):
        with pytest.raises(ValueError, match="state_forward_steps"):
            ExploreConfig(state_forward_steps=bad)
    with pytest.raises(ValueError, match="explore needs a deterministic-actor"):
        d2rl_config().replace(algo="sac", actor=ActorConfig(kind="gaussian"))
    with pytest.raises(TypeError, match="AgentConfig.explore"):
        d2rl_config().replace(explore="designed")
    with pytest.raises(ValueError, match="chi_max"):
        d2rl_hparams(chi_max=1.5)
    with pytest.raises(ValueError, match="chi_rate"):
        d2rl_hparams(chi_rate=-0.1)
    env, params = envs.make("fd-isac", reward_mode="designed")
    with pytest.raises(ValueError, match="reward_mode='raw'"):
        make_trainer(d2rl_config(width=8), env, params)
