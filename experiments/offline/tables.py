"""Markdown tables of experiments/offline/results/*.json (what README.md shows): `python experiments/offline/tables.py`."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def _ms(d: dict, scale: float = 1.0, digits: int = 4) -> str:
    return f"{d['mean'] * scale:.{digits}f} ± {d['std'] * scale:.{digits}f}"


def msr80(r: dict) -> str:
    ref = r["reference"]
    lines = [f"Dataset: {r['dataset']['size']} transitions; behaviour policy {ref['behaviour']:.4f} of the optimum, "
             f"equal power {ref['equal-power']:.4f}.", "",
             "| algorithm | fraction of the water-filling optimum | updates/s (4 seeds, 1 core) | greedy actions/s (batch 256) |",
             "|---|---|---|---|"]
    for label, e in r["results"].items():
        lines.append(f"| {label} | {_ms(e['final']['optimum_fraction'])} | {e['updates_per_s']:.0f} | "
                     f"{e['actions_per_s_batch256']:,.0f} |")
    return "\n".join(lines)


def aigc(r: dict) -> str:
    ref = r["reference"]
    lines = [f"Dataset: {r['dataset']['size']} transitions; prophet {ref['prophet']:.1f}, behaviour (round-robin + "
             f"random) {ref['behaviour']:.1f} per episode.", "",
             "| algorithm | episode return | fraction of prophet | updates/s | greedy actions/s (batch 256) |",
             "|---|---|---|---|---|"]
    for label, e in r["results"].items():
        lines.append(f"| {label} | {_ms(e['final']['return_mean'], digits=1)} | {_ms(e['fraction_of_prophet'], digits=3)} "
                     f"| {e['updates_per_s']:.0f} | {e['actions_per_s_batch256']:,.0f} |")
    return "\n".join(lines)


def pendulum(r: dict) -> str:
    ref = r["reference"]
    lines = [f"Dataset: {r['dataset']['size']} transitions from SAC stopped after {ref['sac_env_steps']} env steps "
             f"(greedy return {ref['sac_greedy_return_at_stop']:.0f}), sampled stochastically: behaviour "
             f"{ref['behaviour']:.0f} per episode; random {ref['random']:.0f}.", "",
             "| algorithm | episode return | updates/s |", "|---|---|---|"]
    for label, e in r["results"].items():
        lines.append(f"| {label} | {_ms(e['final']['return_mean'], digits=1)} | {e['updates_per_s']:.0f} |")
    return "\n".join(lines)


def synthetic(r: dict) -> str:
    g = r["fidelity_generated"]
    h = r["fidelity_heldout_real"]
    lines = [f"Sizes: 10% = {r['sizes']['small']}, generated {r['sizes']['generated']}, 100% = {r['sizes']['full']}.",
             "", "| fidelity | generated | held-out real |", "|---|---|---|"]
    for k in ("reward_defined_fraction", "reward_mae", "reward_rel_error", "valid_fraction", "mean_gap", "std_gap"):
        lines.append(f"| {k} | {g.get(k, float('nan')):.4f} | {h.get(k, float('nan')):.4f} |")
    lines.append(f"| in_support_fraction (all 80 gains in the simulator's range) | {g['in_support_fraction']:.4f} | 1 |")
    lines.append(f"| per-feature in support | {g['per_feature_in_support']:.4f} | 1 |")
    lines += ["", "| run | fraction of the optimum |", "|---|---|"]
    for label, e in r["results"].items():
        if "final" in e:
            lines.append(f"| {label} | {_ms(e['final']['optimum_fraction'])} |")
        else:
            lines.append(f"| {label} | gap {e['gap']:.4f}, recovered {e['value']:.2f} |")
    return "\n".join(lines)


def online(r: dict) -> str:
    lines = ["| minibatches | greedy fraction of the optimum (final) | wall s | iterations to 95% of the real-only best |",
             "|---|---|---|---|"]
    for name in ("real only", "50% generated"):
        e = r[name]
        lines.append(f"| {name} | {_ms(e['final_greedy_optimum_fraction'])} | {e['seconds']:.0f} | "
                     f"{r['iterations_to_95pct_of_real_best'][name]} |")
    return "\n".join(lines)


def main() -> None:
    for part, fn in (("msr80", msr80), ("aigc", aigc), ("aigc-variants", aigc), ("pendulum", pendulum), ("synthetic", synthetic),
                     ("online", online)):
        path = RESULTS / f"{part}.json"
        if path.exists():
            print(f"### {part}\n\n{fn(json.loads(path.read_text()))}\n")


if __name__ == "__main__":
    main()
