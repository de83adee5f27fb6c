"""msr-3 power allocation: the diffusion agents (D2SAC, DM-TD3, DM-DDPG) and their Gaussian/deterministic parents,
8 seeds each (one vmapped program per algorithm), scored by the greedy policy's reward as a fraction of the exact
water-filling optimum on fresh instances. Acceptance (issue 8): diffusion agents >= 95% (mean over 8 seeds).

    python experiments/agents/msr3_diffusion.py      # writes results/msr3.json and results/msr3.png
"""

from __future__ import annotations

import json
import time
from pathlib import Path


from jaxdiff_rl.app.experiment import TrainSpec, build, evaluate_spec, train_spec
from jaxdiff_rl.app.plot import plot_curves

HERE = Path(__file__).parent
ALGOS = ("d2sac", "dm_td3", "dm_ddpg", "sac", "td3", "ddpg")


def spec(algo: str, seeds: int = 8, iterations: int = 100) -> TrainSpec:
    return TrainSpec(
        algo=algo, env="msr-3", num_seeds=seeds, hidden=(64, 64), diffusion_steps=5 if algo != "dm_ddpg" else 6,
        static=dict(num_envs=16, steps_per_iter=1, updates_per_iter=4, num_iterations=iterations, batch_size=64,
                    buffer_size=8192),
        hparams=dict(lr_actor=1e-3, lr_critic=1e-3),
    )


def main() -> None:
    out = HERE / "results"
    out.mkdir(parents=True, exist_ok=True)
    results, curves = {}, {}
    for algo in ALGOS:
        s = spec(algo)
        t0 = time.perf_counter()
        res = train_spec(s, None, progress=False)
        trainer, keys, hp, _ = build(s)
        ev = evaluate_spec(trainer, res.state, hp, num_steps=256)
        frac = ev["optimum_fraction"]
        results[algo] = {"optimum_fraction_per_seed": frac.tolist(), "mean": float(frac.mean()),
                         "std": float(frac.std()), "seconds": time.perf_counter() - t0,
                         "env_steps_per_seed": int(res.metrics["env_steps"][0, -1])}
        curves[algo] = res.metrics
        print(f"{algo:8s} {100 * frac.mean():6.2f}% ± {100 * frac.std():.2f}% of optimum  ({results[algo]['seconds']:.0f} s)",
              flush=True)
    (out / "msr3.json").write_text(json.dumps(results, indent=1))
    plot_curves(curves, "optimum_fraction", out / "msr3.png", reference_lines={"optimum": 1.0}, smooth=10,
                title="msr-3: reward / water-filling optimum while training (8 seeds)")


if __name__ == "__main__":
    main()
