"""The D2RL reproduction's analysis (experiments/d2rl): the moving average, the convergence rule and the
first-reach epoch against plain Python loops over their definitions, the README tables against hand-made
summaries, and the command line's checks. No training runs here."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments.d2rl import common, policy_eval, reproduce, tables


def _loop_moving_average(x: np.ndarray, window: int) -> np.ndarray:
    out = np.empty(len(x))
    for t in range(len(x)):
        chunk = x[max(0, t + 1 - window): t + 1]
        chunk = chunk[np.isfinite(chunk)]
        out[t] = chunk.mean() if len(chunk) else np.nan
    return out


def test_moving_average_matches_a_loop_with_missing_values():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 200))
    x[0, 5:9] = np.nan  # epochs before learning starts are NaN in the metrics
    x[2, :3] = np.nan
    got = common.moving_average(x, 25)
    for row in range(3):
        np.testing.assert_allclose(got[row], _loop_moving_average(x[row], 25), rtol=1e-12, equal_nan=True)


def test_convergence_epoch_and_plateau_follow_the_definition():
    rng = np.random.default_rng(1)
    epochs, window, tol = 2000, 50, 0.02
    curve = 0.5 * (1 - np.exp(-np.arange(epochs) / 300)) + 0.2 + 0.01 * rng.normal(size=epochs)
    got = common.convergence(curve, window, tol)
    ma = _loop_moving_average(curve, window)
    plateau = ma[-epochs // 10:].mean()
    last_outside = max(t for t in range(epochs) if abs(ma[t] - plateau) > tol * plateau)
    assert got["plateau"] == pytest.approx(plateau, rel=1e-12)
    assert got["epoch"] == last_outside + 1
    # the curve rises over ~300-epoch time constant: 2% of 0.7 is reached around 300 * ln(0.5 / 0.014) = 1070
    assert 900 < got["epoch"] < 1300


def test_flat_curve_converges_at_once_and_first_reach_needs_a_full_window():
    assert common.convergence(np.full(500, 0.4), 20)["epoch"] == 0
    curve = np.concatenate([np.zeros(100), np.ones(100)])
    ma = _loop_moving_average(curve, 10)
    expected = next(t for t in range(10, 200) if ma[t] >= 0.5)
    assert common.first_reach(curve, 10, 0.5) == expected
    assert common.first_reach(curve, 10, 1.5) is None
    assert common.first_reach(np.ones(50), 10, 0.5) == 10  # not before one full window


def _row(plateau: float, epoch: int, ms: float, **extra) -> dict:
    return {"plateau": plateau, "epoch": epoch, "seconds_per_epoch": ms / 1e3, "per_seed_mean": plateau,
            "per_seed_std": 0.01, "total_seconds_to_convergence": epoch * ms / 1e3, "epoch_to_95pct_best": None,
            **extra}


def test_tables_print_each_variant_once_with_its_numbers():
    summary = {"designed": _row(0.45, 4000, 4.0), "raw": _row(0.40, 4999, 4.0, per_seed=[0.5, 0.33, 0.37]),
               "baselines": {"random": 0.27}}
    text = tables.convergence_table(summary)
    lines = text.splitlines()
    assert len(lines) == 4  # header, rule, one row per variant; the baselines are not a variant
    assert "| Designed R. | 0.450 | 0.450 ± 0.010 | - | 4000 | never | 4.00 | 16.0 |" in lines
    assert "| Raw R. | 0.400 | 0.400 ± 0.010 | 0.330 | 4999 | never | 4.00 | 20.0 |" in lines
    state = {"designed": _row(0.45, 4000, 4.0),
             "designed_sexp": _row(0.36, 4900, 4.4, observed_plateau=0.39, observed_per_seed_mean=0.39,
                                   observed_per_seed_std=0.04, substituted_fraction=0.3)}
    rows = tables.state_table(state).splitlines()
    assert len(rows) == 3
    assert "0.450 -> 0.360" in rows[2] and "0.390 (0.390 ± 0.040; 30%)" in rows[2] and "(+10%)" in rows[2]


def test_state_stats_against_hand_computed_values():
    """3 seeds x 20 epochs, so the tail is the last 2 epochs. Seed 2 had every step substituted in epoch 18 (no
    true-state C: NaN), so its tail value is epoch 19's alone; the gap is defined only where steps were substituted."""
    objective = np.full((3, 20), 0.4)
    observed = np.array([[0.5] * 20, [0.3] * 20, [0.2] * 18 + [np.nan, 0.6]])
    substituted = np.concatenate([np.zeros((3, 18)), np.full((3, 2), 0.25)], axis=1)
    gap = np.where(substituted > 0, 0.1, np.nan)
    gap[0, -1] = 0.4
    run = {"metrics": {"objective_mean": objective, "objective_mean_observed": observed,
                       "substituted_fraction": substituted, "substituted_state_gap": gap}}
    stats = common.state_stats(run, window=1)
    per_seed = [0.5, 0.3, 0.6]
    assert stats["observed_per_seed_mean"] == pytest.approx(np.mean(per_seed))
    assert stats["observed_per_seed_std"] == pytest.approx(np.std(per_seed, ddof=1))
    assert stats["substituted_fraction"] == pytest.approx(0.25)
    assert stats["state_gap"] == pytest.approx((0.1 * 5 + 0.4) / 6)
    # a run without substitution, cached before the gap metric existed: no gap, C observed everywhere
    old = {"metrics": {"objective_mean": objective, "substituted_fraction": np.zeros((3, 20))}}
    stats = common.state_stats(old, window=1)
    assert stats["state_gap"] is None and stats["observed_plateau"] == pytest.approx(0.4)


def test_readings_share_the_figure_8_runs_and_table():
    from experiments.d2rl import state_readings

    choice = {"M": 0.3, "eta": 0.001}
    assert state_readings.run_name("designed", 6, choice) == "designed_sexp_M0.3_eta0.001"  # reproduce.py's name
    assert state_readings.run_name("designed", 1, choice) == "designed_sexp_p1_M0.3_eta0.001"
    summary = {"designs": {"designed": {
        "none": _row(0.45, 4000, 4.0, epoch_to_95pct_of_none=3000),
        "paper_p1": _row(0.47, 3000, 4.2, epoch_to_95pct_of_none=2000, observed_plateau=0.48, substituted_fraction=0.9,
                         state_gap=0.21, setting="paper", forward_steps=1, M=0.9, eta=0.001),
        "paper_p6": _row(0.36, 4900, 4.4, epoch_to_95pct_of_none=None, observed_plateau=0.39,
                         substituted_fraction=0.9, state_gap=None, setting="paper", forward_steps=6, M=0.9, eta=0.001),
    }}}
    rows = tables.readings_table(summary).splitlines()
    assert len(rows) == 5
    assert rows[2] == "| Designed R. | none | - | 0.450 | 0.450 ± 0.010 | - | - | - | 3000 |"
    assert rows[3] == "| Designed R. | p = 1 | (0.9, 0.001) paper | 0.470 | 0.470 ± 0.010 | 0.480 | 90% | 0.21 | 2000 |"
    assert rows[4].startswith("| Designed R. | p = 6 (all P) |") and rows[4].endswith("| - | never |")


def test_sexp_from_a_scale_without_a_sweep_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(reproduce, "RESULTS", tmp_path)
    with pytest.raises(SystemExit):
        reproduce.main(["--figs", "8", "--scale", "smoke", "--sexp-from", "quick"])
    assert "--sexp-from" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        reproduce.main(["--seeds", "0"])


def test_sexp_from_reads_the_other_scales_choice(tmp_path, monkeypatch):
    sweep = {"designed": {"best": {"M": 0.3, "eta": 0.001, "plateau": 0.36}}}
    (tmp_path / "quick").mkdir()
    (tmp_path / "quick" / "fig7.json").write_text(json.dumps(sweep))
    seen = {}

    def fake_fig8_9(scale, seeds, out, force, best, designs):
        seen.update(scale=scale.name, best=best, designs=designs)
        return {}

    monkeypatch.setattr(reproduce, "RESULTS", tmp_path)
    monkeypatch.setattr(reproduce, "fig8_9", fake_fig8_9)
    reproduce.main(["--figs", "8", "--scale", "long", "--sexp-from", "quick", "--designs", "designed"])
    assert seen == {"scale": "long", "best": {"designed": sweep["designed"]["best"]}, "designs": ("designed",)}
    reproduce.main(["--figs", "8", "--scale", "long"])  # no sweep of its own: the paper's values (best=None)
    assert seen["best"] is None


@pytest.mark.parametrize("script", ["reproduce", "actor_saturation", "tables", "state_readings", "policy_eval"])
def test_scripts_run_as_documented_from_any_directory(script, tmp_path):
    """The README runs them as `python experiments/d2rl/<script>.py`: the `experiments` package must resolve
    without PYTHONPATH or the repository as the working directory."""
    path = Path(__file__).resolve().parents[2] / "experiments" / "d2rl" / f"{script}.py"
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(path), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "usage:" in done.stdout


def test_policy_eval_welch_comparison_and_table_against_hand_computed_values():
    mlp = [0.50, 0.52, 0.55, 0.49]
    gdm = [0.56, 0.60, 0.58, 0.61, 0.57]
    readouts = {
        "MLP: greedy": {"actor": "mlp", "readout": "greedy", "mean": float(np.mean(mlp)), "std": float(np.std(mlp, ddof=1)),
                        "per_seed": mlp},
        "GDM: greedy": {"actor": "gdm", "readout": "greedy", "mean": 0.5, "std": 0.0, "per_seed": [0.49, 0.51]},
        "GDM: best of 4 by Q": {"actor": "gdm", "readout": "best of 4 by Q", "mean": float(np.mean(gdm)),
                                "std": float(np.std(gdm, ddof=1)), "per_seed": gdm},
        "GDM: best of 4 by C (oracle)": {"actor": "gdm", "readout": "best of 4 by C (oracle)", "mean": 0.7,
                                         "std": 0.0, "per_seed": [0.7, 0.7]},
    }
    comparisons = policy_eval._comparisons(readouts)
    # same read-out where the MLP actor has it, its greedy policy otherwise; the oracle is not a policy
    assert list(comparisons) == ["GDM: greedy", "GDM: best of 4 by Q"]
    assert comparisons["GDM: greedy"]["reference"] == comparisons["GDM: best of 4 by Q"]["reference"] == "MLP greedy"
    c = comparisons["GDM: best of 4 by Q"]
    va, vb = np.var(gdm, ddof=1) / len(gdm), np.var(mlp, ddof=1) / len(mlp)
    t = (np.mean(gdm) - np.mean(mlp)) / np.sqrt(va + vb)
    assert c["welch_t"] == pytest.approx(t, rel=1e-9)
    assert c["difference"] == pytest.approx(np.mean(gdm) - np.mean(mlp))
    assert 0.003 < c["p_value"] < 0.01  # t = 4.27 on 5.6 degrees of freedom: p = 0.006
    lines = tables.policy_table({"readouts": readouts, "comparisons": comparisons}).splitlines()
    assert len(lines) == 6
    assert lines[2] == "| MLP | greedy | 0.515 ± 0.026 | 0.490 | - |"
    assert lines[3].startswith("| GDM | greedy | 0.500 ± 0.000 | 0.490 | -0.015 (") and lines[3].endswith(") |")
    assert lines[4] == "| GDM | best of 4 by Q | 0.584 ± 0.021 | 0.560 | +0.069 (4.3, 0.006) vs MLP greedy |"


def test_policy_eval_training_summary_follows_the_common_rule():
    epochs, window = 400, 20
    fast = np.minimum(np.arange(epochs) / 100, 1.0) * 0.5  # reaches 0.5 at epoch 100
    slow = np.minimum(np.arange(epochs) / 300, 1.0) * 0.4
    out = policy_eval.training_summary({"fast": fast, "slow": slow}, window, points=100)
    for name, curve in (("fast", fast), ("slow", slow)):
        assert out[name]["plateau"] == pytest.approx(common.convergence(curve, window)["plateau"])
        assert out[name]["epoch"] == common.convergence(curve, window)["epoch"]
        assert out[name]["ma_epochs"] == list(range(0, epochs, 4)) and len(out[name]["ma"]) == 100
    # 95% of the best plateau (0.5): the trailing MA of `fast` first reaches 0.475 once the last `window` epochs
    # average that much, i.e. at epoch 104 or so; `slow` tops out at 0.4 and never does
    ma = _loop_moving_average(fast, window)
    assert out["fast"]["epoch_to_95pct_best"] == int(np.flatnonzero(ma[window:] >= 0.95 * 0.5)[0]) + window
    assert out["slow"]["epoch_to_95pct_best"] is None
    table = tables.policy_table({"readouts": {}, "comparisons": {}, "training": out}).splitlines()
    assert table[-2].startswith("| fast | 0.500 | ") and table[-1].endswith("| never |")


def test_cached_agents_round_trip_and_a_stale_cache_is_refused(tmp_path):
    """run_variant(keep_agent=True) stores the agents as agent_<i> leaves; a cache whose leaves are missing or
    of other shapes (other seeds, other widths) must be retrained, not silently unflattened."""
    agent = {"actor": {"w": np.arange(24.0).reshape(2, 3, 4), "b": np.ones((2, 4))}, "step": np.array([3, 5])}
    template = jax.eval_shape(lambda: agent)
    leaves = [np.asarray(x) for x in jax.tree_util.tree_leaves(agent)]
    np.savez(tmp_path / "ok.npz", meta="{}", **{f"agent_{i}": x for i, x in enumerate(leaves)})
    back = common._cached_agent(np.load(tmp_path / "ok.npz"), template)
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(agent)
    for a, b in zip(jax.tree_util.tree_leaves(back), leaves):
        np.testing.assert_array_equal(np.asarray(a), b)
    np.savez(tmp_path / "stale.npz", meta="{}", **{f"agent_{i}": x[:1] for i, x in enumerate(leaves)})  # 1 seed
    assert common._cached_agent(np.load(tmp_path / "stale.npz"), template) is None
    np.savez(tmp_path / "metrics_only.npz", meta="{}", objective_mean=np.zeros((2, 5)))
    assert common._cached_agent(np.load(tmp_path / "metrics_only.npz"), template) is None
