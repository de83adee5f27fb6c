"""The on-policy loop and PPO's pieces against independent references: GAE vs a NumPy loop with terminations and
truncations, the clipped losses vs a hand-computed batch, the ratio before the first update, determinism, vmap ==
separate runs, resume, bad input; PPO learns CartPole (gymnax) and msr-3."""

import dataclasses

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxdiff_rl import agents
from jaxdiff_rl.agents.ppo import gae, ppo_loss
from jaxdiff_rl.app.runner import run
from jaxdiff_rl.train import make_trainer


def _gae_loop(r, v, nv, term, done, gamma, lam):
    T, N = r.shape
    adv = np.zeros((T, N))
    for n in range(N):
        following = 0.0
        for t in reversed(range(T)):
            delta = r[t, n] + gamma * (0.0 if term[t, n] else nv[t, n]) - v[t, n]
            following = delta + (0.0 if done[t, n] else gamma * lam * following)
            adv[t, n] = following
    return adv


def test_gae_matches_numpy_loop_with_terminations_and_truncations():
    rng = np.random.default_rng(0)
    T, N = 37, 5
    r, v, nv = rng.normal(size=(3, T, N))
    term = rng.random((T, N)) < 0.1
    trunc = (rng.random((T, N)) < 0.1) & ~term  # truncated: bootstraps from V(s') but ends the recursion
    done = term | trunc
    for gamma, lam in ((0.99, 0.95), (0.9, 1.0), (0.0, 0.5)):
        adv, ret = gae(*(jnp.asarray(x, jnp.float32) for x in (r, v, nv, term, done)), gamma, lam)
        ref = _gae_loop(r, v, nv, term, done, gamma, lam)
        np.testing.assert_allclose(np.asarray(adv), ref, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(ret), ref + v, rtol=1e-5, atol=1e-5)


def test_ppo_loss_matches_hand_computed_batch():
    rng = np.random.default_rng(1)
    B = 64
    logp, old, adv, val, old_val, ret, ent = rng.normal(size=(7, B)) * np.array([0.3, 0.3, 1, 1, 1, 1, 0.1])[:, None]
    hp = agents.default_hparams("ppo", clip_eps=0.15, vf_clip=0.25, ent_coef=0.02, vf_coef=0.7)
    for clip_v in (True, False):
        cfg = agents.default_config("ppo", clip_value_loss=clip_v)
        out = ppo_loss(*(jnp.asarray(x, jnp.float32) for x in (logp, old, adv, val, old_val, ret, ent)), hp, cfg)
        a = (adv - adv.mean()) / (adv.std() + 1e-8)
        ratio = np.exp(logp - old)
        actor = -np.mean([min(ratio[i] * a[i], min(max(ratio[i], 0.85), 1.15) * a[i]) for i in range(B)])
        if clip_v:
            vc = old_val + np.clip(val - old_val, -0.25, 0.25)
            value = 0.5 * np.mean(np.maximum((val - ret) ** 2, (vc - ret) ** 2))
        else:
            value = 0.5 * np.mean((val - ret) ** 2)
        assert float(out.actor_loss) == pytest.approx(actor, rel=1e-5)
        assert float(out.value_loss) == pytest.approx(value, rel=1e-5)
        assert float(out.total) == pytest.approx(actor + 0.7 * value - 0.02 * ent.mean(), rel=1e-5)
        assert float(out.clip_fraction) == pytest.approx(np.mean(np.abs(ratio - 1) > 0.15))


TINY = dict(num_envs=4, num_steps=16, total_timesteps=4 * 16 * 4, update_epochs=2, num_minibatches=4,
            hidden_dims=(16, 16))


def test_ratio_is_one_before_the_first_update_determinism_and_vmap_equals_separate_runs():
    env, params = gymnax.make("CartPole-v1")
    trainer = make_trainer(agents.default_config("ppo", **TINY), env, params)
    hp = agents.default_hparams("ppo")
    keys = jax.random.split(jax.random.PRNGKey(0), 8)
    train = jax.jit(trainer.train)
    _, batched = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(keys, hp)
    assert np.all(np.asarray(batched["first_ratio_error"]) < 1e-6)
    for i in (0, 5):
        _, single = train(keys[i], hp)
        for name in ("actor_loss", "value_loss", "entropy", "reward_mean"):
            np.testing.assert_allclose(np.asarray(batched[name][i]), np.asarray(single[name]), rtol=2e-4, atol=1e-5,
                                       err_msg=name)
    _, again = train(keys[0], hp)
    _, first = train(keys[0], hp)
    for name in first:
        assert np.array_equal(np.asarray(first[name]), np.asarray(again[name]), equal_nan=True), name
    np.testing.assert_array_equal(np.asarray(first["env_steps"]), 64 * np.arange(1, 5))
    # lr annealed linearly to 0 over all minibatch updates: 4 iterations x 2 epochs x 4 minibatches
    np.testing.assert_allclose(np.asarray(first["lr"]), 2.5e-4 * (1 - np.arange(4) * 8 / 32), rtol=1e-6)


def test_bootstrap_truncated_false_is_purejaxrls_convention():
    """Without truncations the two GAE conventions coincide (V(s') = the next step's value); with time limits
    inside the rollout they must differ."""
    env, params = gymnax.make("CartPole-v1")
    hp = agents.default_hparams("ppo")
    results = {}
    for limit in (10**6, 6):
        p = params.replace(max_steps_in_episode=limit)
        for flag in (True, False):
            trainer = make_trainer(agents.default_config("ppo", bootstrap_truncated=flag, **TINY), env, p)
            results[limit, flag] = jax.jit(trainer.train)(jax.random.PRNGKey(3), hp)[1]
    for name in ("actor_loss", "value_loss", "reward_mean"):
        np.testing.assert_allclose(np.asarray(results[10**6, True][name]), np.asarray(results[10**6, False][name]),
                                   rtol=1e-4, atol=1e-6, err_msg=name)
    assert not np.allclose(np.asarray(results[6, True]["value_loss"]), np.asarray(results[6, False]["value_loss"]),
                           rtol=1e-3)


def test_runner_resume_is_bit_identical(tmp_path):
    env, params = envs.make("msr-3")
    trainer = make_trainer(agents.default_config("ppo", actor="gaussian", **TINY), env, params)
    hp = agents.default_hparams("ppo")
    full = run(trainer, hp, jax.random.key(3), out_dir=tmp_path, chunk_iterations=1, progress=False)
    import shutil

    shutil.rmtree(tmp_path / "checkpoints" / "4")  # the last chunk never saved: resume from iteration 3
    resumed = run(trainer, hp, jax.random.key(3), out_dir=tmp_path, chunk_iterations=1, progress=False, resume=True)
    assert resumed.metrics["actor_loss"].shape == (1,)
    for a, b in zip(jax.tree_util.tree_leaves(full.state), jax.tree_util.tree_leaves(resumed.state)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert 0.8 < float(trainer.evaluate(full.state, jax.random.key(1), hp, 4, num_envs=8)["optimum_fraction"]) <= 1.0


def test_bad_input_fails_before_compiling():
    with pytest.raises(ValueError, match="num_minibatches"):
        agents.default_config("ppo", num_envs=3, num_steps=5, num_minibatches=4)
    with pytest.raises(ValueError, match="clip_eps"):
        agents.default_hparams("ppo", clip_eps=0.0)
    with pytest.raises(ValueError, match="gae_lambda"):
        agents.default_hparams("ppo", gae_lambda=1.5)
    with pytest.raises(ValueError, match="buffer_size"):
        agents.default_config("ppo", buffer_size=1000)
    with pytest.raises(ValueError, match="num_steps"):
        agents.default_config("sac", num_steps=128)
    env, params = envs.make("msr-3")
    with pytest.raises(ValueError, match="categorical"):
        make_trainer(agents.default_config("ppo"), env, params)  # categorical actor on a Box space
    trainer = make_trainer(agents.default_config("ppo", actor="gaussian", **TINY), env, params)
    with pytest.raises(TypeError, match="PPOHparams"):
        trainer.init(jax.random.key(0), agents.default_hparams("sac"))


def test_ppo_learns_cartpole_quickly():
    """2e4 env steps (PureJaxRL's settings otherwise): the greedy policy is far above the random policy's ~22."""
    env, params = gymnax.make("CartPole-v1")
    trainer = make_trainer(agents.default_config("ppo", total_timesteps=20_480), env, params)
    hp = agents.default_hparams("ppo")
    keys = jax.random.split(jax.random.PRNGKey(0), 2)
    state, _ = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(keys, hp)
    ev = jax.jit(jax.vmap(lambda s: trainer.evaluate(s, jax.random.PRNGKey(5), hp, 500, num_envs=4)))(state)
    assert np.all(np.asarray(ev["return_mean"]) > 100)


@pytest.mark.slow
def test_ppo_solves_cartpole_in_5e5_steps_over_8_seeds():
    env, params = gymnax.make("CartPole-v1")
    trainer = make_trainer(agents.default_config("ppo"), env, params)
    hp = agents.default_hparams("ppo")
    state, _ = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(jax.random.split(jax.random.PRNGKey(0), 8), hp)
    ev = jax.jit(jax.vmap(lambda s: trainer.evaluate(s, jax.random.PRNGKey(5), hp, 500, num_envs=8)))(state)
    assert np.mean(np.asarray(ev["return_mean"])) >= 475


@pytest.mark.slow
def test_gaussian_ppo_reaches_95_percent_of_water_filling_on_msr3():
    env, params = envs.make("msr-3")
    cfg = agents.default_config("ppo", actor="gaussian", num_envs=64, num_steps=8, total_timesteps=200_000)
    trainer = make_trainer(cfg, env, params)
    hp = agents.default_hparams("ppo", lr=3e-4, ent_coef=0.0, gamma=0.0)
    state, _ = jax.jit(jax.vmap(trainer.train, in_axes=(0, None)))(jax.random.split(jax.random.PRNGKey(0), 4), hp)
    ev = jax.jit(jax.vmap(lambda s: trainer.evaluate(s, jax.random.PRNGKey(5), hp, 16, num_envs=256)))(state)
    assert np.all(np.asarray(ev["optimum_fraction"]) >= 0.95)


def test_train_spec_builds_on_policy_runs_and_refuses_wrong_fields():
    from jaxdiff_rl.app.experiment import TrainSpec, build

    trainer, keys, hp, settings = build(TrainSpec(algo="ppo", env="msr-3", num_seeds=2, hidden=(8,),
                                                  static=dict(num_envs=4, num_steps=8, total_timesteps=64,
                                                              num_minibatches=2),
                                                  hparams=dict(lr=[1e-4, 1e-3])))
    assert trainer.config.actor == "gaussian" and trainer.config.hidden_dims == (8,) and keys.shape[0] == 4
    np.testing.assert_allclose(np.asarray(hp.lr), [1e-4, 1e-3] * 2, rtol=1e-6)
    trainer, *_ = build(TrainSpec(algo="ppo", env="gymnax:CartPole-v1"))
    assert trainer.config.actor == "categorical" and trainer.spec.discrete
    for bad, field in ((dict(static=dict(buffer_size=10)), "buffer_size"), (dict(hparams=dict(tau=0.1)), "tau"),
                       (dict(diffusion_steps=5), "diffusion_steps"), (dict(hparams=dict(gae_lambda=-0.1)), "gae_lambda")):
        with pytest.raises(ValueError, match=field):
            build(TrainSpec(algo="ppo", env="msr-3", **bad))
    with pytest.raises(ValueError, match="num_steps"):
        build(TrainSpec(algo="sac", env="msr-3", static=dict(num_steps=8)))


def _norm_logpdf(x, mean, std):
    return -0.5 * ((x - mean) / std) ** 2 - np.log(std) - 0.5 * np.log(2 * np.pi)


def test_dm_ppo_chain_log_prob_is_the_numpy_sum_of_gaussian_kernels():
    """On a stored chain: log pi = sum over the stochastic steps t >= 1 (t < K with finetune_steps = K) of
    log N(x_{t-1}; mu_theta(x_t, t, s), max(sigma_t, min_std)^2 I), mu from the network's eps by the DDPM formulas,
    recomputed here in NumPy from the schedule arrays."""
    from jaxdiff_rl.diffusion import make_schedule
    from jaxdiff_rl.train import on_policy

    env, params = envs.make("msr-3")
    for schedule, min_std, k in (("vp", 0.1, None), ("linear", 0.1, None), ("linear", 0.05, 3)):
        cfg = agents.default_config("dm_ppo", schedule=schedule, min_std=min_std, finetune_steps=k, **TINY)
        trainer = make_trainer(cfg, env, params)
        state = trainer.init(jax.random.key(0), agents.default_hparams("dm_ppo"))
        obs = np.asarray(state.obs)
        sch = make_schedule(schedule, cfg.diffusion_steps)
        c = on_policy._Ctx(cfg, env, trainer.spec, None,
                           denoiser=on_policy.Denoiser(out_dim=3, cond_dim=4, hidden_dims=(16, 16), time_dim=16),
                           critic=on_policy.ValueMLP((16, 16)), schedule=sch,
                           sampler=on_policy.SamplerConfig(method="ddpm", clip_x0=(-1.0, 1.0), min_std=min_std,
                                                           return_trajectory=True))
        chain, action, log_prob, _ = on_policy._policy_act(c, state.params, jax.random.key(1), jnp.asarray(obs))
        chain = np.asarray(chain, np.float64)
        np.testing.assert_allclose(np.asarray(action), chain[:, -1], rtol=1e-6)
        abar = np.asarray(sch.alpha_bars, np.float64)
        c1, c2 = np.asarray(sch.posterior_mean_coef1, np.float64), np.asarray(sch.posterior_mean_coef2, np.float64)
        std = np.maximum(np.exp(0.5 * np.asarray(sch.posterior_log_variance_clipped, np.float64)), min_std)
        ref = np.zeros(obs.shape[0])
        T = cfg.diffusion_steps
        for step in range(T):
            t = T - 1 - step
            x_t, x_prev = chain[:, step], chain[:, step + 1]
            eps = np.asarray(c.denoiser.apply(state.params["denoiser"], jnp.asarray(x_t, jnp.float32),
                                              jnp.full((obs.shape[0],), t, jnp.int32), jnp.asarray(obs)), np.float64)
            x0 = np.clip((x_t - np.sqrt(1 - abar[t]) * eps) / np.sqrt(abar[t]), -1, 1)
            mean = c1[t] * x0 + c2[t] * x_t
            if t == 0:
                np.testing.assert_allclose(x_prev, mean, rtol=1e-4, atol=1e-5)  # the last step adds no noise
            elif k is None or t < k:
                ref += _norm_logpdf(x_prev, mean, std[t]).sum(-1)
        np.testing.assert_allclose(np.asarray(log_prob), ref, rtol=1e-4, atol=1e-4)
        again = on_policy._policy_evaluate(c, state.params, jnp.asarray(obs), jnp.asarray(chain, jnp.float32))[0]
        np.testing.assert_allclose(np.asarray(again), np.asarray(log_prob), rtol=1e-5, atol=1e-5)


def test_dm_ppo_runs_with_ratio_one_and_learns_msr3_lowsnr():
    env, params = envs.make("msr-3-lowsnr")
    cfg = agents.default_config("dm_ppo", num_envs=64, num_steps=8, total_timesteps=64 * 8 * 64,
                                 anneal_lr=False)
    trainer = make_trainer(cfg, env, params)
    hp = agents.default_hparams("dm_ppo", lr=1e-3, ent_coef=0.0, gamma=0.0)
    state, m = jax.jit(trainer.train)(jax.random.key(0), hp)
    assert np.all(np.asarray(m["first_ratio_error"]) < 1e-5)
    f = np.asarray(m["optimum_fraction"])
    assert f[-5:].mean() > f[:5].mean() + 0.03, f  # behaviour policy improves (starts ~0.85)
    with pytest.raises(ValueError, match="Box"):
        make_trainer(cfg, *gymnax.make("CartPole-v1"))
    with pytest.raises(ValueError, match="finetune_steps"):
        agents.default_config("dm_ppo", finetune_steps=9)


def test_dm_ppo_flow_chain_log_prob_is_the_numpy_sum_of_gaussian_kernels():
    """Flow DM-PPO: log pi = sum over the K - 1 stochastic Euler steps of log N(x_{k+1}; x_k + dt v(x_k, t_k, s),
    min_std^2 I) with v's implied x0 = x - t v clipped to [-1, 1], recomputed in NumPy from the network."""
    from jaxdiff_rl.diffusion.flow import FLOW_TIME_SCALE, flow_times
    from jaxdiff_rl.train import on_policy

    env, params = envs.make("msr-3")
    for min_std, k in ((0.1, None), (0.2, 3)):
        cfg = agents.default_config("dm_ppo", generator="flow", diffusion_steps=4, min_std=min_std, finetune_steps=k,
                                    **TINY)
        trainer = make_trainer(cfg, env, params)
        state = trainer.init(jax.random.key(0), agents.default_hparams("dm_ppo"))
        obs = np.asarray(state.obs)
        c = on_policy._Ctx(cfg, env, trainer.spec, None,
                           denoiser=on_policy.Denoiser(out_dim=3, cond_dim=4, hidden_dims=(16, 16), time_dim=16),
                           critic=on_policy.ValueMLP((16, 16)))
        chain, action, log_prob, _ = on_policy._policy_act(c, state.params, jax.random.key(1), jnp.asarray(obs))
        chain = np.asarray(chain, np.float64)
        np.testing.assert_allclose(np.asarray(action), chain[:, -1], rtol=1e-6)
        times = flow_times(4).astype(np.float64)
        ref = np.zeros(obs.shape[0])
        for step in range(4):
            t, dt = times[step], times[step + 1] - times[step]
            x = chain[:, step]
            v = np.asarray(c.denoiser.apply(state.params["denoiser"], jnp.asarray(x, jnp.float32),
                                            jnp.float32(FLOW_TIME_SCALE * t), jnp.asarray(obs)), np.float64)
            v = (x - np.clip(x - t * v, -1, 1)) / t
            mean = x + dt * v
            if step == 3:
                np.testing.assert_allclose(chain[:, step + 1], mean, rtol=1e-4, atol=1e-5)  # deterministic last step
            elif k is None or step >= 4 - k:
                ref += _norm_logpdf(chain[:, step + 1], mean, min_std).sum(-1)
        np.testing.assert_allclose(np.asarray(log_prob), ref, rtol=1e-4, atol=1e-4)
        again = on_policy._policy_evaluate(c, state.params, jnp.asarray(obs), jnp.asarray(chain, jnp.float32))[0]
        np.testing.assert_allclose(np.asarray(again), np.asarray(log_prob), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match="generator"):
        agents.default_config("dm_ppo", generator="consistency")
    with pytest.raises(ValueError, match="min_std"):
        agents.default_config("dm_ppo", generator="flow", min_std=0.0)


def test_dm_ppo_with_a_stochastic_flow_actor_learns_msr3_lowsnr():
    env, params = envs.make("msr-3-lowsnr")
    cfg = agents.default_config("dm_ppo", generator="flow", diffusion_steps=3, num_envs=64, num_steps=8,
                                 total_timesteps=64 * 8 * 64, anneal_lr=False)
    trainer = make_trainer(cfg, env, params)
    hp = agents.default_hparams("dm_ppo", lr=1e-3, ent_coef=0.0, gamma=0.0)
    state, m = jax.jit(trainer.train)(jax.random.key(0), hp)
    assert np.all(np.asarray(m["first_ratio_error"]) < 1e-5)
    f = np.asarray(m["optimum_fraction"])
    assert f[-5:].mean() > f[:5].mean() + 0.03, f
