"""State exploration (seed 003 Algorithm 1) under a second reading of Mode II: how far the synthetic states are
from the observed ones, and whether that decides if state exploration helps.

Algorithm 1 as we first read it noises S^0 through all P = 6 forward steps; with the vp schedule only
sqrt(alpha_bar_6) = 8% of S^0 survives, so S_hat^0 is a fresh draw from the learned state distribution, and the
agent's action on it is rewarded on the true state S^0: a stored transition (S_hat^0, A, R(S^0)) that pairs a state
with a reward it did not cause. The paper's own words suggest that a trained SENPNN's S_hat^0 resembles S^0 ("in
the early stages of SENPNN training, S_hat^0 may not closely resemble S^0"). `ExploreConfig.state_forward_steps`
= p < P noises S^0 to step p only and runs the last p reverse steps, so S_hat^0 is S^0 perturbed and projected back
onto the learned states (p = 1: 93% of S^0 survives the noising; p = 2: 75%).

For each design, this runs state exploration with p in `--forward` at two (M, eta) settings: the one this scale's
Fig. 7 sweep picked (or `--sexp-from`'s) and the paper's tuned one (Designed R. 0.9 / 0.001, Designed + GDM R.
1.0 / 0.001), against the design without state exploration, 8 seeds each as one vmapped program.

    python experiments/d2rl/state_readings.py                  # quick scale, Designed and Designed + GDM (~45 min)
    python experiments/d2rl/state_readings.py --designs designed --state-schedule linear --forward 1 6 --threshold 1
    python experiments/d2rl/state_readings.py --scale smoke --seeds 2 --forward 1 6   # pipeline check

`--state-schedule linear` gives the SENPNN DDPM's linear betas (1e-4 .. 0.02): in 6 steps S^0 is barely noised
(p = 1: S_hat^0 is S^0 to within ~1%), the control where substitution should change nothing. Its eps-loss stays
near 0.5 (noise that small is hard to see), above the quick scale's T = 0.1, so pass `--threshold 1`.

Writes results/<scale>/state_readings[_<schedule>].{png,json,csv}; runs are cached next to reproduce.py's (p = P reuses its
Figs. 8-9 runs).
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
    LABELS, RESULTS, SCALES, Scale, convergence, first_reach, moving_average, run_variant, state_stats, summarise)
from experiments.d2rl.reproduce import PAPER_BEST  # noqa: E402

DIFFUSION_STEPS = 6  # P of the SENPNN (Table II); p = P is Algorithm 1 as in reproduce.py


def _settings(scale: Scale, sexp_from: str | None, designs: tuple[str, ...]) -> dict[str, dict[str, dict]]:
    """{"sweep": {design: {"M", "eta"}}, "paper": {...}}; "sweep" only where a Fig. 7 sweep exists."""
    out = {"paper": {d: PAPER_BEST[d] for d in designs}}
    sweep = RESULTS / (sexp_from or scale.name) / "fig7.json"
    if sweep.exists():
        best = json.loads(sweep.read_text())
        out = {"sweep": {d: {"M": best[d]["best"]["M"], "eta": best[d]["best"]["eta"]} for d in designs}, **out}
    return out


def run_name(design: str, forward: int, choice: dict, schedule: str = "vp", threshold: float | None = None) -> str:
    """Cache name; p = P with the vp schedule is the name reproduce.py's Figs. 8-9 use, so those runs are shared."""
    suffix = ("" if forward == DIFFUSION_STEPS else f"_p{forward}") + ("" if schedule == "vp" else f"_{schedule}")
    suffix += "" if threshold is None else f"_T{threshold}"
    return f"{design}_sexp{suffix}_M{choice['M']}_eta{choice['eta']}"


def state_readings(scale: Scale, designs: tuple[str, ...], forward: tuple[int, ...], seeds: int,
                   sexp_from: str | None, out: Path, force: bool, schedule: str = "vp",
                   only: tuple[str, ...] | None = None, threshold: float | None = None) -> dict:
    """Runs (cached) and summarises every (design, (M, eta) setting, p); `only` keeps some settings ("sweep",
    "paper"). Writes state_readings[_<schedule>].{png,json,csv} under `out`."""
    settings = _settings(scale, sexp_from, designs)
    settings = {k: v for k, v in settings.items() if only is None or k in only}
    if not settings:
        raise ValueError(f"no (M, eta) setting left: {only} requested, {scale.name} has no Fig. 7 sweep")
    summary: dict = {"settings": settings, "forward_steps": list(forward), "state_schedule": schedule,
                     "state_threshold": threshold if threshold is not None else scale.hparams.get("state_threshold"),
                     "designs": {}}
    extra = {} if threshold is None else {"state_threshold": threshold}
    curves: dict = {}
    for d in designs:
        base = run_variant(scale, d, scale.config(d), scale.base_hparams(), seeds, force)
        runs = {"none": base}
        for label, choices in settings.items():
            c = choices[d]
            for p in forward:
                config = scale.config(d, True, state_forward_steps=None if p == DIFFUSION_STEPS else p,
                                      state_schedule=None if schedule == "vp" else schedule)
                hp = scale.base_hparams(chi_max=c["M"], chi_rate=c["eta"], **extra)
                runs[f"{label}_p{p}"] = run_variant(scale, run_name(d, p, c, schedule, threshold), config, hp, seeds,
                                                    force)
        stats = summarise(runs, scale, seeds)
        base_curve = np.nanmean(base["metrics"]["objective_mean"], 0)
        level = 0.95 * convergence(base_curve, scale.window)["plateau"]
        for name, run in runs.items():
            stats[name].update(state_stats(run, scale.window) if name != "none" else {})
            # the paper's Fig. 8 claim is about speed: the first epoch at 95% of the design's own plateau without S. Exp.
            stats[name]["epoch_to_95pct_of_none"] = first_reach(np.nanmean(run["metrics"]["objective_mean"], 0),
                                                                scale.window, level)
            if name != "none":
                label, p = name.rsplit("_p", 1)
                stats[name].update(setting=label, forward_steps=int(p), **settings[label][d])
        summary["designs"][d] = stats
        curves[d] = runs
    stem = "state_readings" + ("" if schedule == "vp" else f"_{schedule}")
    stem += "" if threshold is None else f"_T{threshold}"
    _plot(curves, settings, forward, scale, seeds, schedule, out / f"{stem}.png")
    (out / f"{stem}.json").write_text(json.dumps(summary, indent=1))
    with open(out / f"{stem}.csv", "w", newline="") as f:
        cols = ["design", "variant", "setting", "forward_steps", "M", "eta", "plateau", "per_seed_mean",
                "per_seed_std", "observed_plateau", "substituted_fraction", "state_gap", "epoch",
                "epoch_to_95pct_of_none", "seconds_per_epoch"]
        writer = csv.writer(f)
        writer.writerow(cols)
        for d, stats in summary["designs"].items():
            for name, s in stats.items():
                writer.writerow([d, name] + [s.get(c) for c in cols[2:]])
    return summary


def _plot(curves: dict, settings: dict, forward: tuple[int, ...], scale: Scale, seeds: int, schedule: str,
          path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, cols = list(settings), list(curves)
    fig, axes = plt.subplots(len(rows), len(cols), figsize=(4.6 * len(cols), 3.4 * len(rows)), squeeze=False,
                             sharex=True, sharey=True)
    for i, label in enumerate(rows):
        for j, d in enumerate(cols):
            ax = axes[i, j]
            for k, name in enumerate(["none"] + [f"{label}_p{p}" for p in forward]):
                ma = moving_average(curves[d][name]["metrics"]["objective_mean"], scale.window)
                mean = np.nanmean(ma, 0)
                p = None if name == "none" else int(name.rsplit("_p", 1)[1])
                text = "w/o S. Exp." if p is None else (f"p = {p} (Algorithm 1, all P)" if p == DIFFUSION_STEPS
                                                        else f"p = {p} of {DIFFUSION_STEPS} forward steps")
                ax.plot(np.arange(len(mean)), mean, color="k" if p is None else f"C{k}", label=text)
            c = settings[label][d]
            ax.set_title(f"{LABELS[d]}: M = {c['M']}, eta = {c['eta']} ({label})", fontsize=8)
            ax.set(xlabel="epoch", ylabel="MA sum rate C (bit/s/Hz)" if j == 0 else None)
            ax.legend(fontsize=7)
    fig.suptitle(f"State exploration with Mode II noising S^0 to step p of the {schedule} schedule ({seeds} seeds, "
                 f"seed-mean, MA window {scale.window}, {scale.name} scale)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="quick", choices=sorted(SCALES))
    parser.add_argument("--designs", nargs="+", default=["designed", "designed_gdm"], choices=sorted(PAPER_BEST))
    parser.add_argument("--forward", nargs="+", type=int, default=[1, 2, DIFFUSION_STEPS],
                        help=f"Mode II forward steps p in [1, {DIFFUSION_STEPS}] ({DIFFUSION_STEPS}: Algorithm 1 as "
                             f"reproduce.py runs it)")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--sexp-from", choices=sorted(SCALES), default=None, metavar="SCALE",
                        help="take the swept (M, eta) from SCALE's Fig. 7 (default: this scale's, if it has one)")
    parser.add_argument("--state-schedule", default="vp", choices=["vp", "linear", "cosine"],
                        help="the SENPNN's noise schedule (vp: as reproduce.py; linear: beta 1e-4 .. 0.02, so even "
                             "p = P keeps 97%% of S^0)")
    parser.add_argument("--settings", nargs="+", choices=["sweep", "paper"], default=None,
                        help="which (M, eta) settings to run (default: both where available)")
    parser.add_argument("--threshold", type=float, default=None,
                        help="the SENPNN loss threshold T (default: the scale's, 0.1 at the quick scale). The linear "
                             "schedule's eps-loss stays near 0.5 (the noise is hard to see at beta 1e-4 .. 0.02), so "
                             "with T = 0.1 chi never grows: use e.g. --threshold 1")
    parser.add_argument("--force", action="store_true", help="retrain instead of using cached runs")
    args = parser.parse_args(argv)
    if args.threshold is not None and not args.threshold >= 0:
        parser.error(f"--threshold must be >= 0, got {args.threshold}")
    if args.seeds < 1:
        parser.error("--seeds must be >= 1")
    if any(not 1 <= p <= DIFFUSION_STEPS for p in args.forward):
        parser.error(f"--forward: every p must be in [1, {DIFFUSION_STEPS}], got {args.forward}")
    scale = SCALES[args.scale]
    out = RESULTS / scale.name
    out.mkdir(parents=True, exist_ok=True)
    summary = state_readings(scale, tuple(args.designs), tuple(dict.fromkeys(args.forward)), args.seeds,
                             args.sexp_from, out, args.force, args.state_schedule,
                             None if args.settings is None else tuple(args.settings), args.threshold)
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
