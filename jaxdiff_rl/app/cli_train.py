"""`jaxdiff-rl train | eval | plot | demo | dataset` (argparse sub-commands; see `jaxdiff_rl.app.cli`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

__all__ = ["add_train_commands", "parse_list"]


def parse_list(text: str) -> float | list[float]:
    """"3e-4" -> 3e-4; "1e-4,3e-4" -> [1e-4, 3e-4] (a sweep axis)."""
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number or a comma list of numbers, got {text!r}") from exc
    if not values:
        raise argparse.ArgumentTypeError("empty value")
    return values[0] if len(values) == 1 else values


def _parse_env_param(text: str) -> tuple[str, object]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"--env-param expects name=value, got {text!r}")
    name, value = text.split("=", 1)
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        parsed = value
    return name, parsed


def _parse_bool(text: str) -> bool:
    if text.lower() in ("1", "true", "yes", "on"):
        return True
    if text.lower() in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (true/false, 1/0), got {text!r}")


def _env_label(env: str, dataset: str | None) -> str:
    """The env a run trains in: its name, or the one an offline dataset's metadata records."""
    if env or not dataset:
        return env
    with np.load(dataset, allow_pickle=False) as f:
        return json.loads(str(f["metadata"])).get("env", "?") if "metadata" in f.files else "?"


def _cmd_train(args: argparse.Namespace) -> int:
    from jaxdiff_rl.train import distributed

    if args.num_processes is not None or args.process_id is not None or args.coordinator is not None:
        distributed.initialize(1 if args.num_processes is None else args.num_processes,
                               0 if args.process_id is None else args.process_id, args.coordinator,
                               timeout_s=args.init_timeout)
    else:
        distributed.initialize(timeout_s=args.init_timeout)  # SLURM / MPI / Cloud TPU auto-detection, else nothing
    from jaxdiff_rl.app.experiment import HPARAM_FIELDS, STATIC_FIELDS, TrainSpec, train_spec
    from jaxdiff_rl.app.plot import plot_curves

    static = {f: getattr(args, f) for f in STATIC_FIELDS if getattr(args, f) is not None}
    hparams = {f: getattr(args, f) for f in HPARAM_FIELDS if getattr(args, f) is not None}
    from jaxdiff_rl.agents import OFFLINE_ALGORITHMS

    env = args.env or ("" if args.algo in OFFLINE_ALGORITHMS else "msr-3")
    spec = TrainSpec(
        algo=args.algo, env=env, dataset=args.dataset, num_seeds=args.seeds, seed=args.seed, actor_kind=args.actor, base=args.base,
        env_overrides=dict(args.env_param or []), static=static,
        hidden=tuple(int(w) for w in args.hidden.split(",")) if args.hidden else None,
        diffusion_steps=args.diffusion_steps, generator=args.generator, hparams=hparams,
    )
    out = Path(args.out or f"runs/{args.algo}-{env or Path(args.dataset or 'offline').stem}")
    result = train_spec(spec, out, args.chunk, args.resume, not args.no_progress)
    if not distributed.is_primary():
        return 0
    last = {k: np.nanmean(v[:, -max(1, v.shape[1] // 10):]) for k, v in result.metrics.items()
            if k in ("return_mean", "reward_mean", "optimum_fraction", "reference_fraction", "critic_loss")
            and np.isfinite(v).any()}
    label = _env_label(env, args.dataset)
    print(f"{args.algo} on {label}: {result.metrics['env_steps'].shape[0]} runs, {result.seconds:.1f} s, "
          f"{result.env_steps_per_s:,.0f} env steps/s; last 10%: "
          + ", ".join(f"{k} {v:.4g}" for k, v in last.items()))
    plot_curves({args.algo: result.metrics}, "return_mean", out / "curves.png", title=f"{args.algo} on {label}")
    print(f"wrote {out / 'metrics.jsonl'}, {out / 'curves.png'}, checkpoints in {out / 'checkpoints'}")
    return 0


def _parse_mixture(text: str) -> str | dict[str, float]:
    """"random" -> "random"; "round-robin=0.5,random=0.5" -> {"round-robin": 0.5, "random": 0.5}."""
    if "=" not in text:
        return text
    out = {}
    for part in text.split(","):
        name, _, weight = part.partition("=")
        try:
            out[name.strip()] = float(weight)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected name=weight, got {part!r}") from exc
    return out


def _cmd_dataset_collect(args: argparse.Namespace) -> int:
    import jax

    from envs.offline_data import collect
    from jaxdiff_rl.app.experiment import make_env

    env, params = make_env(args.env, **dict(args.env_param or []))
    data = collect(jax.random.key(args.seed), env, params, args.policy, args.num_envs, args.num_steps,
                   noise_std=args.noise_std, epsilon=args.epsilon, env_name=args.env, seed=args.seed)
    path = data.save(args.out)
    returns = data.episode_returns()
    print(f"{data.size} transitions from {args.env} with {data.metadata['policy']}: reward/step "
          f"{data.rewards.mean():.4g}, {returns.size} complete episodes"
          + (f" (return {returns.mean():.4g} ± {returns.std():.3g})" if returns.size else ""))
    print(f"wrote {path}")
    return 0


def _cmd_eval(args: argparse.Namespace) -> int:
    from jaxdiff_rl.app.experiment import build, evaluate_spec, load_spec, restore_state

    spec, info = load_spec(args.run)
    trainer, keys, hp, settings = build(spec)
    state = restore_state(args.run, trainer, keys, hp)
    result = evaluate_spec(trainer, state, hp, args.steps, args.seed)
    print(f"greedy evaluation of {args.run} ({spec.algo} on {_env_label(spec.env, spec.dataset)}), {args.steps} steps x "
          f"{trainer.config.num_envs} envs per run")
    print(f"{'run':>4s} {'setting':30s} {'episodes':>8s} {'return':>10s} {'reward/step':>12s} {'of optimum':>10s}")
    g = len(settings)
    for r in range(len(result["episodes"])):
        print(f"{r:4d} {json.dumps(settings[r % g]):30s} {result['episodes'][r]:8.0f} {result['return_mean'][r]:10.4g} "
              f"{result['reward_mean'][r]:12.4g} {result['optimum_fraction'][r]:10.4g}")
    if args.json:
        Path(args.json).write_text(json.dumps({k: v.tolist() for k, v in result.items()}, indent=1))
    return 0


def _cmd_plot(args: argparse.Namespace) -> int:
    from jaxdiff_rl.app.plot import plot_curves
    from jaxdiff_rl.app.runner import read_metrics

    curves = {Path(r).name: read_metrics(Path(r) / "metrics.jsonl") for r in args.runs}
    out = Path(args.out)
    plot_curves(curves, args.metric, out, smooth=args.smooth)
    print(f"wrote {out}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from jaxdiff_rl.app.demo import run_demo

    run_demo(Path(args.out), scale=args.scale, progress=not args.no_progress, seeds=args.seeds)
    return 0


def add_train_commands(sub: argparse._SubParsersAction) -> None:
    from jaxdiff_rl.agents import ALGORITHMS, MA_ALGORITHMS, OFFLINE_ALGORITHMS, ON_POLICY_ALGORITHMS
    from jaxdiff_rl.app.experiment import (HPARAM_FIELDS, OFFLINE_HPARAMS, OFFLINE_STATIC, ON_POLICY_HPARAMS,
                                           OFF_POLICY_HPARAMS, STATIC_FIELDS)

    p = sub.add_parser("train", help="train an agent (seeds x hyperparameter grid in one program)")
    p.add_argument("--algo", default="d2sac", choices=sorted([*ALGORITHMS, *ON_POLICY_ALGORITHMS, *OFFLINE_ALGORITHMS,
                                                                  *MA_ALGORITHMS]))
    p.add_argument("--env", help="registered environment name (jaxdiff-rl envs lists them), or gymnax:<id> for a "
                                 "gymnax environment (e.g. gymnax:CartPole-v1); default msr-3, or the --dataset's")
    p.add_argument("--dataset", help="offline dataset (.npz from `jaxdiff-rl dataset collect`) for the offline "
                                     f"algorithms {list(OFFLINE_ALGORITHMS)}")
    p.add_argument("--seeds", type=int, default=1, help="seeds per hyperparameter setting")
    p.add_argument("--seed", type=int, default=0, help="base seed")
    p.add_argument("--actor", choices=["gaussian", "deterministic", "categorical", "diffusion"],
                   help="override the algorithm's actor kind")
    p.add_argument("--base", choices=sorted(ALGORITHMS), help="take defaults from this algorithm")
    p.add_argument("--hidden", help="actor and critic widths, e.g. 64,64")
    p.add_argument("--diffusion-steps", type=int, help="steps of a diffusion actor's chain (T, K or 1-2)")
    p.add_argument("--generator", choices=["ddpm", "flow", "consistency"], help="a diffusion actor's generator")
    p.add_argument("--env-param", action="append", type=_parse_env_param, help="EnvParams override name=value")
    on_policy_static = ("num_envs", "num_steps", "total_timesteps", "update_epochs", "num_minibatches")
    for f in STATIC_FIELDS:
        owner = "PPOConfig" if f in on_policy_static[1:] else ("AgentConfig/PPOConfig" if f == "num_envs" else "AgentConfig")
        if f in OFFLINE_STATIC:
            owner = "OfflineConfig" if f in ("eval_steps", "edp") else owner + "/OfflineConfig"
        kind = {"q_guidance": _parse_bool, "auto_alpha": _parse_bool, "entropy_in_target": _parse_bool,
                "target_entropy": float, "edp": _parse_bool}.get(f, int)
        p.add_argument("--" + f.replace("_", "-"), dest=f, type=kind, help=f"{owner}.{f}")
    for f in HPARAM_FIELDS:
        owners = [name for name, fields in (("Hparams", OFF_POLICY_HPARAMS), ("PPOHparams", ON_POLICY_HPARAMS),
                                            ("OfflineHparams", OFFLINE_HPARAMS)) if f in fields]
        owner = "/".join(owners)
        p.add_argument("--" + f.replace("_", "-"), dest=f, type=parse_list, help=f"{owner}.{f} (comma list: sweep)")
    p.add_argument("--chunk", type=int, help="iterations per chunk (progress, metrics, checkpoint)")
    p.add_argument("--out", help="run folder (default runs/<algo>-<env>)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--num-processes", type=int, help="processes of a multi-process job (jax.distributed); the runs "
                   "are split over all their devices")
    p.add_argument("--process-id", type=int, help="this process's index in [0, num-processes - 1]")
    p.add_argument("--coordinator", help="host:port of process 0 (it hosts the coordinator)")
    p.add_argument("--init-timeout", type=float, default=60.0, help="seconds to wait for the coordinator and peers")
    p.set_defaults(func=_cmd_train)

    p = sub.add_parser("dataset", help="offline datasets: `dataset collect` rolls a behaviour policy into an .npz")
    dsub = p.add_subparsers(dest="dataset_command", required=True)
    c = dsub.add_parser("collect", help="collect transitions from an environment with a behaviour policy "
                                        "(or a mixture) in one jitted pass")
    c.add_argument("--env", required=True, help="registered environment or gymnax:<id>")
    c.add_argument("--policy", required=True, type=_parse_mixture,
                   help="a behaviour policy (random, noisy-optimum, the env's heuristics and optimum, epsilon-<name>"
                        " for discrete envs) or a mixture name=weight,name=weight (environments split by weight)")
    c.add_argument("--num-envs", type=int, default=256, help="parallel environments")
    c.add_argument("--num-steps", type=int, default=64, help="steps per environment")
    c.add_argument("--noise-std", type=float, default=0.3, help="noisy-optimum: Gaussian std in [-1, 1] units")
    c.add_argument("--epsilon", type=float, default=0.0, help="probability of a uniformly random action")
    c.add_argument("--env-param", action="append", type=_parse_env_param, help="EnvParams override name=value")
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", required=True, help="output .npz")
    c.set_defaults(func=_cmd_dataset_collect)

    p = sub.add_parser("eval", help="greedy evaluation of a train run's last checkpoint")
    p.add_argument("run", help="run folder written by jaxdiff-rl train")
    p.add_argument("--steps", type=int, default=200, help="steps per environment")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--json", help="also write the results here")
    p.set_defaults(func=_cmd_eval)

    p = sub.add_parser("plot", help="mean ± std learning curves over seeds from run folders")
    p.add_argument("runs", nargs="+", help="run folders")
    p.add_argument("--metric", default="return_mean")
    p.add_argument("--smooth", type=int, default=1, help="moving-average window in iterations")
    p.add_argument("--out", default="curves.png")
    p.set_defaults(func=_cmd_plot)

    p = sub.add_parser("demo", help="a vmapped DM-TD3 sweep on low-SNR power allocation vs heuristics and the "
                                    "optimum (the default job)")
    p.add_argument("--out", default="runs/demo")
    p.add_argument("--scale", type=float, default=1.0, help="multiply the demo's training length")
    p.add_argument("--seeds", type=int, default=8, help="seeds per learning rate")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_cmd_demo)
