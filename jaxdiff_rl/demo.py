"""The default job (`jaxdiff-rl` / `jaxdiff-rl demo`): a short, CPU-sized tour of the main use.

1. AIGC service-provider selection (seed 001): D2SAC vs discrete SAC with the same settings, 2 seeds each, one
   vmapped program per algorithm; greedy evaluation against the random, round-robin, crash-avoid and prophet
   heuristics.
2. msr-3 power allocation: DM-DDPG (seed 003's reverse-process actor), 4 seeds, scored as a fraction of the
   exact water-filling optimum.

Prints a results table and writes `<out>/demo.png` (learning curves) and `<out>/demo.json`; per-run metrics and
checkpoints go to `<out>/<run>/`. The demo's AIGC budget (a few thousand steps) is far below the paper's 1e6;
`experiments/agents/aigc_d2sac.py` runs the longer comparison.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import jax
import numpy as np

import envs
from jaxdiff_rl.experiment import TrainSpec, build, evaluate_spec
from jaxdiff_rl.rollout import baseline_rollouts
from jaxdiff_rl.runner import run

__all__ = ["run_demo", "demo_specs"]


def demo_specs(scale: float = 1.0) -> dict[str, TrainSpec]:
    """The demo's three runs; `scale` multiplies the number of iterations."""
    it = lambda n: max(1, int(round(n * scale)))
    aigc_static = dict(num_envs=4, steps_per_iter=100, updates_per_iter=400, num_iterations=it(60), batch_size=64,
                       buffer_size=100_000)
    common = dict(base="d2sac", env="aigc", num_seeds=2, static=aigc_static, hidden=(32, 32))
    return {
        "aigc-d2sac": TrainSpec(algo="d2sac", actor_kind="diffusion", **common),
        "aigc-sac": TrainSpec(algo="sac", actor_kind="categorical", **common),
        "msr3-dm_ddpg": TrainSpec(
            algo="dm_ddpg", env="msr-3", num_seeds=4, hidden=(32, 32), diffusion_steps=3,
            static=dict(num_envs=16, steps_per_iter=1, updates_per_iter=4, num_iterations=it(60), batch_size=64,
                        buffer_size=4096),
            hparams=dict(lr_actor=1e-3, lr_critic=1e-3),
        ),
    }


def _baselines(name: str, episodes: int = 16) -> dict[str, tuple[float, float]]:
    """(mean episode return, mean reward per step) of each baseline policy of an environment."""
    env, params = envs.make(name)
    runs = baseline_rollouts(env, params, jax.random.key(11), episodes, min_steps=64)
    return {policy: (r.stats.mean_return, float(r.stats.reward_sum / r.stats.steps)) for policy, r in runs.items()}


def run_demo(out: Path, scale: float = 1.0, progress: bool = True) -> dict:
    from jaxdiff_rl.plot import plot_curves

    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"jaxdiff-rl demo on {jax.devices()[0].platform.upper()} ({jax.device_count()} device(s)), jax {jax.__version__}")
    results, curves = {}, {}
    for name, spec in demo_specs(scale).items():
        trainer, keys, hp, _ = build(spec)
        res = run(trainer, hp, keys, out_dir=out / name, chunk_iterations=max(1, spec.static["num_iterations"] // 5),
                  progress=progress, description={"spec": spec.to_json(), "settings": [{}]})
        eval_steps = 1200 if spec.env == "aigc" else 64
        ev = evaluate_spec(trainer, res.state, hp, eval_steps)
        curves[name] = res.metrics
        results[name] = {
            "algo": spec.algo, "env": spec.env, "seeds": spec.num_seeds, "seconds": res.seconds,
            "env_steps_per_seed": int(res.metrics["env_steps"][0, -1]),
            "eval_return": ev["return_mean"].tolist(), "eval_reward_per_step": ev["reward_mean"].tolist(),
            "eval_optimum_fraction": ev["optimum_fraction"].tolist(),
        }
    base_aigc, base_msr = _baselines("aigc"), _baselines("msr-3")
    results["baselines"] = {"aigc": base_aigc, "msr-3": base_msr}

    print("\nAIGC provider selection: mean episode return (greedy policy, one ~1000-step episode per env and seed)")
    for name in ("aigc-d2sac", "aigc-sac"):
        r = results[name]
        print(f"  {r['algo']:12s} {np.mean(r['eval_return']):9.1f} ± {np.std(r['eval_return']):6.1f}   "
              f"({r['env_steps_per_seed']} env steps/seed, {r['seconds']:.0f} s incl. compile)")
    for policy, (ret, _) in base_aigc.items():
        print(f"  {policy:12s} {ret:9.1f}")
    r = results["msr3-dm_ddpg"]
    frac = np.asarray(r["eval_optimum_fraction"])
    print(f"\nmsr-3 power allocation: fraction of the water-filling optimum (greedy, {len(frac)} seeds)")
    print(f"  {'dm_ddpg':12s} {100 * frac.mean():8.2f}% ± {100 * frac.std():.2f}%   ({r['seconds']:.0f} s incl. compile)")
    print(f"  {'random':12s} {100 * base_msr['random'][1] / base_msr['water-filling'][1]:8.2f}%")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    plot_curves({"D2SAC": curves["aigc-d2sac"], "SAC": curves["aigc-sac"]}, "reward_mean", None,
                reference_lines={k: v[1] for k, v in base_aigc.items()}, smooth=3,
                title="AIGC: reward per step while training (mean ± std over seeds)", ax=axes[0])
    plot_curves({"DM-DDPG": curves["msr3-dm_ddpg"]}, "optimum_fraction", None, reference_lines={"optimum": 1.0},
                title="msr-3: reward / water-filling optimum while training", smooth=5, ax=axes[1])
    fig.tight_layout()
    fig.savefig(out / "demo.png", dpi=120)
    plt.close(fig)
    results["total_seconds"] = time.perf_counter() - t_start
    (out / "demo.json").write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out / 'demo.png'} and {out / 'demo.json'} ({results['total_seconds']:.0f} s)")
    return results
