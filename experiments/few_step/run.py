"""Few-step generative actors, the entropy estimate of continuous D2SAC, and Q-gradient guided acting (issue 28).

    python experiments/few_step/run.py --part rl          # D2SAC (aigc), DM-DDPG (msr-3, msr-80) per generator
    python experiments/few_step/run.py --part optimizer   # generative optimizer on msr-80 and NU per generator
    python experiments/few_step/run.py --part entropy     # continuous D2SAC with / without the entropy terms
    python experiments/few_step/run.py --part qguide      # greedy return of DM-DDPG on msr-80 at w in {0 .. 100}
    python experiments/few_step/run.py --part entropy_target   # does auto-alpha bring the entropy to its target?
    python experiments/few_step/run.py --part ppo         # DM-PPO: DDPM chain vs a stochastic flow actor
    add --quick for a minute-long pipeline check (not a result)

Each part writes results/<part>.json; README.md holds the tables. CPU-sized budgets (the same for every
generator within a table), seeds vmapped in one program per setting.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

from jaxdiff_rl.app.experiment import TrainSpec, build, evaluate_spec, train_spec
from jaxdiff_rl.app.xla_cpu import pin_to_one_core

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))  # the repository root, for experiments.diffsg
RESULTS = HERE / "results"

#: (label, generator, steps or None for the agent's reference T)
GENERATORS = (("ddpm", "ddpm", None), ("flow-2", "flow", 2), ("consistency-1", "consistency", 1),
              ("consistency-2", "consistency", 2))

RL_TASKS = {
    # D2SAC on AIGC provider selection: experiments/agents/aigc_d2sac.py's CPU settings, a shorter budget
    "d2sac/aigc": dict(algo="d2sac", env="aigc", seeds=4, hidden=(64, 64), score="return_mean", eval_steps=1200,
                       static=dict(num_envs=4, steps_per_iter=250, updates_per_iter=250, num_iterations=40,
                                   batch_size=128, buffer_size=100_000)),
    # DM-DDPG on power allocation: experiments/agents/msr3_diffusion.py's settings
    "dm_ddpg/msr-3": dict(algo="dm_ddpg", env="msr-3", seeds=8, hidden=(64, 64), score="optimum_fraction",
                          eval_steps=256, static=dict(num_envs=16, steps_per_iter=1, updates_per_iter=4,
                                                      num_iterations=100, batch_size=64, buffer_size=8192),
                          hparams=dict(lr_actor=1e-3, lr_critic=1e-3)),
    "dm_ddpg/msr-80": dict(algo="dm_ddpg", env="msr-80", seeds=4, hidden=(128, 128), score="optimum_fraction",
                           eval_steps=64, static=dict(num_envs=16, steps_per_iter=1, updates_per_iter=4,
                                                      num_iterations=400, batch_size=128, buffer_size=16384),
                           # lr_actor 3e-4: at 1e-3 the one-step actors diverge on 2-3 of 4 seeds (README)
                           hparams=dict(lr_actor=3e-4, lr_critic=1e-3)),
}


def _spec(task: dict, generator: str, steps: int | None, quick: bool, logit_scale: float | None = None,
          **static) -> TrainSpec:
    st = {**task["static"], **static}
    if quick:
        st["num_iterations"] = max(2, st["num_iterations"] // 20)
    return TrainSpec(algo=task["algo"], env=task["env"], num_seeds=2 if quick else task["seeds"], hidden=task["hidden"],
                     diffusion_steps=steps, generator=generator, logit_scale=logit_scale, static=st, hparams=dict(task.get("hparams", {})),
                     env_overrides=dict(task.get("env_overrides", {})))


def _train_and_score(spec: TrainSpec, score: str, eval_steps: int) -> tuple[dict, object]:
    t0 = time.perf_counter()
    res = train_spec(spec, None, progress=False)
    seconds = time.perf_counter() - t0
    trainer, _, hp, _ = build(spec)
    ev = evaluate_spec(trainer, res.state, hp, num_steps=eval_steps)
    values = np.asarray(ev[score])
    row = {"per_seed": values.tolist(), "mean": float(values.mean()), "std": float(values.std()),
           "train_seconds": seconds, "env_steps_per_seed": int(res.metrics["env_steps"][0, -1])}
    for key in ("entropy", "alpha"):
        if key in res.metrics:
            row[f"final_{key}"] = np.asarray(res.metrics[key][:, -1]).tolist()
    return row, (res, hp)


def part_rl(quick: bool, tasks: list[str] | None = None) -> dict:
    """Every RL task x generator; with `tasks`, only those, merged into the existing results/rl.json."""
    path = RESULTS / "rl.json"
    out: dict = {}
    if tasks and path.exists() and not quick:
        out = {k: v for k, v in json.loads(path.read_text()).items() if k in RL_TASKS}
    for name, task in RL_TASKS.items():
        if tasks and name not in tasks:
            continue
        rows = {}
        variants = [(label, gen, steps, None) for label, gen, steps in GENERATORS]
        if name == "d2sac/aigc":  # few-step discrete actors with sharper logits (ActorConfig.logit_scale)
            variants += [("flow-2 logit x5", "flow", 2, 5.0), ("consistency-1 logit x5", "consistency", 1, 5.0)]
        for label, gen, steps, scale in variants:
            row, _ = _train_and_score(_spec(task, gen, steps, quick, logit_scale=scale), task["score"],
                                      task["eval_steps"])
            rows[label] = row
            print(f"{name:15s} {label:14s} {task['score']} {row['mean']:.4f} ± {row['std']:.4f} "
                  f"({row['train_seconds']:.0f} s)", flush=True)
        out[name] = rows
    return out


def part_qguide(quick: bool) -> dict:
    """Train DM-DDPG (DDPM actor) on msr-80 once, then evaluate its greedy policy with Q-gradient guided
    denoising at w in {0, 0.1, 1, 10, 100} (q_guidance is static, so a second trainer with it on reads the same state)."""
    task = RL_TASKS["dm_ddpg/msr-80"]
    spec = _spec(task, "ddpm", None, quick)
    row, (res, hp) = _train_and_score(spec, task["score"], task["eval_steps"])
    guided = _spec(task, "ddpm", None, quick, q_guidance=True)
    trainer, _, _, _ = build(guided)
    out = {"unguided_trainer": row}
    for w in (0.0, 0.1, 1.0, 10.0, 100.0):
        ev = evaluate_spec(trainer, res.state, hp.replace(q_guide_scale=np.full_like(hp.q_guide_scale, w)),
                           num_steps=task["eval_steps"])
        v = np.asarray(ev[task["score"]])
        out[f"w={w}"] = {"per_seed": v.tolist(), "mean": float(v.mean()), "std": float(v.std())}
        print(f"q-guided w={w}: {task['score']} {v.mean():.4f} ± {v.std():.4f}", flush=True)
    return out


ENTROPY_TASKS = {
    "msr-80": dict(algo="d2sac", env="msr-80", seeds=8, hidden=(64, 64), score="optimum_fraction", eval_steps=64,
                   static=dict(num_envs=16, steps_per_iter=1, updates_per_iter=2, num_iterations=300, batch_size=64,
                               buffer_size=16384, n_step=1),
                   hparams=dict(lr_actor=1e-3, lr_critic=1e-3, gamma=0.95, lr_alpha=3e-3, alpha=0.05)),
    "fd-isac": dict(algo="d2sac", env="fd-isac", seeds=8, hidden=(64, 64), score="optimum_fraction", eval_steps=64,
                    env_overrides=dict(one_shot=True, num_dl=2, num_ul=2, num_tx=2, num_rx=2),
                    static=dict(num_envs=16, steps_per_iter=1, updates_per_iter=2, num_iterations=300,
                                batch_size=64, buffer_size=16384, n_step=1),
                    hparams=dict(lr_actor=1e-3, lr_critic=1e-3, gamma=0.95, lr_alpha=3e-3, alpha=0.05)),
}


def part_entropy(quick: bool) -> dict:
    out: dict = {}
    for name, task in ENTROPY_TASKS.items():
        rows = {}
        for label, extra in (("without", {}),
                             ("with (N=8, auto-alpha)", dict(entropy_samples=8, auto_alpha=True,
                                                            entropy_in_target=True))):
            row, _ = _train_and_score(_spec(task, "ddpm", None, quick, **extra), task["score"], task["eval_steps"])
            rows[label] = row
            ent = np.mean(row.get("final_entropy", [np.nan]))
            print(f"{name:8s} {label:24s} {task['score']} {row['mean']:.4f} ± {row['std']:.4f}  entropy {ent:.2f}"
                  f"  ({row['train_seconds']:.0f} s)", flush=True)
        out[name] = rows
    return out


def part_entropy_target(quick: bool) -> dict:
    """Does auto-alpha drive the estimated entropy to its target? Continuous D2SAC (T = 5) with the mixture
    entropy (N = 16 draws, K = 3) on msr-3 (A = 3) and fd-isac (A = 18), default target -A, a longer budget than
    `part_entropy`; writes the per-iteration entropy and alpha (seed mean and std) and a plot."""
    from jaxdiff_rl.app.plot import plot_curves

    out: dict = {}
    curves = {}
    tasks = {"msr-3": dict(ENTROPY_TASKS["msr-80"], env="msr-3", static=dict(ENTROPY_TASKS["msr-80"]["static"],
                                                                          num_iterations=1500)),
             "fd-isac": dict(ENTROPY_TASKS["fd-isac"], static=dict(ENTROPY_TASKS["fd-isac"]["static"],
                                                                  num_iterations=1500))}
    for name, task in tasks.items():
        task = dict(task, seeds=4, hparams=dict(task["hparams"], lr_alpha=1e-2))
        spec = _spec(task, "ddpm", None, quick, entropy_samples=16, auto_alpha=True, entropy_in_target=True)
        row, (res, _) = _train_and_score(spec, task["score"], task["eval_steps"])
        ent, alpha = np.asarray(res.metrics["entropy"]), np.asarray(res.metrics["alpha"])
        action_dim = 3 if name == "msr-3" else 18
        tail = ent[:, -max(1, ent.shape[1] // 10):]
        row.update(target=-action_dim, entropy_last10pct_mean=float(tail.mean()),
                   entropy_last10pct_std_over_seeds=float(tail.mean(1).std()),
                   entropy_curve_mean=ent.mean(0)[::10].tolist(), alpha_curve_mean=alpha.mean(0)[::10].tolist())
        out[name] = row
        curves[f"{name} (target {-action_dim})"] = {"entropy_minus_target": ent + action_dim,
                                                    "env_steps": res.metrics["env_steps"]}
        print(f"{name:8s} entropy (last 10%) {tail.mean():.2f} vs target {-action_dim}; final alpha "
              f"{alpha[:, -1].mean():.4f}; {task['score']} {row['mean']:.4f} ± {row['std']:.4f}", flush=True)
    plot_curves(curves, "entropy_minus_target", RESULTS / "entropy_target.png", reference_lines={"target": 0.0},
                smooth=10, title="continuous D2SAC, auto-alpha: estimated entropy - target (4 seeds)")
    return out


def part_optimizer(quick: bool, settings: str = "quick") -> dict:
    """Single-sample exceed ratio of the generative optimizer (DiffSG's metric) per generator, at the DiffSG
    reproduction's quick settings, for the CFG weights w = 0 and DiffSG's 500. Consistency models are trained by
    consistency training (no teacher) and by distillation (CD) from the flow-10 models."""
    from experiments.diffsg.common import (MEDIUM, QUICK, exceed_ratios, finite_mean, gdm_config, load_data,
                                           train_gdm_seeds)
    from jaxdiff_rl.optimize import GDMHparams, GenerativeOptimizer

    base = {"quick": QUICK, "medium": MEDIUM}[settings]
    s = dict(base, epochs=4 if quick else base["epochs"])
    out: dict = {}
    for problem in ("msr-80", "nu"):
        train, test = load_data(problem, s["train_scale"])
        rows = {}
        teacher = None
        for label, gen, steps in (("ddpm-20", "ddpm", 20), ("flow-2", "flow", 2), ("flow-10", "flow", 10),
                                  ("consistency-1", "consistency", 1), ("consistency-2", "consistency", 2),
                                  ("consistency-1 CD", "consistency", 1), ("consistency-2 CD", "consistency", 2)):
            config = gdm_config(problem, train, s["epochs"], s["hidden"], generator=gen, num_steps=steps,
                                prediction="x0" if problem == "nu" and gen == "ddpm" else "eps")
            hp = GDMHparams()
            if label.endswith("CD"):  # consistency distillation from the flow-10 models, seed by seed
                opt = GenerativeOptimizer(config)
                x, y = jax.numpy.asarray(train["x"]), jax.numpy.asarray(train["y"])
                t0 = time.perf_counter()
                states, _ = jax.vmap(lambda k, ts: opt._distill(k, x, y, hp, teacher[0], ts))(
                    jax.random.split(jax.random.key(42), s["seeds"]), teacher[1])
                jax.block_until_ready(states)
                seconds = time.perf_counter() - t0
            else:
                opt, states, _, seconds = train_gdm_seeds(problem, train, config, hp, s["seeds"])
            if label == "flow-10":
                teacher = (opt, states)
            row = {"train_seconds": seconds}
            for w in (0.0, 500.0):
                hw = hp.replace(cfg_weight=w)
                ratios = [exceed_ratios(problem, opt, jax.tree_util.tree_map(lambda a: a[i], states), test, hw,
                                        jax.random.key(7)) for i in range(s["seeds"])]
                means = [finite_mean(r) for r in ratios]
                row[f"w={w:g}"] = {"per_seed": means, "mean": float(np.mean(means)), "std": float(np.std(means))}
            rows[label] = row
            print(f"{problem:7s} {label:14s} exceed w=0 {row['w=0']['mean']:.4f}  w=500 {row['w=500']['mean']:.4f}"
                  f"  ({seconds:.0f} s)", flush=True)
        out[problem] = rows
    return out


def part_ppo(quick: bool) -> dict:
    """DM-PPO with its DDPM chain (T = 5) vs a stochastic flow actor (K Euler steps, kernel std = min_std = 0.1)
    on msr-3 and msr-3-lowsnr: experiments/on_policy/ppo_baselines.py's settings and runner, 8 seeds."""
    from experiments.on_policy import ppo_baselines as pb

    out: dict = {}
    for env_name, total in (("msr-3", 200_000), ("msr-3-lowsnr", 400_000)):
        for label, extra in (("ddpm T=5", {}), ("flow K=2", dict(generator="flow", diffusion_steps=2)),
                             ("flow K=3", dict(generator="flow", diffusion_steps=3)),
                             ("flow K=5", dict(generator="flow", diffusion_steps=5))):
            name = f"dm_ppo {env_name} {label}"
            pb.PROBLEMS[name] = (env_name, dict(algo="dm_ppo", num_envs=64, num_steps=8,
                                                total_timesteps=total // (20 if quick else 1), **extra),
                                 dict(lr=1e-3, ent_coef=0.0, gamma=0.0), (16, 256), "optimum_fraction")
            row, _ = pb.run_problem(name)
            out[name] = {k: row[k] for k in ("greedy_per_seed", "greedy_mean", "greedy_std", "env_steps_per_seed",
                                             "run_s", "env_steps_per_s", "seeds")}
    return out


PARTS = {"rl": part_rl, "optimizer": part_optimizer, "entropy": part_entropy, "qguide": part_qguide,
         "entropy_target": part_entropy_target, "ppo": part_ppo}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=sorted(PARTS), required=True)
    ap.add_argument("--quick", action="store_true", help="a pipeline check with tiny budgets (not a result)")
    ap.add_argument("--tasks", nargs="*", choices=sorted(RL_TASKS), help="--part rl: rerun only these tasks")
    ap.add_argument("--settings", choices=["quick", "medium"], default="quick",
                    help="--part optimizer: the DiffSG reproduction's quick (20%% data, 40 epochs) or medium (50%%, "
                         "100 epochs, 256-wide) settings")
    args = ap.parse_args()
    pin_to_one_core()
    part = PARTS[args.part]
    if args.part == "rl":
        rows = part(args.quick, args.tasks)
    elif args.part == "optimizer":
        rows = part(args.quick, args.settings)
    else:
        rows = part(args.quick)
    result = {"part": args.part, "quick": args.quick, **rows}
    RESULTS.mkdir(parents=True, exist_ok=True)
    suffix = "-medium" if args.part == "optimizer" and args.settings == "medium" else ""
    path = RESULTS / f"{args.part}{suffix}{'-quick' if args.quick else ''}.json"
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
