"""Fig. 11 of DiffSG: exceed ratio f(x, y0) / f(x, y*) of the single-sample GDM optimizer vs GD, MTFNN and PPO on
CO, MSR-3, MSR-80 and NU, against the exact optima of the wireless-suite solvers.

    python experiments/diffsg/fig11_comparison.py            # paper settings (3 seeds, 200 epochs)
    python experiments/diffsg/fig11_comparison.py --medium   # 50% data, 100 epochs, 2 seeds (~10 minutes)
    python experiments/diffsg/fig11_comparison.py --quick    # 20% data, 40 epochs, 2 seeds (a few minutes)

GDM is evaluated twice from the same trained models (guidance only acts at sampling time): with the paper's
w = 500 (normalisation in the first 5 steps) and with w = 4.

Writes results/fig11_<tag>.json / .csv and fig11_<tag>.png next to this file; problems run separately at the same
settings are merged into one table.
"""

from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.diffsg.common import (  # noqa: E402
    FULL, HERE, MEDIUM, PROBLEMS, QUICK, exceed_ratios, gdm_config, load_data, summary, train_gdm_seeds, write_json,
)
from envs.datasets import SENSE, objective_fn, repair_fn  # noqa: E402
from jaxdiff_rl.optimize import GDMHparams, Normalizer  # noqa: E402
from jaxdiff_rl.optimize.baselines import MTFNN, OneStepPPO, PPOConfig, gradient_descent  # noqa: E402


def run(problem: str, s: dict) -> dict:
    train, test = load_data(problem, s["train_scale"])
    f, r = objective_fn(problem), repair_fn(problem)
    sign = 1.0 if SENSE[problem] == "max" else -1.0
    x, y, xt = jnp.asarray(train["x"]), jnp.asarray(train["y"]), jnp.asarray(test["x"])
    hp = GDMHparams()  # DiffSG: lr 5e-3, gamma 0.1, p_uncond 0.1, w = 500, EMA
    opt, states, losses, train_s = train_gdm_seeds(problem, train, gdm_config(problem, train, s["epochs"], s["hidden"]),
                                                   hp, s["seeds"])
    # our variant: the network predicts y* (x0) instead of the noise, sampled without guidance (w = 0); the eps
    # network underfits sharp maps x -> y* such as NU's UAV position (see README)
    opt_x0, states_x0, _, train_x0_s = train_gdm_seeds(
        problem, train, gdm_config(problem, train, s["epochs"], s["hidden"], prediction="x0"), hp, s["seeds"])
    out = {"gdm w=500": [], "gdm w=4": [], "gdm x0 w=0": [], "gd": [], "mtfnn": [], "ppo": []}
    t0 = time.perf_counter()
    for i in range(s["seeds"]):
        state = jax.tree_util.tree_map(lambda a: a[i], states)
        out["gdm w=500"].append(exceed_ratios(problem, opt, state, test, hp, jax.random.key(100 + i)))
    gdm_latency = (time.perf_counter() - t0) / (s["seeds"] * len(xt))
    for i in range(s["seeds"]):
        state = jax.tree_util.tree_map(lambda a: a[i], states)
        out["gdm w=4"].append(exceed_ratios(problem, opt, state, test, hp.replace(cfg_weight=4.0),
                                            jax.random.key(100 + i)))
    for i in range(s["seeds"]):
        state = jax.tree_util.tree_map(lambda a: a[i], states_x0)
        out["gdm x0 w=0"].append(exceed_ratios(problem, opt_x0, state, test, hp.replace(cfg_weight=0.0),
                                               jax.random.key(100 + i)))
    for i in range(s["seeds"]):
        yg = gradient_descent(jax.random.key(200 + i), xt, Normalizer.fit(y), f, r, sign, 300)
        out["gd"].append(np.asarray(jax.vmap(f)(xt, yg)) / test["value"])
        m = MTFNN(x.shape[1], y.shape[1], s["hidden"], epochs=s["epochs"], batch_size=min(512, len(x)))
        p, xn, yn, _ = m.train(jax.random.key(300 + i), x, y)
        out["mtfnn"].append(np.asarray(jax.vmap(f)(xt, m.predict(p, xn, yn, xt, r))) / test["value"])
        ppo = OneStepPPO(x.shape[1], y.shape[1], PPOConfig(iterations=5 * s["epochs"], batch_size=512))
        p, xn, yn, _ = ppo.train(jax.random.key(400 + i), x, y, f, r, sign)
        out["ppo"].append(np.asarray(jax.vmap(f)(xt, ppo.predict(p, xn, yn, xt, r))) / test["value"])
    return {
        "problem": problem,
        "methods": {k: {"per_seed": [summary(v) for v in vals], **summary(np.concatenate(vals))} for k, vals in out.items()},
        "gdm_train_s_all_seeds": train_s,
        "gdm_x0_train_s_all_seeds": train_x0_s,
        "gdm_latency_ms_per_solution": 1e3 * gdm_latency,
        "final_train_loss": losses[:, -1].tolist(),
    }


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.3 * len(results), 3.2), squeeze=False)
    for ax, res in zip(axes[0], results):
        names = list(res["methods"])
        med = [res["methods"][m]["median"] for m in names]
        lo = [res["methods"][m]["median"] - res["methods"][m]["q10"] for m in names]
        hi = [res["methods"][m]["q90"] - res["methods"][m]["median"] for m in names]
        colors = ["tab:red", "tab:orange", "tab:purple", "tab:gray", "tab:blue", "tab:green"]
        ax.bar(names, med, yerr=[lo, hi], color=colors[: len(names)], alpha=0.8, capsize=3)
        ax.tick_params(axis="x", labelrotation=45, labelsize=7)
        ax.axhline(1.0, color="k", ls="--", lw=0.8)
        ax.set_title(res["problem"])
        ax.set_ylabel("exceed ratio (median, 10-90%)")
        if SENSE[res["problem"]] == "min":
            ax.set_ylim(0.95, min(3.0, max(m + h for m, h in zip(med, hi)) * 1.05))
        else:
            ax.set_ylim(max(0.0, min(m - l for m, l in zip(med, lo)) * 0.98), 1.005)
    fig.suptitle("DiffSG Fig. 11: exceed ratio vs the exact optimum (CO: lower is better; others: higher)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--medium", action="store_true")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    args = parser.parse_args()
    settings = QUICK if args.quick else MEDIUM if args.medium else FULL
    results = []
    for problem in args.problems:
        t0 = time.perf_counter()
        res = run(problem, settings)
        res["wall_s"] = time.perf_counter() - t0
        results.append(res)
        row = "  ".join(f"{m}: mean {v['mean']:.4f} median {v['median']:.4f}" for m, v in res["methods"].items())
        print(f"{problem:7s} {row}  (GDM train {res['gdm_train_s_all_seeds']:.0f}s for {settings['seeds']} seeds, "
              f"{res['gdm_latency_ms_per_solution']:.3f} ms/solution)", flush=True)
    tag = "quick" if args.quick else "medium" if args.medium else "full"
    # merge with the problems of an earlier run at the same settings (each problem is an independent run)
    previous = HERE / "results" / f"fig11_{tag}.json"
    if previous.exists():
        import json

        old = json.loads(previous.read_text())
        if old.get("settings") == json.loads(json.dumps(settings)):
            ran = {r["problem"] for r in results}
            results = [r for r in old["results"] if r["problem"] not in ran] + results
            results.sort(key=lambda r: PROBLEMS.index(r["problem"]))
    write_json(HERE / "results" / f"fig11_{tag}.json", {"settings": settings, "results": results})
    with open(HERE / "results" / f"fig11_{tag}.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["problem", "method", "mean", "median", "q10", "q90", "inf"])
        for res in results:
            for m, v in res["methods"].items():
                w.writerow([res["problem"], m, v["mean"], v["median"], v["q10"], v["q90"], v["infeasible_or_inf"]])
    plot(results, HERE / f"fig11_{tag}.png")
    print(f"wrote {HERE / 'results' / f'fig11_{tag}.json'} and fig11_{tag}.png")


if __name__ == "__main__":
    main()
