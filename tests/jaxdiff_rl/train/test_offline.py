"""The offline loop: same key, same bits; chunked resume through the runner is bit-identical; sweeps vmap over
OfflineHparams; datasets that do not fit the environment are rejected before compiling; the CLI collects a
dataset and trains Diffusion-QL on it."""

import functools
import json
import subprocess
import sys
from pathlib import Path

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.offline_data import collect
from jaxdiff_rl import agents
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.app.runner import run
from jaxdiff_rl.train import make_trainer
from jaxdiff_rl.train.sweep import grid, with_seeds

ROOT = Path(__file__).resolve().parents[3]


@functools.lru_cache(maxsize=None)
def _msr3():
    env, params = envs.make("msr-3")
    data = collect(jax.random.key(0), env, params, {"noisy-optimum": 0.5, "random": 0.5}, 64, 8, noise_std=0.05,
                   env_name="msr-3", seed=0)
    return env, params, data


def _tiny(algo, **kw):
    actor = {"diffusion_ql": ActorConfig(kind="diffusion", hidden_dims=(16, 16), diffusion_steps=3, output_tanh=False,
                                         clip_gradient="zero"),
             "td3_bc": ActorConfig(kind="deterministic", hidden_dims=(16, 16))}[algo]
    settings = dict(actor=actor, critic_hidden_dims=(16, 16), batch_size=32, updates_per_iter=10, num_iterations=4,
                    num_envs=8, eval_steps=1, **({"action_candidates": 4} if algo == "diffusion_ql" else {}))
    return agents.default_config(algo, **{**settings, **kw})


def test_same_key_same_bits_and_chunked_resume_is_bit_identical(tmp_path):
    env, params, data = _msr3()
    trainer = make_trainer(_tiny("diffusion_ql"), env, params, data)
    hp = agents.default_hparams("diffusion_ql")
    keys, hps = with_seeds(hp, 2, seed=0)
    full = run(trainer, hps, keys, out_dir=tmp_path / "full", chunk_iterations=2, progress=False)
    again = run(trainer, hps, keys, chunk_iterations=4, progress=False)
    for a, b in zip(jax.tree_util.tree_leaves(full.state), jax.tree_util.tree_leaves(again.state)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    # an interrupted run: the first chunk only, then resume to the end from its checkpoint
    half = make_trainer(_tiny("diffusion_ql", num_iterations=2), env, params, data)
    run(half, hps, keys, out_dir=tmp_path / "cut", chunk_iterations=2, progress=False)
    resumed = run(trainer, hps, keys, out_dir=tmp_path / "cut", chunk_iterations=2, resume=True, progress=False)
    for a, b in zip(jax.tree_util.tree_leaves(full.state), jax.tree_util.tree_leaves(resumed.state)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    rows = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert sorted((r["iteration"], r["run"]) for r in rows) == [(i, r) for i in range(4) for r in range(2)]
    assert int(np.asarray(full.state.agent.updates)[0]) == 40
    assert np.all(np.isfinite(full.metrics["optimum_fraction"])) and full.metrics["episodes"][0, 0] == 8


def test_sweep_vmaps_over_offline_hparams_and_each_run_matches_its_single_run():
    env, params, data = _msr3()
    trainer = make_trainer(_tiny("td3_bc"), env, params, data)
    hp = grid(agents.default_hparams("td3_bc"), td3_alpha=[0.0, 2.5])
    keys = jnp.stack([jax.random.key_data(jax.random.key(3))] * 2)
    state, metrics = jax.jit(jax.vmap(trainer.train))(keys, hp)
    for i, alpha in enumerate((0.0, 2.5)):
        single, m = jax.jit(trainer.train)(keys[i], agents.default_hparams("td3_bc", td3_alpha=alpha))
        np.testing.assert_allclose(metrics["actor_loss"][i], m["actor_loss"], rtol=1e-5, atol=1e-6)
    assert not np.allclose(metrics["actor_loss"][0], metrics["actor_loss"][1])


def test_datasets_that_do_not_fit_are_rejected_before_compiling():
    env, params, data = _msr3()
    other_env, other_params = envs.make("msr-80")
    with pytest.raises(ValueError, match="observations have 4 features"):
        make_trainer(_tiny("td3_bc"), other_env, other_params, data)
    cartpole, cartpole_params = gymnax.make("CartPole-v1")  # 4 observations like msr-3, but discrete actions
    with pytest.raises(ValueError, match="actions are continuous"):
        make_trainer(_tiny("td3_bc"), cartpole, cartpole_params, data)
    with pytest.raises(ValueError, match="batch_size"):
        make_trainer(_tiny("td3_bc", batch_size=1024), env, params, data)
    with pytest.raises(ValueError, match="dataset"):
        make_trainer(_tiny("td3_bc"), env, params, None)
    with pytest.raises(TypeError):
        make_trainer(_tiny("td3_bc"), env, params, data.arrays())


def test_cli_collects_a_dataset_and_trains_diffusion_ql_on_it(tmp_path):
    cli = [sys.executable, "-m", "jaxdiff_rl.app.cli"]
    out = subprocess.run([*cli, "dataset", "collect", "--env", "msr-3", "--policy", "noisy-optimum=0.5,random=0.5",
                          "--num-envs", "32", "--num-steps", "4", "--out", str(tmp_path / "d.npz")],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "128 transitions" in out.stdout
    out = subprocess.run([*cli, "train", "--algo", "diffusion_ql", "--dataset", str(tmp_path / "d.npz"),
                          "--hidden", "16,16", "--diffusion-steps", "3", "--num-iterations", "2",
                          "--updates-per-iter", "5", "--batch-size", "32", "--num-envs", "4", "--eta", "0.5,1",
                          "--edp", "true", "--out", str(tmp_path / "run"), "--no-progress"],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "diffusion_ql on msr-3: 2 runs" in out.stdout
    info = json.loads((tmp_path / "run" / "run.json").read_text())
    assert info["spec"]["dataset"].endswith("d.npz") and "edp=True" in info["config"]
    bad = subprocess.run([*cli, "train", "--algo", "iql", "--num-iterations", "2"], cwd=ROOT, capture_output=True,
                         text=True, timeout=300)
    assert bad.returncode == 2 and "--dataset" in bad.stderr


def test_normaliser_maps_the_data_range_to_the_unit_box_and_back():
    from jaxdiff_rl.train.off_policy import _to_env_action, action_spec
    from jaxdiff_rl.train.offline import device_dataset, make_normaliser

    env, params, data = _msr3()
    config = _tiny("td3_bc")
    norm = make_normaliser(config, data, action_spec(env, params))
    device = device_dataset(data, norm)
    a = np.asarray(device["action"])
    np.testing.assert_allclose(a.min(0), -1.0, atol=1e-6)
    np.testing.assert_allclose(a.max(0), 1.0, atol=1e-6)
    np.testing.assert_allclose(np.asarray(_to_env_action(norm.action_spec, device["action"])), data.actions, atol=1e-5)
    obs = np.asarray(device["obs"])
    np.testing.assert_allclose(obs[:, :3].mean(0), 0.0, atol=0.1)  # gains: standardised with obs and next obs
    np.testing.assert_allclose(obs[:, 3], 0.0, atol=1e-6)  # the constant budget is only centred
    box = make_normaliser(_tiny("td3_bc", action_range="box", normalize_obs=False), data, action_spec(env, params))
    np.testing.assert_allclose(np.asarray(device_dataset(data, box)["action"]), data.actions, atol=1e-6)
