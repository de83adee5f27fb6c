"""Rollout accounting and the `jaxdiff-rl envs` job."""

import json

import jax
import numpy as np
import pytest

import envs
from envs.msr import sum_rate, water_filling
from jaxdiff_rl.app.cli import main
from jaxdiff_rl.train.rollout import rollout


def test_rollout_episode_accounting():
    env, params = envs.make("msr-3", max_steps_in_episode=3)
    policy = env.policies()["water-filling"]
    stats = rollout(env, params, policy, jax.random.key(0), 16, 9)
    assert int(stats.steps) == 16 * 9 and int(stats.episodes) == 16 * 3
    assert float(stats.return_sum) == pytest.approx(float(stats.reward_sum), rel=1e-6)
    # optimal per-instance sum rate, estimated independently from fresh NumPy draws of the same law
    g = np.random.default_rng(0).uniform(0.5, 2.5, (100_000, 3))
    mean_opt = float(np.mean(np.asarray(sum_rate(water_filling(g, 1.0, 10.0), g))))
    assert stats.mean_return == pytest.approx(3 * mean_opt, rel=0.03)


def test_rollout_unfinished_episodes_not_counted():
    env, params = envs.make("aigc", horizon=2e4)  # ~21 steps per episode
    stats = rollout(env, params, env.policies()["crash-avoid"], jax.random.key(1), 8, 30)
    assert 0 < int(stats.episodes) <= 16
    assert float(stats.return_sum) != pytest.approx(float(stats.reward_sum))


def test_envs_job_writes_results(tmp_path, capsys):
    assert main(["envs", "--env", "msr-3", "aigc", "--num-envs", "16", "--min-steps", "4", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "water-filling" in out and "prophet" in out
    rows = json.loads((tmp_path / "summary.json").read_text())["rows"]
    by = {(r["env"], r["policy"]): r for r in rows}
    assert by[("msr-3", "water-filling")]["fraction_of_reference"] == pytest.approx(1.0)
    assert by[("msr-3", "random")]["fraction_of_reference"] < 1.0
    assert by[("aigc", "prophet")]["episodes"] >= 1  # rollouts contain whole AIGC episodes
    assert (tmp_path / "summary.png").stat().st_size > 10_000


def test_cli_rejects_unknown_env(tmp_path):
    with pytest.raises(SystemExit, match="msr-3"):
        main(["envs", "--env", "nope", "--out", str(tmp_path)])
