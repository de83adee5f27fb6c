"""Reproduce D2RL's figures (seed 003, section V) on FD-ISAC: action exploration (Figs. 2-3), the five reward
designs (Figs. 4-6), the state-exploration sweep over (M, eta) (Fig. 7) and with/without state exploration
(Figs. 8-9). Every variant is one vmapped program over its seeds (and, for Fig. 7, its (M, eta) grid).

    python experiments/d2rl/reproduce.py                    # quick CPU scale, all figures, 8 seeds
    python experiments/d2rl/reproduce.py --figs 2 4 --seeds 8 --scale paper   # Table I-II sizes (GPU-sized)

Writes results/<scale>/fig*.png, fig*.json and fig*.csv; runs are cached in results/runs/<scale>/ (delete them or
pass --force to retrain). See README.md for the definitions, the numbers and the comparison with the paper.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

# run as a script (python experiments/d2rl/<name>.py): the repository root holds the `experiments` package
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.d2rl.common import (  # noqa: E402
    LABELS, RESULTS, SCALES, Scale, baselines, convergence, first_reach, moving_average, run_variant, state_stats,
    summarise)

DESIGNS = ("raw", "designed", "designed_mlp", "gdm", "designed_gdm")
# seed 003's tuned (M, eta) per design (Fig. 7), used where this scale has no Fig. 7 sweep of its own; the paper
# gives none for Raw R.
PAPER_BEST = {"designed": {"M": 0.9, "eta": 0.001}, "designed_mlp": {"M": 0.3, "eta": 0.01},
              "designed_gdm": {"M": 1.0, "eta": 0.001}, "gdm": {"M": 0.4, "eta": 0.01}}
SWEPT = ("designed", "designed_mlp", "designed_gdm", "gdm")  # Fig. 7's four panels pairs
M_VALUES = (0.3, 0.6, 1.0)
ETA_VALUES = (0.001, 0.01)


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _write(out: Path, name: str, summary: dict) -> None:
    (out / f"{name}.json").write_text(json.dumps(summary, indent=1))
    rows = [{"variant": k, **{m: v for m, v in s.items() if not isinstance(v, (dict, list))}} for k, s in summary.items()]
    with open(out / f"{name}.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=sorted({c for r in rows for c in r}, key=lambda c: (c != "variant", c)))
        writer.writeheader()
        writer.writerows(rows)


def _curves(ax_rate, ax_reward, runs: dict, labels: dict, window: int, refs: dict | None = None) -> None:
    for name, run in runs.items():
        for ax, metric in ((ax_rate, "objective_mean"), (ax_reward, "reward_mean")):
            ma = moving_average(run["metrics"][metric], window)  # [seeds, epochs]
            mean, std = np.nanmean(ma, 0), np.nanstd(ma, 0)
            x = np.arange(len(mean))
            line, = ax.plot(x, mean, label=labels[name])
            ax.fill_between(x, mean - std, mean + std, alpha=0.15, color=line.get_color())
        if np.nanmean(run["metrics"].get("substituted_fraction", 0.0)) > 0:  # state exploration acted
            ma = np.nanmean(moving_average(run["metrics"]["objective_mean_observed"], window), 0)
            ax_rate.plot(np.arange(len(ma)), ma, ls=":", color=line.get_color(),
                         label=f"{labels[name]}, true-state steps")
    for k, (name, value) in enumerate((refs or {}).items()):
        if name != "upper bound R'":
            ax_rate.axhline(value, ls="--", lw=0.8, color="k" if k else "grey", label=f"{name} policy")
    ax_rate.set(xlabel="epoch", ylabel="sum rate C (bit/s/Hz)", title="(a) sum rate")
    ax_reward.set(xlabel="epoch", ylabel=f"MA reward (window {window})", title="(b) MA reward")
    ax_rate.legend(fontsize=7)


def _compute_bars(summary: dict, labels: dict, path: Path, title: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    names = list(summary)
    x = np.arange(len(names))
    axes[0].bar(x, [summary[n]["total_seconds_to_convergence"] for n in names], color=[f"C{i}" for i in x])
    axes[0].set(ylabel="CPU s to convergence (per seed)", title="(a) total compute to convergence")
    axes[1].bar(x, [1e3 * summary[n]["seconds_per_epoch"] for n in names], color=[f"C{i}" for i in x])
    axes[1].set(ylabel="CPU ms per epoch (per seed)", title="(b) compute per epoch")
    for ax in axes:
        ax.set_xticks(x, [labels[n] for n in names], rotation=20, ha="right", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _save_curves(runs: dict, labels: dict, scale: Scale, path: Path, title: str) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    refs = baselines(scale)
    _curves(axes[0], axes[1], runs, labels, scale.window, {"random": refs["random"]})
    bound = refs["upper bound R'"]
    title += f"\nreference policy (MRT-WF-MMSE) {refs['mrt-wf-mmse']:.3g}, mean upper bound R' {bound:.3g} bit/s/Hz"
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def _trunk_layers(metrics: dict, kind: str) -> list[str]:
    """The actor denoiser's trunk layers (MLP_0/Dense_*), in order."""
    keys = [k for k in metrics if k.startswith(f"grad_mean/actor/{kind}/MLP_0/")]
    return sorted(keys, key=lambda k: int(k.rsplit("_", 1)[1]))


def _grad_means(metrics: dict, kind: str, rows: np.ndarray | slice = slice(None)) -> np.ndarray:
    """Mean over the runs `rows` and the epochs (once updating) of each trunk layer's mean |gradient| -> [layers]."""
    return np.array([np.nanmean(metrics[k][rows]) for k in _trunk_layers(metrics, kind)])


def fig2_3(scale: Scale, seeds: int, out: Path, force: bool) -> dict:
    runs = {
        "a_without_gdm": run_variant(scale, "designed_mlp_actor", scale.config("designed", action_gdm=False),
                                     scale.base_hparams(), seeds, force),
        "a_with_gdm": run_variant(scale, "designed", scale.config("designed"), scale.base_hparams(), seeds, force),
    }
    labels = {"a_without_gdm": "A. w/o GDM", "a_with_gdm": "A. w/ GDM"}
    _save_curves(runs, labels, scale, out / "fig2_action_exploration.png",
                 f"Fig. 2: action exploration, designed reward ({seeds} seeds, mean ± std)")
    summary = summarise(runs, scale, seeds)
    summary["baselines"] = baselines(scale)
    _compute_bars({k: v for k, v in summary.items() if k in runs}, labels, out / "fig3_action_compute.png",
                  "Fig. 3: compute, action exploration")
    _write(out, "fig2_3", summary)
    return summary


def fig4_6(scale: Scale, seeds: int, out: Path, force: bool, designs: tuple[str, ...] = DESIGNS) -> dict:
    runs = {d: run_variant(scale, d, scale.config(d), scale.base_hparams(), seeds, force) for d in designs}
    _save_curves(runs, LABELS, scale, out / "fig4_reward_designs.png",
                 f"Fig. 4: reward designs, A. w/ GDM ({seeds} seeds, mean ± std)")
    summary = summarise(runs, scale, seeds)
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for j, kind in enumerate(("weight", "bias")):
        width = 0.8 / len(designs)
        for i, d in enumerate(designs):
            values = _grad_means(runs[d]["metrics"], kind)
            axes[j].bar(np.arange(len(values)) + width * (i - (len(designs) - 1) / 2), values, width=width,
                        label=LABELS[d])
            summary[d][f"grad_{kind}_per_layer"] = values.tolist()
        axes[j].set(xlabel="actor trunk layer", ylabel=f"mean |dL/d{kind}|", title=f"({'ab'[j]}) gradient {kind}")
        axes[j].set_xticks(np.arange(len(values)), [f"L{k + 1}" for k in range(len(values))])
    axes[0].legend(fontsize=7)
    fig.suptitle("Fig. 5: mean gradient weight and bias per actor layer", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig5_gradients.png", dpi=130)
    plt.close(fig)
    _compute_bars(summary, LABELS, out / "fig6_reward_compute.png", "Fig. 6: compute, reward designs")
    _write(out, "fig4_6", summary)
    return summary


def _sweep_hparams(scale: Scale):
    from jaxdiff_rl.train.sweep import grid

    return grid(scale.base_hparams(), chi_max=list(M_VALUES), chi_rate=list(ETA_VALUES))


def fig7(scale: Scale, seeds: int, base_seeds: int, out: Path, force: bool) -> dict:
    """(M, eta) grid x `seeds` per design; sums over the trunk layers of the gradient weight/bias means, against
    the design without state exploration; picks per design the setting with the highest final MA sum rate (the
    first epoch reaching 95% of the design's own no-exploration plateau is recorded too, but at the quick scale
    the untrained policy already sits within 5% of the plateaus, so it cannot rank the settings)."""
    plt = _plt()
    g = len(M_VALUES) * len(ETA_VALUES)
    fig, axes = plt.subplots(2, len(SWEPT), figsize=(3.3 * len(SWEPT), 6))
    summary = {}
    for col, d in enumerate(SWEPT):
        base = run_variant(scale, d, scale.config(d), scale.base_hparams(), base_seeds, force)
        run = run_variant(scale, f"{d}_sexp_sweep", scale.config(d, True), _sweep_hparams(scale), seeds, force)
        m = run["metrics"]
        base_curve = np.nanmean(base["metrics"]["objective_mean"], 0)
        level = 0.95 * convergence(base_curve, scale.window)["plateau"]
        cells = {}
        for i in range(g):  # run r is seed r // g, setting r % g
            rows = np.arange(i, run["runs"], g)
            sums = {kind: float(_grad_means(m, kind, rows).sum()) for kind in ("weight", "bias")}
            curve = np.nanmean(m["objective_mean"][rows], 0)
            cells[i] = {"M": M_VALUES[i // len(ETA_VALUES)], "eta": ETA_VALUES[i % len(ETA_VALUES)], **sums,
                        "epoch_to_base_level": first_reach(curve, scale.window, level),
                        "final_chi": float(np.nanmean(m["chi"][rows, -1])),
                        "plateau": convergence(curve, scale.window)["plateau"]}
        base_sums = {kind: float(_grad_means(base["metrics"], kind).sum()) for kind in ("weight", "bias")}
        best = max(cells.values(), key=lambda c: c["plateau"])
        summary[d] = {"cells": list(cells.values()), "baseline": base_sums, "best": best}
        for row, kind in enumerate(("weight", "bias")):
            ax = axes[row, col]
            img = np.array([[cells[a * len(ETA_VALUES) + b][kind] for b in range(len(ETA_VALUES))]
                            for a in range(len(M_VALUES))])
            im = ax.imshow(img, cmap="viridis", aspect="auto", origin="lower")
            for a in range(len(M_VALUES)):
                for b in range(len(ETA_VALUES)):
                    ax.text(b, a, f"{img[a, b]:.3g}", ha="center", va="center", fontsize=7, color="w")
            ax.set_xticks(range(len(ETA_VALUES)), [str(e) for e in ETA_VALUES])
            ax.set_yticks(range(len(M_VALUES)), [str(v) for v in M_VALUES])
            ax.set(xlabel="eta", ylabel="M", title=f"({'abcdefgh'[2 * col + row]}) {LABELS[d]}: {kind} sum\n"
                                                      f"w/o S. Exp.: {base_sums[kind]:.3g}")
            ax.title.set_fontsize(7)
            fig.colorbar(im, ax=ax, fraction=0.046)
    fig.suptitle("Fig. 7: sum over actor layers of mean |gradient| vs (M, eta), with state exploration", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig7_state_sweep.png", dpi=130)
    plt.close(fig)
    (out / "fig7.json").write_text(json.dumps(summary, indent=1))
    with open(out / "fig7.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["design", "M", "eta", "weight_sum", "bias_sum", "epoch_to_base_level", "final_chi", "plateau"])
        for d, s in summary.items():
            for c in s["cells"]:
                writer.writerow([d, c["M"], c["eta"], c["weight"], c["bias"], c["epoch_to_base_level"], c["final_chi"],
                                 c["plateau"]])
    return summary


def fig8_9(scale: Scale, seeds: int, out: Path, force: bool, best: dict | None,
           designs: tuple[str, ...] = DESIGNS) -> dict:
    runs, labels = {}, {}
    for d in designs:
        runs[d] = run_variant(scale, d, scale.config(d), scale.base_hparams(), seeds, force)
        choice = (best or PAPER_BEST).get(d, {"M": 0.9, "eta": 0.001})
        hp = scale.base_hparams(chi_max=choice["M"], chi_rate=choice["eta"])
        runs[f"{d}_sexp"] = run_variant(scale, f"{d}_sexp_M{choice['M']}_eta{choice['eta']}", scale.config(d, True),
                                        hp, seeds, force)
        labels[d], labels[f"{d}_sexp"] = LABELS[d], f"{LABELS[d]} + S. Exp."
    plt = _plt()
    refs = {k: v for k, v in baselines(scale).items() if k == "random"}  # the reference policy would squash the axes
    fig, axes = plt.subplots(2, len(designs), figsize=(3.2 * len(designs), 6), sharex=True, squeeze=False)
    for col, d in enumerate(designs):
        _curves(axes[0, col], axes[1, col], {d: runs[d], f"{d}_sexp": runs[f"{d}_sexp"]}, labels, scale.window,
                refs)
        axes[0, col].set_title(LABELS[d], fontsize=8)
        axes[1, col].set_title("")
    fig.suptitle(f"Fig. 8: with / without state exploration ({seeds} seeds, mean ± std; top: sum rate, bottom: "
                 f"MA reward)", fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "fig8_state_exploration.png", dpi=130)
    plt.close(fig)
    summary = summarise(runs, scale, seeds)
    for d in designs:
        choice = (best or PAPER_BEST).get(d, {"M": 0.9, "eta": 0.001})
        summary[f"{d}_sexp"].update(M=choice["M"], eta=choice["eta"])
    for name, run in runs.items():
        summary[name].update(state_stats(run, scale.window))
    _compute_bars(summary, labels, out / "fig9_state_compute.png", "Fig. 9: compute with / without state exploration")
    _write(out, "fig8_9", summary)
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--figs", nargs="+", default=["2", "4", "7", "8"], choices=["2", "4", "7", "8"],
                        help="2: Figs. 2-3, 4: Figs. 4-6, 7: Fig. 7, 8: Figs. 8-9")
    parser.add_argument("--scale", default="quick", choices=sorted(SCALES))
    parser.add_argument("--seeds", type=int, default=8, help="seeds per variant (Fig. 7: per grid cell, default 2)")
    parser.add_argument("--sweep-seeds", type=int, default=2)
    parser.add_argument("--force", action="store_true", help="retrain instead of using cached runs")
    parser.add_argument("--designs", nargs="+", default=list(DESIGNS), choices=DESIGNS,
                        help="reward designs of Figs. 4-6 and 8-9 (default: all five)")
    parser.add_argument("--sexp-from", choices=sorted(SCALES), default=None, metavar="SCALE",
                        help="take Figs. 8-9's (M, eta) per design from SCALE's Fig. 7 sweep (default: this scale's "
                             "own sweep if it has one, else the paper's tuned values)")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.sweep_seeds < 1:
        parser.error("--seeds and --sweep-seeds must be >= 1")
    scale = SCALES[args.scale]
    out = RESULTS / scale.name
    out.mkdir(parents=True, exist_ok=True)
    best = None
    if "2" in args.figs:
        print(json.dumps(fig2_3(scale, args.seeds, out, args.force), indent=1))
    if "4" in args.figs:
        print(json.dumps(fig4_6(scale, args.seeds, out, args.force, tuple(args.designs)), indent=1))
    if "7" in args.figs:
        best = {d: s["best"] for d, s in fig7(scale, args.sweep_seeds, args.seeds, out, args.force).items()}
        print(json.dumps(best, indent=1))
    else:
        sweep = RESULTS / (args.sexp_from or scale.name) / "fig7.json"
        if sweep.exists():
            best = {d: s["best"] for d, s in json.loads(sweep.read_text()).items()}
        elif args.sexp_from:
            parser.error(f"--sexp-from: no Fig. 7 sweep in {sweep} (run reproduce.py --figs 7 --scale "
                         f"{args.sexp_from} first)")
    if "8" in args.figs:
        print(json.dumps(fig8_9(scale, args.seeds, out, args.force, best, tuple(args.designs)), indent=1))


if __name__ == "__main__":
    main()
