"""A tiny version of the main job end to end: sweep, evaluation points, heuristics, speed, table, plot, JSON."""

import json

import jax
import numpy as np
import pytest

from jaxdiff_rl.app.demo import ENV, HEURISTICS, run_demo
from jaxdiff_rl.app.experiment import TrainSpec, build

TINY = TrainSpec(algo="dm_td3", env=ENV, num_seeds=2, hidden=(8,), diffusion_steps=2,
                 static=dict(num_envs=8, steps_per_iter=1, updates_per_iter=2, num_iterations=6, batch_size=16,
                             buffer_size=256, action_candidates=2),
                 hparams=dict(lr_actor=[1e-3, 3e-3], lr_critic=3e-3))


@pytest.mark.heavy
def test_tiny_demo_end_to_end(tmp_path, capsys):
    res = run_demo(tmp_path, progress=False, chunk=3, eval_envs=32, spec=TINY, heuristic_envs=256)
    printed = capsys.readouterr().out
    for name in HEURISTICS:
        assert name in printed
    assert "one after another" in printed and (tmp_path / "demo.png").stat().st_size > 10_000
    saved = json.loads((tmp_path / "demo.json").read_text())
    assert saved["eval_iterations"] == [0, 3, 6] and saved["runs"] == 4
    frac = np.asarray(saved["eval_optimum_fraction"])  # [runs, points], runs seed-major: run r = setting r % 2
    for j, row in enumerate(saved["final"]):
        np.testing.assert_allclose(row["per_seed"], frac[j::2, -1])
        assert row["mean"] == pytest.approx(frac[j::2, -1].mean())
    # iteration 0 is the untrained policy of every run, on the common instances of fold_in(PRNGKey(1), 0)
    trainer, keys, hp, _ = build(TINY)
    state = jax.vmap(trainer.init)(keys, hp)
    key = jax.random.fold_in(jax.random.PRNGKey(1), 0)
    untrained = jax.vmap(lambda s, h: trainer.evaluate(s, key, h, 1, num_envs=32))(state, hp)["optimum_fraction"]
    np.testing.assert_allclose(frac[:, 0], np.asarray(untrained), rtol=1e-5)
    assert 0.5 < frac.min() and frac.max() <= 1.0 + 1e-6
    b = saved["baselines"]
    assert b["water-filling"] == pytest.approx(1.0, abs=1e-5) and b["random"] < b["gain-proportional"] < 1.0
    s = saved["speed"]
    assert s["runs"] == 4 and s["speedup"] == pytest.approx(s["sequential_s"] / s["vmapped_s"])
