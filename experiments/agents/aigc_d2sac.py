"""AIGC service-provider selection: D2SAC vs discrete SAC vs the heuristics (seed 001, shared/specs/aigc.md).

Both agents use D2SAC's settings (n-step 3, gamma 0.95, fixed alpha 0.05, Adam + L2 1e-4, lr 1e-4 / 1e-3,
tau 0.005, UTD 1); the only difference is the actor (diffusion, T = 5, vs softmax MLP). CPU-sized: widths
`--hidden` (reference 256), batch 128 (reference 512), 4 environments x 250 steps per iteration.
Writes results/aigc.json and results/aigc.png (mean ± std over seeds of the training episode return, with the
heuristics as dashed lines) and prints the greedy evaluation table.

    python experiments/agents/aigc_d2sac.py --iterations 150 --seeds 3
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

import envs
from jaxdiff_rl.app.experiment import TrainSpec, build, evaluate_spec, train_spec
from jaxdiff_rl.app.plot import plot_curves
from jaxdiff_rl.train.rollout import baseline_rollouts

HERE = Path(__file__).parent


def heuristics(episodes: int = 64) -> dict[str, float]:
    env, params = envs.make("aigc")
    return {name: r.stats.mean_return for name, r in baseline_rollouts(env, params, jax.random.key(7), episodes).items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--iterations", type=int, default=150)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--out", default=str(HERE / "results"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    static = dict(num_envs=4, steps_per_iter=250, updates_per_iter=1000, num_iterations=args.iterations,
                  batch_size=128, buffer_size=1_000_000)
    results, curves = {}, {}
    for label, kind in (("D2SAC", "diffusion"), ("SAC", "categorical")):
        spec = TrainSpec(algo="d2sac" if kind == "diffusion" else "sac", base="d2sac", actor_kind=kind, env="aigc",
                         num_seeds=args.seeds, static=static, hidden=(args.hidden, args.hidden))
        t0 = time.perf_counter()
        res = train_spec(spec, out / f"run_{label.lower()}", chunk_iterations=5)
        trainer, keys, hp, _ = build(spec)
        ev = evaluate_spec(trainer, res.state, hp, num_steps=1200)
        curves[label] = res.metrics
        results[label] = {"eval_return_per_seed": ev["return_mean"].tolist(),
                          "eval_return_mean": float(np.mean(ev["return_mean"])),
                          "train_return_last10": float(np.nanmean(res.metrics["return_mean"][:, -10:])),
                          "seconds": time.perf_counter() - t0, "env_steps_per_seed": int(res.metrics["env_steps"][0, -1])}
        print(label, results[label], flush=True)
    base = heuristics()
    results["heuristics"] = base
    results["settings"] = {**static, "hidden": args.hidden, "seeds": args.seeds, "device": str(jax.devices()[0])}
    (out / "aigc.json").write_text(json.dumps(results, indent=1))
    plot_curves(curves, "return_mean", out / "aigc.png", reference_lines={k: v for k, v in base.items()},
                title="AIGC provider selection: training episode return (mean ± std over seeds)", smooth=5)
    print(f"{'policy':14s} {'mean episode return':>20s}")
    for k in ("D2SAC", "SAC"):
        print(f"{k:14s} {results[k]['eval_return_mean']:20.1f}   (greedy, per seed {np.round(results[k]['eval_return_per_seed'], 1).tolist()})")
    for k, v in base.items():
        print(f"{k:14s} {v:20.1f}")


if __name__ == "__main__":
    main()
