"""Figs. 8-10 of DiffSG: the objective value of the (repaired) sample along the denoising trajectory for 5 test
instances per problem, with each instance's optimal value as a dashed line.

    python experiments/diffsg/fig8_10_trajectories.py [--quick]

Writes fig8_10_<tag>.png and results/trajectories_<tag>.json next to this file.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.diffsg.common import FULL, HERE, PROBLEMS, QUICK, gdm_config, load_data, train_gdm_seeds, write_json  # noqa: E402
from envs.datasets import objective_fn, repair_fn  # noqa: E402
from jaxdiff_rl.optimize import GDMHparams  # noqa: E402


def trajectories(problem: str, s: dict, n: int = 5) -> dict:
    train, test = load_data(problem, s["train_scale"])
    hp = GDMHparams(cfg_weight=4.0)  # w = 500 damages the last denoising steps here (see README); training is the paper's
    opt, states, _, _ = train_gdm_seeds(problem, train, gdm_config(problem, train, s["epochs"], s["hidden"]), hp, 1)
    state = jax.tree_util.tree_map(lambda a: a[0], states)
    x = jnp.asarray(test["x"][:n])
    _, traj = opt.sample(state, jax.random.key(7), x, hp, return_trajectory=True)  # [T+1, n, 1, dy]
    f, r = objective_fn(problem), repair_fn(problem)
    values = jax.vmap(lambda ys: jax.vmap(lambda xi, yi: f(xi, r(xi, yi)))(x, ys[:, 0]))(traj)  # [T+1, n]
    return {"problem": problem, "values": np.asarray(values).T.tolist(), "optimal": test["value"][:n].tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    s = QUICK if args.quick else FULL
    results = [trajectories(p, s) for p in PROBLEMS]
    tag = "quick" if args.quick else "full"
    write_json(HERE / "results" / f"trajectories_{tag}.json", results)

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.2), squeeze=False)
    for ax, res in zip(axes[0], results):
        for i, (vals, opt) in enumerate(zip(res["values"], res["optimal"])):
            line, = ax.plot(range(len(vals)), vals, marker=".", ms=3, label=f"x{i + 1}")
            ax.axhline(opt, color=line.get_color(), ls="--", lw=0.8)
        ax.set_title(res["problem"])
        ax.set_xlabel("denoising step (0 = pure noise)")
        ax.set_ylabel("objective of the repaired sample")
        if res["problem"] == "co":
            ax.set_yscale("log")
    axes[0][0].legend(fontsize=7)
    fig.suptitle("DiffSG Figs. 8-10: objective along the denoising trajectory (dashed: exact optimum)", fontsize=9)
    fig.tight_layout()
    fig.savefig(HERE / f"fig8_10_{tag}.png", dpi=120)
    print(f"wrote {HERE / f'fig8_10_{tag}.png'}")


if __name__ == "__main__":
    main()
