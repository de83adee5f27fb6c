"""Figs. 3-7 of DiffSG: the effect of objective / constraint terms in the condition (Fig. 3), of the guidance weight
w, the number of denoising steps T and the unconditional probability p_uncond (Figs. 4-7) on the optimisation
performance (mean exceed ratio) and the final training loss.

Fig. 3 trains each condition variant (none, objective, constraint, both; see `common.condition_terms`) for both
network parametrisations: the paper's (eps, scored at w = 4) and ours (x0, scored at w = 0).

w only acts at sampling time, so one trained model per problem is evaluated at every w; p_uncond is a traced
hyperparameter, so its models train in one vmapped call; T changes shapes, so each T compiles its own program.

    python experiments/diffsg/fig3_7_ablations.py [--quick] [--figs 3 4-7]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.diffsg.common import (  # noqa: E402
    FULL, HERE, PROBLEMS, QUICK, TERMS, condition_terms, exceed_ratios, finite_mean, gdm_config, load_data,
    train_gdm_seeds, write_json,
)
from jaxdiff_rl.optimize import GDMHparams, GenerativeOptimizer  # noqa: E402

WEIGHTS = (0.0, 1.0, 4.0, 20.0, 100.0, 500.0)
STEPS = (5, 10, 20, 40)
P_UNCOND = (0.05, 0.1, 0.2, 0.4)
EVAL = GDMHparams(cfg_weight=4.0)  # the T and p_uncond sweeps are scored at w = 4 (w = 500 masks them; see README)


def ablate(problem: str, s: dict) -> dict:
    train, test = load_data(problem, s["train_scale"])
    # w
    opt, states, losses, _ = train_gdm_seeds(problem, train, gdm_config(problem, train, s["epochs"], s["hidden"]),
                                             GDMHparams(), 1)
    state = jax.tree_util.tree_map(lambda a: a[0], states)
    by_w = {w: finite_mean(exceed_ratios(problem, opt, state, test, GDMHparams(cfg_weight=w), jax.random.key(1)))
            for w in WEIGHTS}
    # T
    by_t = {}
    for t in STEPS:
        opt_t, st, l_t, _ = train_gdm_seeds(problem, train, gdm_config(problem, train, s["epochs"], s["hidden"],
                                                                       num_steps=t), GDMHparams(), 1)
        st = jax.tree_util.tree_map(lambda a: a[0], st)
        by_t[t] = {"exceed": finite_mean(exceed_ratios(problem, opt_t, st, test, EVAL, jax.random.key(2))),
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
        by_p[pu] = {"exceed": finite_mean(exceed_ratios(problem, opt_p, st, test, EVAL, jax.random.key(4))),
                    "final_loss": float(l_p[i, -1])}
    return {"problem": problem, "w": by_w, "T": by_t, "p_uncond": by_p}


def fig3(problem: str, s: dict) -> dict:
    train, test = load_data(problem, s["train_scale"])
    out = {}
    for prediction, w in (("eps", 4.0), ("x0", 0.0)):
        for which in TERMS:
            fn, k = condition_terms(problem, which)
            cfg = gdm_config(problem, train, s["epochs"], s["hidden"], prediction=prediction, num_terms=k)
            opt, states, losses, secs = train_gdm_seeds(problem, train, cfg, GDMHparams(), 1, terms=fn)
            st = jax.tree_util.tree_map(lambda a: a[0], states)
            r = exceed_ratios(problem, opt, st, test, GDMHparams(cfg_weight=w), jax.random.key(5))
            out[f"{prediction} w={w:g} {which}"] = {"exceed": finite_mean(r),
                                                     "final_loss": float(losses[0, -1]), "train_s": secs}
            print(problem, prediction, which, out[f"{prediction} w={w:g} {which}"], flush=True)
    return {"problem": problem, "terms": out}


def plot_fig3(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.2 * len(results), 3.2), squeeze=False)
    for ax, res in zip(axes[0], results):
        names = list(res["terms"])
        vals = [res["terms"][n]["exceed"] for n in names]
        colors = ["tab:blue" if n.startswith("eps") else "tab:orange" for n in names]
        ax.bar(range(len(names)), vals, color=colors)
        ax.set_xticks(range(len(names)), [n.split()[-1] for n in names], rotation=60, fontsize=7)
        lo, hi = min(vals), max(vals)
        ax.set_ylim(lo - 0.1 * (hi - lo + 1e-3), hi + 0.1 * (hi - lo + 1e-3))
        ax.set_title(f"{res['problem']} (blue eps w=4, orange x0 w=0)", fontsize=8)
        ax.set_ylabel("mean exceed ratio")
    fig.suptitle("DiffSG Fig. 3: objective / constraint terms in the condition", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=PROBLEMS)
    parser.add_argument("--figs", nargs="+", default=["3", "4-7"], choices=["3", "4-7"])
    args = parser.parse_args()
    s = QUICK if args.quick else FULL
    tag = "quick" if args.quick else "full"
    if "3" in args.figs:
        res3 = [fig3(p, s) for p in args.problems]
        write_json(HERE / "results" / f"fig3_{tag}.json", res3)
        plot_fig3(res3, HERE / f"fig3_{tag}.png")
        print(f"wrote {HERE / f'fig3_{tag}.png'}")
    if "4-7" not in args.figs:
        return
    results = []
    for p in args.problems:
        results.append(ablate(p, s))
        print(results[-1], flush=True)
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
