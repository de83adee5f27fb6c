"""Command line: `jaxdiff-rl {demo,train,eval,plot,envs} [options]` (no sub-command: `demo`).

- `demo` (default): a vmapped sweep (8 seeds x 2 learning rates) of the diffusion agent DM-TD3 on low-SNR power
  allocation (`msr-3-lowsnr`), from the untrained policy to within ~1% of the water-filling optimum, against the
  heuristics, plus the speed ratio against the same runs one after another (see `jaxdiff_rl.app.demo`).
- `train`: any algorithm on any environment, several seeds, any hyperparameter; a comma list
  (`--lr-actor 1e-4,3e-4`) becomes a sweep axis; everything runs as one vmapped program, in chunks with a
  progress bar, metrics to `<out>/metrics.jsonl` and orbax checkpoints; `--resume` continues bit-identically.
- `eval`: greedy evaluation of the last checkpoint of a `train` run.
- `plot`: mean ± std learning curves over seeds from one or more run folders (PNG).
- `envs`: lists the environments and, for each, rolls out `--num-envs` parallel episodes of every baseline
  policy (random, heuristics, exact optimum / upper bound): mean return, fraction of the reference, steps/s.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from pathlib import Path
from typing import Sequence

import jax

import envs
from jaxdiff_rl.train.rollout import episode_steps, timed_rollout

__all__ = ["main", "run_envs_job"]


def run_envs_job(
    names: Sequence[str], num_envs: int, min_steps: int, seed: int, out_dir: Path, show_progress: bool = True
) -> list[dict]:
    """Roll out every baseline policy of every environment; returns one row per (env, policy)."""
    from tqdm import tqdm

    tasks = []
    for name in names:
        env, params = envs.make(name)
        for policy_name, policy in env.policies().items():
            tasks.append((name, env, params, policy_name, policy))
    rows = []
    bar = tqdm(tasks, desc="rollouts", unit="policy", disable=not show_progress, file=sys.stderr)
    for name, env, params, policy_name, policy in bar:
        bar.set_postfix_str(f"{name}/{policy_name}")
        steps = episode_steps(env, params, min_steps)
        result = timed_rollout(env, params, policy, jax.random.key(seed), num_envs, steps)
        rows.append(
            dict(
                env=name,
                policy=policy_name,
                reference=policy_name == env.reference_policy,
                mean_return=result.stats.mean_return,
                std_return=result.stats.std_return,
                episodes=int(result.stats.episodes),
                steps=int(result.stats.steps),
                steps_per_s=result.steps_per_s,
                compile_s=result.compile_s,
            )
        )
    for name in names:
        env_rows = [r for r in rows if r["env"] == name]
        ref = next((r["mean_return"] for r in env_rows if r["reference"]), None)
        for r in env_rows:
            # ratio to the reference's return; for cost problems (negative returns) it is DiffSG's exceed ratio
            r["fraction_of_reference"] = r["mean_return"] / ref if ref is not None and abs(ref) > 1e-6 else None
    return rows


def _print_table(rows: list[dict]) -> None:
    header = (
        f"{'env':11s} {'policy':14s} {'mean return':>12s} {'± std':>9s} {'episodes':>9s} "
        f"{'of ref.':>8s} {'steps/s':>10s} {'compile s':>9s}"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        ratio = r["fraction_of_reference"]
        frac = "n/a" if ratio is None else f"{100 * ratio:.1f}%" if abs(ratio) < 10 else f"{ratio:.3g}x"
        marker = " *" if r["reference"] else ""
        print(
            f"{r['env']:11s} {r['policy'] + marker:14s} {r['mean_return']:12.4g} {r['std_return']:9.3g} "
            f"{r['episodes']:9d} {frac:>8s} {r['steps_per_s']:10.3g} {r['compile_s']:9.2f}"
        )
    print("* reference: exact optimum (msr water-filling, co enumeration, nu grid + refinement), upper bound (aigc "
          "prophet) or strong baseline (fd-isac MRT + water-filling + MMSE); for costs (co) the ratio is the exceed "
          "ratio, lower is better")


def _plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(r["env"] for r in rows))
    fig, axes = plt.subplots(1, len(names), figsize=(3.6 * len(names), 3.4), squeeze=False)
    for ax, name in zip(axes[0], names):
        env_rows = [r for r in rows if r["env"] == name]
        labels = [r["policy"] for r in env_rows]
        means = [r["mean_return"] for r in env_rows]
        stds = [r["std_return"] for r in env_rows]
        colors = ["tab:green" if r["reference"] else "tab:blue" for r in env_rows]
        bars = ax.barh(labels, means, xerr=stds, color=colors, alpha=0.85)
        ax.bar_label(bars, labels=[f"{m:.3g}" for m in means], padding=3, fontsize=7)
        ax.margins(x=0.25)
        ax.axvline(0.0, color="k", lw=0.6)
        ax.set_title(name)
        ax.set_xlabel("mean episode return")
        ax.invert_yaxis()
    fig.suptitle("Baseline policies: mean ± std episode return (green: optimum / upper bound)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _cmd_envs(args: argparse.Namespace) -> int:
    names = args.env or envs.names()
    unknown = [n for n in names if n not in envs.names()]
    if unknown:
        raise SystemExit(f"error: unknown environment(s) {unknown}; valid names: {', '.join(envs.names())}")
    if args.num_envs < 1 or args.min_steps < 1:
        raise SystemExit("error: --num-envs and --min-steps must be >= 1")
    print(f"jaxdiff-rl envs — {jax.devices()[0].platform.upper()} ({jax.device_count()} device(s)), jax {jax.__version__}")
    print("environments:")
    for name in names:
        env, params = envs.make(name)
        print(
            f"  {name:11s} obs {env.observation_space(params)!r:32s} action {env.action_space(params)!r}"
            f"  ~{env.expected_episode_length(params):.0f} steps/episode"
        )
    rows = run_envs_job(names, args.num_envs, args.min_steps, args.seed, Path(args.out), not args.no_progress)
    _print_table(rows)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"num_envs": args.num_envs, "seed": args.seed, "jax": jax.__version__, "device": str(jax.devices()[0]),
            "platform": platform.platform()}
    (out / "summary.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2))
    _plot(rows, out / "summary.png")
    print(f"wrote {out / 'summary.json'} and {out / 'summary.png'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="jaxdiff-rl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    p_envs = sub.add_parser("envs", help="list environments and score baseline policies")
    p_envs.add_argument("--env", nargs="+", help=f"environments (default: all of {envs.names()})")
    p_envs.add_argument("--num-envs", type=int, default=4096, help="parallel episodes per policy (default 4096)")
    p_envs.add_argument("--min-steps", type=int, default=64,
                        help="minimum scan length per lane (default 64; longer episodes get a whole episode)")
    p_envs.add_argument("--seed", type=int, default=0)
    p_envs.add_argument("--out", default="runs/envs", help="output folder for summary.json / summary.png")
    p_envs.add_argument("--no-progress", action="store_true", help="no progress bar")
    p_envs.set_defaults(func=_cmd_envs)
    from jaxdiff_rl.app.cli_train import add_train_commands

    add_train_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["demo", *argv]
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (ValueError, TypeError, FloatingPointError) as exc:
        # invalid settings are reported before anything compiles; a NaN loss stops the run (checkpoints remain)
        print(f"jaxdiff-rl {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
