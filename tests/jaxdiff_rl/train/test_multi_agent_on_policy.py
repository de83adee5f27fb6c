"""IPPO and MAPPO: lane observations, the centralised critic (the actor never reads the global state), rewards and
team metrics per lane against the environment, learning on ic-power and mc-access, bad input."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from jaxdiff_rl import agents
from jaxdiff_rl.agents.ppo import ActorCritic
from jaxdiff_rl.train import make_trainer
from jaxdiff_rl.train.multi_agent import evaluate_reference
from jaxdiff_rl.train.multi_agent_on_policy import lane_observations


def small(algo, actor="gaussian", **kw):
    base = dict(actor=actor, num_envs=2, num_steps=4, total_timesteps=2 * 4 * 3, num_minibatches=2, update_epochs=1,
                hidden_dims=(16, 16))
    return agents.default_config(algo, **{**base, **kw})


def test_lane_observations_are_local_obs_and_ids_then_the_global_state():
    local = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 4)
    glob = -jnp.arange(2 * 5, dtype=jnp.float32).reshape(2, 5)
    ippo, mappo = lane_observations(local, None), lane_observations(local, glob)
    assert ippo.shape == (6, 4 + 3) and mappo.shape == (6, 4 + 3 + 5 + 3)
    for n in range(2):
        for i in range(3):
            lane = n * 3 + i
            np.testing.assert_array_equal(ippo[lane], np.concatenate([local[n, i], np.eye(3)[i]]))
            np.testing.assert_array_equal(mappo[lane], np.concatenate([local[n, i], np.eye(3)[i], glob[n], np.eye(3)[i]]))


def test_mappo_actor_ignores_the_centralised_part_and_the_critic_uses_it():
    net = ActorCritic(1, False, (16, 16), "tanh", actor_width=7)
    x = jax.random.normal(jax.random.PRNGKey(0), (5, 20))
    params = net.init(jax.random.PRNGKey(1), x)
    pi, v = net.apply(params, x)
    changed = x.at[:, 7:].add(3.0)
    pi2, v2 = net.apply(params, changed)
    np.testing.assert_array_equal(np.asarray(pi.mean()), np.asarray(pi2.mean()))
    assert float(jnp.max(jnp.abs(v - v2))) > 1e-3
    pi3, v3 = net.apply(params, x.at[:, :7].add(3.0))
    np.testing.assert_array_equal(np.asarray(v), np.asarray(v3))
    assert float(jnp.max(jnp.abs(pi.mean() - pi3.mean()))) > 0


@pytest.mark.parametrize("algo", ["ippo", "mappo"])
def test_lanes_carry_each_agents_reward_and_the_team_metrics_match_the_env(algo):
    """A rollout's per-lane rewards are the env's per-agent rewards (difference rewards differ per agent) and the
    metrics report the team reward and the WMMSE fraction."""
    env, params = envs.make("ic-power", num_links=3, reward_mode="difference", max_steps_in_episode=3)
    config = small(algo)
    trainer = make_trainer(config, env, params)
    state = trainer.init(jax.random.PRNGKey(0), agents.default_hparams(algo))
    width = 6 + 3 + ((9 + 6) + 3 if algo == "mappo" else 0)
    assert state.obs.shape == (2 * 3, width)
    _, metrics = jax.jit(lambda s: trainer.run(s, agents.default_hparams(algo), 1))(state)
    assert np.isfinite(float(metrics["reference_fraction"][0])) and 0 < float(metrics["reference_fraction"][0]) < 1.5
    # one lane step by hand: the policy's actions through the env, against the loop's lane rewards
    from jaxdiff_rl.train import multi_agent_on_policy as ma, on_policy
    k = jax.random.PRNGKey(5)
    menv = ma._Env(env, trainer.spec, 2, algo == "mappo")
    ctx_net = ActorCritic(1, False, (16, 16), "tanh", actor_width=9 if algo == "mappo" else None)
    ctx = on_policy._Ctx(config.replace(num_envs=6, total_timesteps=6 * 4 * 3), env,
                         trainer.spec._replace(obs_dim=width), ctx_net)
    rs, (step, stats) = ma._lane_step(menv, ctx, params, state, k)
    k_act, k_env = jax.random.split(k)
    _, action, _, _ = on_policy._policy_act(ctx, state.params, k_act, state.obs)
    powers = np.clip(np.asarray(action).reshape(2, 3), -1, 1)
    powers = 0.5 * (powers + 1.0) * float(params.p_max)
    from envs.ic_power import difference_rewards, weighted_sum_rate
    gains = np.asarray(state.env_state.gains)
    expected = np.stack([np.asarray(difference_rewards(jnp.asarray(powers[n]), jnp.asarray(gains[n]), 1.0))
                         for n in range(2)]).reshape(6)
    np.testing.assert_allclose(np.asarray(step.reward), expected, rtol=1e-4, atol=1e-5)
    team = [float(weighted_sum_rate(jnp.asarray(powers[n]), jnp.asarray(gains[n]), 1.0)) for n in range(2)]
    np.testing.assert_allclose(np.asarray(stats["team_reward"]), team, rtol=1e-5)


@pytest.mark.heavy
@pytest.mark.parametrize("algo", ["ippo", pytest.param("mappo", marks=pytest.mark.slow)])
def test_ppo_lanes_learn_ic_power_beyond_full_power(algo):
    """K = 5 Rayleigh links: IPPO / MAPPO must beat full power (0.66 of WMMSE) and random powers (0.55) clearly."""
    env, params = envs.make("ic-power")
    config = agents.default_config(algo, actor="gaussian", num_envs=16, num_steps=16, total_timesteps=16 * 16 * 120,
                                   num_minibatches=4, update_epochs=4)
    hp = agents.default_hparams(algo, gamma=0.0, gae_lambda=0.0, lr=1e-3)
    trainer = make_trainer(config, env, params)
    state, _ = jax.jit(trainer.train)(jax.random.PRNGKey(0), hp)
    key = jax.random.PRNGKey(9)
    learned = jax.jit(lambda s: trainer.evaluate(s, key, hp, 16, num_envs=64))(state)
    full = evaluate_reference(env, params, "max_power", key, 16, 64)
    print(algo, float(learned["reference_fraction"]), float(full["reference_fraction"]))
    assert float(learned["reward_mean"]) > 1.15 * float(full["reward_mean"])


def test_bad_input_is_a_clear_error():
    env, params = envs.make("ic-power", num_links=3)
    with pytest.raises(ValueError, match="use algo='ippo' or 'mappo'"):
        make_trainer(small("ppo"), env, params)
    single, single_params = envs.make("msr-3")
    with pytest.raises(ValueError, match="needs a multi-agent environment"):
        make_trainer(small("ippo"), single, single_params)
    with pytest.raises(ValueError, match="Discrete"):
        make_trainer(small("ippo", actor="categorical"), env, params)
    with pytest.raises(ValueError, match="diffusion"):
        small("mappo", actor="diffusion")
    from jaxdiff_rl.app.experiment import TrainSpec, build
    with pytest.raises(ValueError, match="multi-agent environment"):
        build(TrainSpec(algo="mappo", env="msr-3"))
    trainer, _, _, _ = build(TrainSpec(algo="mappo", env="mc-access", static={"num_envs": 2, "num_steps": 4,
                                                                              "total_timesteps": 8,
                                                                              "num_minibatches": 1}))
    assert trainer.config.actor == "categorical"
