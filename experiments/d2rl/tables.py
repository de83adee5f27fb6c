"""Print the README's Markdown tables from the JSON that `reproduce.py` wrote for one scale.

    python experiments/d2rl/tables.py --scale quick

Columns (see README "Convergence"): plateau = seed-mean MA sum rate (bit/s/Hz) over the last 10% of epochs;
per seed = mean ± std over seeds of each seed's last-10% mean; lowest seed = the smallest of them; conv. = convergence epoch (2% band);
95% = first epoch at 95% of the figure's best plateau; ms/epoch = one seed's share of the vmapped program's CPU time;
total = conv. x ms/epoch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

# run as a script (python experiments/d2rl/<name>.py): the repository root holds the `experiments` package
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.d2rl.common import LABELS as DESIGN_LABELS  # noqa: E402
from experiments.d2rl.common import RESULTS  # noqa: E402

LABELS = {"a_without_gdm": "A. w/o GDM (MLP actor)", "a_with_gdm": "A. w/ GDM (DM-DDPG)", **DESIGN_LABELS}


def _per_seed(v: dict) -> str:
    return f"{v['per_seed_mean']:.3f} ± {v['per_seed_std']:.3f}" if "per_seed_mean" in v else "-"


def _observed(v: dict) -> str:
    if "observed_plateau" not in v:
        return "-"
    return (f"{v['observed_plateau']:.3f} ({v['observed_per_seed_mean']:.3f} ± {v['observed_per_seed_std']:.3f}; "
            f"{v['substituted_fraction']:.0%})")


def convergence_table(summary: dict) -> str:
    """Figs. 2-3 / 4-6: one row per variant."""
    rows = ["| variant | plateau | per seed | lowest seed | conv. | 95% | ms/epoch | total (s) |",
            "|---|---|---|---|---|---|---|---|"]
    for name, v in summary.items():
        if not isinstance(v, dict) or "plateau" not in v:
            continue
        reach = v["epoch_to_95pct_best"]
        lowest = f"{min(v['per_seed']):.3f}" if "per_seed" in v else "-"
        rows.append(f"| {LABELS.get(name, name)} | {v['plateau']:.3f} | {_per_seed(v)} | {lowest} | {v['epoch']} | "
                    f"{'never' if reach is None else reach} | {1e3 * v['seconds_per_epoch']:.2f} | "
                    f"{v['total_seconds_to_convergence']:.1f} |")
    return "\n".join(rows)


def state_table(summary: dict) -> str:
    """Figs. 8-9: each design without -> with state exploration."""
    rows = ["| design | plateau w/o -> with | per seed w/o -> with | with, true-state steps only (substituted) | "
            "conv. w/o -> with | ms/epoch w/o -> with |", "|---|---|---|---|---|---|"]
    for name, base in summary.items():
        sexp = summary.get(f"{name}_sexp")
        if name.endswith("_sexp") or sexp is None:
            continue
        ratio = sexp["seconds_per_epoch"] / base["seconds_per_epoch"] - 1
        rows.append(f"| {LABELS.get(name, name)} | {base['plateau']:.3f} -> {sexp['plateau']:.3f} | "
                    f"{_per_seed(base)} -> {_per_seed(sexp)} | {_observed(sexp)} | {base['epoch']} -> {sexp['epoch']} | "
                    f"{1e3 * base['seconds_per_epoch']:.2f} -> {1e3 * sexp['seconds_per_epoch']:.2f} "
                    f"({ratio:+.0%}) |")
    return "\n".join(rows)


def sweep_table(summary: dict) -> str:
    """Fig. 7: per design, the (M, eta) cells' summed gradient weight and plateau."""
    rows = ["| design | baseline weight (w/o S. Exp.) | cells' weight | best cell (M, eta) | best plateau |",
            "|---|---|---|---|---|"]
    for name, s in summary.items():
        weights = [c["weight"] for c in s["cells"]]
        rows.append(f"| {LABELS.get(name, name)} | {1e3 * s['baseline']['weight']:.2f}e-3 | "
                    f"{1e3 * min(weights):.2f}-{1e3 * max(weights):.2f}e-3 | ({s['best']['M']}, {s['best']['eta']}) | "
                    f"{s['best']['plateau']:.3f} |")
    return "\n".join(rows)


def _number(x: float | None) -> str:
    """3 decimals; "-" where undefined (None or NaN, e.g. C of true-state steps when every step was substituted)."""
    return "-" if x is None or x != x else f"{x:.3f}"


def readings_table(summary: dict) -> str:
    """state_readings.py: per design and (M, eta) setting, no state exploration and each Mode II depth p."""
    rows = ["| design | S. Exp. | (M, eta) | plateau | per seed | true-state steps | substituted | state gap | "
            "95% of w/o |", "|---|---|---|---|---|---|---|---|---|"]
    for design, stats in summary["designs"].items():
        for name, v in stats.items():
            reach = v.get("epoch_to_95pct_of_none")
            reach = "never" if reach is None else reach
            if name == "none":
                rows.append(f"| {LABELS.get(design, design)} | none | - | {v['plateau']:.3f} | {_per_seed(v)} | - | - "
                            f"| - | {reach} |")
                continue
            gap = "-" if v.get("state_gap") is None else f"{v['state_gap']:.2f}"
            depth = f"p = {v['forward_steps']}" + (" (all P)" if name.endswith("_p6") else "")
            rows.append(f"| {LABELS.get(design, design)} | {depth} | ({v['M']}, {v['eta']}) {v['setting']} | "
                        f"{v['plateau']:.3f} | {_per_seed(v)} | {_number(v['observed_plateau'])} | "
                        f"{v['substituted_fraction']:.0%} | {gap} | {reach} |")
    return "\n".join(rows)


def policy_table(result: dict) -> str:
    """policy_eval.py: each trained actor's read-outs on fresh slots, against the MLP actor's greedy policy."""
    rows = ["| actor | read-out | sum rate (mean ± std over seeds) | lowest seed | minus MLP (Welch t, p) |",
            "|---|---|---|---|---|"]
    for name, v in result["readouts"].items():
        c = result["comparisons"].get(name)
        versus = "-" if c is None else (f"{c['difference']:+.3f} ({c['welch_t']:.1f}, {c['p_value']:.2g})"
                                        + ("" if c["reference"] == f"MLP {v['readout']}" else f" vs {c['reference']}"))
        rows.append(f"| {name.split(': ')[0]} | {v['readout']} | {v['mean']:.3f} ± {v['std']:.3f} | "
                    f"{min(v['per_seed']):.3f} | {versus} |")
    if "training" in result:
        rows += ["", "| actor | training plateau | conv. | 95% of best |", "|---|---|---|---|"]
        for label, t in result["training"].items():
            reach = "never" if t["epoch_to_95pct_best"] is None else t["epoch_to_95pct_best"]
            rows.append(f"| {label} | {t['plateau']:.3f} | {t['epoch']} | {reach} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="quick")
    args = parser.parse_args(argv)
    out = RESULTS / args.scale
    if not out.is_dir():
        parser.error(f"--scale: no results in {out} (run reproduce.py --scale {args.scale} first)")
    readings = [(p.stem, readings_table) for p in sorted(out.glob("state_readings*.json"))]
    for name, fmt in (("fig2_3", convergence_table), ("fig4_6", convergence_table), ("fig7", sweep_table),
                      ("fig8_9", state_table), *readings, ("policy_eval", policy_table)):
        path = Path(out / f"{name}.json")
        if path.exists():
            print(f"\n**{name}**\n\n{fmt(json.loads(path.read_text()))}")
            if "baselines" in (data := json.loads(path.read_text())):
                print("\nreference levels: " + ", ".join(f"{k} {v:.3f}" for k, v in data["baselines"].items()))


if __name__ == "__main__":
    main()
