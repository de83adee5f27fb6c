"""The Python API as a user first writes it: unstacked hparams in with_seeds, a single-key run with a progress bar
and greedy evaluation points, Trainer.evaluate with its own number of environments; wrong types get clear errors."""

import dataclasses

import jax
import numpy as np
import pytest

import envs
from jaxdiff_rl import agents
from jaxdiff_rl.app.runner import run
from jaxdiff_rl.train.sweep import grid, stack, with_seeds
from jaxdiff_rl.train import make_trainer


def test_with_seeds_takes_unstacked_hparams_and_env_params():
    base = agents.default_hparams("sac")
    keys, hp = with_seeds(base, num_seeds=2)
    keys_ref, hp_ref = with_seeds(grid(base), num_seeds=2)
    np.testing.assert_array_equal(np.asarray(keys), np.asarray(keys_ref))
    assert np.asarray(hp.lr_actor).shape == (2,)
    jax.tree_util.tree_map(np.testing.assert_array_equal, hp, hp_ref)
    _, params = envs.make("msr-3")
    hp_grid = grid(base, lr_actor=[1e-4, 3e-4, 1e-3])
    keys, hp, env_p = with_seeds(hp_grid, 2, env_params=params)  # one environment for every setting
    assert keys.shape[0] == 6 and np.asarray(env_p.total_power).shape == (6,)
    np.testing.assert_allclose(np.asarray(env_p.total_power), 10.0)
    budgets = grid(params, total_power=[5.0, 10.0, 20.0])  # env params stacked like the hparams
    _, _, env_p = with_seeds(hp_grid, 2, env_params=budgets)
    np.testing.assert_allclose(np.asarray(env_p.total_power), [5.0, 10.0, 20.0] * 2)


def test_sweep_helpers_reject_wrong_types_clearly():
    with pytest.raises(TypeError, match="hparams"):
        with_seeds(3e-4, num_seeds=2)
    with pytest.raises(ValueError, match="num_seeds"):
        with_seeds(agents.default_hparams("sac"), num_seeds=0)
    with pytest.raises(ValueError, match="already stacked"):
        grid(grid(agents.default_hparams("sac"), lr_actor=[1e-4, 1e-3]), gamma=[0.9])
    with pytest.raises(TypeError, match="base"):
        grid({"lr_actor": 1e-3}, lr_actor=[1e-4])
    _, params = envs.make("msr-3")
    with pytest.raises(ValueError, match="stacked over 3 settings but hparams over 2"):
        with_seeds(grid(agents.default_hparams("sac"), lr_actor=[1e-4, 1e-3]), 1,
                   env_params=grid(params, total_power=[5.0, 10.0, 20.0]))


def _tiny_trainer(num_iterations=4):
    env, params = envs.make("msr-3")
    cfg = agents.default_config("ddpg", num_envs=4, steps_per_iter=1, updates_per_iter=2, num_iterations=num_iterations,
                                batch_size=8, buffer_size=128)
    cfg = cfg.replace(actor=dataclasses.replace(cfg.actor, hidden_dims=(8,)), critic_hidden_dims=(8,))
    return make_trainer(cfg, env, params)


def test_evaluate_takes_its_number_of_environments():
    trainer = _tiny_trainer()
    hp = agents.default_hparams("ddpg")
    state = trainer.init(jax.random.key(0), hp)
    for n in (1, 5):
        out = trainer.evaluate(state, jax.random.key(1), hp, 3, num_envs=n)
        assert float(out["episodes"]) == 3 * n  # msr-3: one instance per episode
    with pytest.raises(ValueError, match="num_envs"):
        trainer.evaluate(state, jax.random.key(1), hp, 3, num_envs=0)


def test_single_key_run_with_progress_and_evaluations(capsys):
    trainer = _tiny_trainer()
    hp = agents.default_hparams("ddpg")
    key = jax.random.key(0)
    res = run(trainer, hp, key, chunk_iterations=2, progress=True, eval_steps=1, eval_envs=4)
    assert "ddpg" in capsys.readouterr().err  # the tqdm bar
    assert res.metrics["reward_mean"].shape == (4,) and np.asarray(res.state.iteration).shape == ()
    assert list(res.evaluations["iteration"]) == [0, 2, 4] and res.evaluations["optimum_fraction"].shape == (3,)
    assert len(res.chunk_seconds) == 2
    batched = run(trainer, stack(hp), jax.random.key_data(key)[None], chunk_iterations=2, progress=False,
                  eval_steps=1, eval_envs=4)
    for name, values in res.metrics.items():
        np.testing.assert_array_equal(values, batched.metrics[name][0], err_msg=name)
    np.testing.assert_array_equal(res.evaluations["optimum_fraction"], batched.evaluations["optimum_fraction"][0])
    # the point at iteration 0 is the untrained policy, on the instances of key fold_in(PRNGKey(1), 0)
    untrained = trainer.evaluate(trainer.init(key, hp), jax.random.fold_in(jax.random.PRNGKey(1), 0), hp, 1, num_envs=4)
    assert float(untrained["optimum_fraction"]) == pytest.approx(float(res.evaluations["optimum_fraction"][0]), rel=1e-5)
    with pytest.raises(ValueError, match="eval_envs"):
        run(trainer, hp, key, progress=False, eval_steps=1, eval_envs=0)
