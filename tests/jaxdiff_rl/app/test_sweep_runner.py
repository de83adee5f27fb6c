"""Sweeps sharded over (forced) CPU devices, and the runner's kill -9 / resume bit-exactness."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxdiff_rl import agents
from jaxdiff_rl.train.sweep import grid, random_search, with_seeds

ROOT = Path(__file__).resolve().parents[3]


def test_grid_and_seeds_layout():
    hp = grid(agents.default_hparams("sac"), lr_actor=[1e-4, 3e-4], gamma=[0.9, 0.95, 0.99])
    assert np.asarray(hp.lr_actor).shape == (6,) and np.asarray(hp.tau).shape == (6,)
    np.testing.assert_allclose(np.asarray(hp.gamma), [0.9, 0.95, 0.99] * 2, rtol=1e-6)
    np.testing.assert_allclose(np.asarray(hp.lr_actor), [1e-4] * 3 + [3e-4] * 3, rtol=1e-6)
    keys, hp2 = with_seeds(hp, num_seeds=3, seed=0)
    assert keys.shape[0] == 18 and np.asarray(hp2.gamma).shape == (18,)
    np.testing.assert_array_equal(np.asarray(hp2.gamma)[6:12], np.asarray(hp.gamma))
    assert np.array_equal(np.asarray(keys[0]), np.asarray(keys[5])) and not np.array_equal(np.asarray(keys[0]), np.asarray(keys[6]))
    rs = random_search(jax.random.PRNGKey(0), agents.default_hparams("sac"), 200, lr_actor=(1e-5, 1e-3, "log"))
    lr = np.asarray(rs.lr_actor)
    assert lr.min() >= 1e-5 and lr.max() <= 1e-3 and abs(np.mean(np.log10(lr)) + 4.0) < 0.15
    with pytest.raises(ValueError, match="bogus"):
        grid(agents.default_hparams("sac"), bogus=[1.0])


SWEEP_SCRIPT = textwrap.dedent("""
    import dataclasses, json, jax, numpy as np
    import envs
    from jaxdiff_rl import agents
    from jaxdiff_rl.train.sweep import grid, run_sweep, with_seeds
    from jaxdiff_rl.train import make_train
    env, params = envs.make("msr-3")
    cfg = agents.default_config("ddpg", num_envs=4, steps_per_iter=1, updates_per_iter=2, num_iterations=5,
                                batch_size=8, buffer_size=256)
    cfg = cfg.replace(actor=dataclasses.replace(cfg.actor, hidden_dims=(8,)), critic_hidden_dims=(8,))
    train = make_train(cfg, env, params)
    hp = grid(agents.default_hparams("ddpg"), lr_critic=[1e-3, 3e-3, 1e-2])
    keys, hp = with_seeds(hp, 2)                      # 6 runs over 4 devices: padded to 8
    # the same sweep over environment parameters: power budgets
    env_p = jax.tree_util.tree_map(lambda x: np.repeat(np.asarray(x)[None], 6, 0), params)
    env_p = env_p.replace(total_power=np.array([5.0, 10.0, 20.0] * 2, np.float32))
    state, m = run_sweep(train, keys, hp, env_p)
    ref = jax.jit(jax.vmap(train))(keys, hp, env_p)[1]
    print(json.dumps({"devices": jax.device_count(),
                      "shards": len(m["critic_loss"].sharding.device_set),
                      "shape": list(m["critic_loss"].shape),
                      "max_diff": float(np.nanmax(np.abs(np.asarray(m["critic_loss"]) - np.asarray(ref["critic_loss"])))),
                      "same_nans": bool(np.array_equal(np.isnan(m["critic_loss"]), np.isnan(ref["critic_loss"]))),
                      "reward_by_budget": np.asarray(m["reward_mean"]).mean(1).tolist()}))
""")


@pytest.mark.heavy
def test_sweep_shards_over_four_cpu_devices_and_matches_vmap(tmp_path):
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    out = subprocess.run([sys.executable, "-c", SWEEP_SCRIPT], env=env, cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["devices"] == 4 and res["shards"] == 4 and res["shape"] == [6, 5]
    assert res["max_diff"] < 1e-4 and res["same_nans"]  # NaN: iterations before updates start
    r = res["reward_by_budget"]  # sum rate grows with the power budget: 5 W < 10 W < 20 W
    assert r[0] < r[1] < r[2] and r[3] < r[4] < r[5]


TRAIN_ARGS = ["-m", "jaxdiff_rl.app.cli", "train", "--algo", "ddpg", "--env", "msr-3", "--seeds", "2", "--hidden", "16",
              "--num-envs", "8", "--steps-per-iter", "4", "--updates-per-iter", "32", "--batch-size", "64",
              "--buffer-size", "4096", "--num-iterations", "120", "--chunk", "6", "--no-progress"]


def _final_params(run_dir: Path):
    from jaxdiff_rl.app.experiment import build, load_spec, restore_state

    spec, _ = load_spec(run_dir)
    trainer, keys, hp, _ = build(spec)
    return restore_state(run_dir, trainer, keys, hp)


@pytest.mark.slow
def test_kill_minus_9_then_resume_is_bit_identical(tmp_path):
    """Slow (about 50 s: three processes). The default run covers kill -9 and a bit-identical resume through the CLI
    in tests/jaxdiff_rl/train/test_distributed.py (two processes, then resharded onto one)."""
    # the three processes compile the same program: a shared persistent cache compiles it once
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    full, killed = tmp_path / "full", tmp_path / "killed"
    proc = subprocess.Popen([sys.executable, *TRAIN_ARGS, "--out", str(killed)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ckpt = killed / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        steps = [int(p.name) for p in ckpt.glob("*") if p.name.isdigit()] if ckpt.exists() else []
        if steps and max(steps) >= 12:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run finished (or failed) before it could be killed: " + proc.stderr.read().decode()[-2000:]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    steps = sorted(int(p.name) for p in ckpt.glob("*") if p.name.isdigit())
    assert 0 < steps[-1] < 120, steps
    subprocess.run([sys.executable, *TRAIN_ARGS, "--out", str(killed), "--resume"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, *TRAIN_ARGS, "--out", str(full)], cwd=ROOT, env=env, check=True, capture_output=True)
    a, b = _final_params(full), _final_params(killed)
    leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
    assert len(leaves_a) == len(leaves_b)
    for x, y in zip(leaves_a, leaves_b):
        assert np.array_equal(np.asarray(x), np.asarray(y))
    assert int(np.asarray(b.iteration)[0]) == 120
    # the metrics file has each iteration exactly once per run
    rows = [json.loads(l) for l in (killed / "metrics.jsonl").read_text().splitlines()]
    assert sorted((r["iteration"], r["run"]) for r in rows) == [(i, r) for i in range(120) for r in range(2)]
