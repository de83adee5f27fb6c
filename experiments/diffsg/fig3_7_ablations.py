"""Figs. 4-7 of DiffSG: the effect of the guidance weight w, the number of denoising steps T and the unconditional
probability p_uncond on the optimisation performance (mean exceed ratio) and the final training loss.

w only acts at sampling time, so one trained model per problem is evaluated at every w; p_uncond is a traced
hyperparameter, so its models train in one vmapped call; T changes shapes, so each T compiles its own program.

    python experiments/diffsg/fig3_7_ablations.py [--quick]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.diffsg.common import (  # noqa: E402
    FULL, HERE, PROBLEMS, QUICK, exceed_ratios, gdm_config, load_data, train_gdm_seeds, write_json,
)
from jaxdiff_rl.optimize import GDMHparams, GenerativeOptimizer  # noqa: E402

WEIGHTS = (0.0, 1.0, 4.0, 20.0, 100.0, 500.0)
STEPS = (5, 10, 20, 40)
P_UNCOND = (0.05, 0.1, 0.2, 0.4)
EVAL = GDMHparams(cfg_weight=4.0)  # the T and p_uncond sweeps are scored at w = 4 (w = 500 masks them; see README)


def ablate(problem: str, s: dict) -> dict:
    train, test = load_data(problem, s["train_scale"])
    mean = lambda r: float(np.mean(r[np.isfinite(r)]))
    # w
    opt, states, losses, _ = train_gdm_seeds(problem, train, gdm_config(problem, train, s["epochs"], s["hidden"]),
                                             GDMHparams(), 1)
    state = jax.tree_util.tree_map(lambda a: a[0], states)
    by_w = {w: mean(exceed_ratios(problem, opt, state, test, GDMHparams(cfg_weight=w), jax.random.key(1)))
            for w in WEIGHTS}
    # T
    by_t = {}
    for t in STEPS:
        opt_t, st, l_t, _ = train_gdm_seeds(problem, train, gdm_config(problem, train, s["epochs"], s["hidden"],
                                                                       num_steps=t), GDMHparams(), 1)
        st = jax.tree_util.tree_map(lambda a: a[0], st)
        by_t[t] = {"exceed": mean(exceed_ratios(problem, opt_t, st, test, EVAL, jax.random.key(2))),
                   "final_loss": float(l_t[0, -1])}
    # p_uncond: one vmapped training call over the grid
    cfg = gdm_config(problem, train, s["epochs"], s["hidden"])
    opt_p = GenerativeOptimizer(cfg)
    x, y = jnp.asarray(train["x"]), jnp.asarray(train["y"])
    hp = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (len(P_UNCOND),)),
                                GDMHparams(p_uncond=jnp.asarray(P_UNCOND)))
    sts, l_p = jax.vmap(lambda h: opt_p._train(jax.random.key(3), x, y, h))(hp)
    by_p = {}
    for i, pu in enumerate(P_UNCOND):
        st = jax.tree_util.tree_map(lambda a: a[i], sts)
        by_p[pu] = {"exceed": mean(exceed_ratios(problem, opt_p, st, test, EVAL, jax.random.key(4))),
                    "final_loss": float(l_p[i, -1])}
    return {"problem": problem, "w": by_w, "T": by_t, "p_uncond": by_p}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    args = parser.parse_args()
    s = QUICK if args.quick else FULL
    results = []
    for p in args.problems:
        results.append(ablate(p, s))
        print(results[-1], flush=True)
    tag = "quick" if args.quick else "full"
    write_json(HERE / "results" / f"ablations_{tag}.json", results)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(11, 3.2))
    for res in results:
        axes[0].plot([str(w) for w in res["w"]], list(res["w"].values()), marker="o", label=res["problem"])
        axes[1].plot([str(t) for t in res["T"]], [v["exceed"] for v in res["T"].values()], marker="o")
        axes[2].plot([str(p) for p in res["p_uncond"]], [v["exceed"] for v in res["p_uncond"].values()], marker="o")
    for ax, name in zip(axes, ("guidance weight w", "denoising steps T", "p_uncond")):
        ax.set_xlabel(name)
        ax.set_ylabel("mean exceed ratio")
        ax.set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("DiffSG Figs. 4-7 ablations (CO: lower is better; others: higher)", fontsize=9)
    fig.tight_layout()
    fig.savefig(HERE / f"fig4_7_{tag}.png", dpi=120)
    print(f"wrote {HERE / f'fig4_7_{tag}.png'}")


if __name__ == "__main__":
    main()
