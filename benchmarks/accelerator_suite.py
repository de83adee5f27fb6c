"""One command for whatever accelerator is present (GPU, TPU, or the CPU): the accelerator-relevant cases of the
other benchmarks at accelerator sizes, inside a time budget, as JSON and a markdown table.

Cases (each reports a throughput and its wall time; a case that would start past the budget is listed as skipped):
- `matmul`: FLOP/s of a chain of [4096, 256] x [256, 256] matmuls (the ceiling the networks' updates run against);
- `env/<lanes>`: msr-80 steps/s under the proportional heuristic, 1e3 ... 1e6 parallel environments;
- `sampling/<batch>`: reverse-diffusion chains/s of the reference denoiser (3 x 256 Mish, T = 5, 20-dim action,
  42-dim condition);
- `update/<algo>`: D2SAC (aigc) and DM-DDPG (msr-80) gradient updates/s at their reference settings, including
  the environment steps of the iteration;
- `sweep/<runs>`: aggregate updates/s of a `runs`-run vmapped D2SAC sweep (the small setting of
  `benchmarks/scaling.py`), sharded over every device.

    python benchmarks/accelerator_suite.py                 # full sizes, 15 min budget -> results/accelerator_<platform>.json/.md
    python benchmarks/accelerator_suite.py --budget 300    # stop starting new cases after 5 minutes
    python benchmarks/accelerator_suite.py --tiny          # a minute-long version (the test suite runs parts of it on CPU)
    python benchmarks/accelerator_suite.py --only env,sampling
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import diffusion_sampling, env_throughput  # noqa: E402
from benchmarks.common import best_time, machine_info, matmul_ceiling  # noqa: E402
from benchmarks.scaling import sweep_inputs, sweep_setup  # noqa: E402
from jaxdiff_rl import agents  # noqa: E402
from jaxdiff_rl.train import make_trainer  # noqa: E402
from jaxdiff_rl.train.sweep import run_sweep  # noqa: E402

SIZES = {
    "full": {"env": [1_000, 10_000, 100_000, 1_000_000], "env_steps": 64, "sampling": [256, 4096, 65536],
             "update_envs": 16, "updates": 100, "sweep": [256], "matmul_batch": 4096},
    "tiny": {"env": [64, 256], "env_steps": 4, "sampling": [32], "update_envs": 2, "updates": 2, "sweep": [4],
             "matmul_batch": 64, "hidden": (16,), "update_overrides": {"batch_size": 8, "buffer_size": 256}},
}


def case_matmul(size: dict) -> dict:
    flops = 2 * size["matmul_batch"] * 256 * 256 * 32
    return {"gflop_per_s": matmul_ceiling(flops, 3, batch=size["matmul_batch"]) / 1e9}


def case_env(lanes: int, size: dict) -> dict:
    steps_per_s, compile_s = env_throughput.jax_steps_per_s("msr-80", lanes, size["env_steps"], repeats=2)
    return {"env_steps_per_s": steps_per_s, "compile_s": compile_s}


def case_sampling(batch: int, size: dict) -> dict:
    seconds = diffusion_sampling.jax_sampler(batch, 5, 3)
    return {"chains_per_s": batch / seconds}


def case_update(algo: str, size: dict) -> dict:
    from envs import make

    env_name = {"d2sac": "aigc", "dm_ddpg": "msr-80"}[algo]
    env, params = make(env_name)
    config = agents.default_config(algo, num_envs=size["update_envs"], updates_per_iter=size["updates"],
                                   num_iterations=1, **size.get("update_overrides", {}))
    if "hidden" in size:
        config = config.replace(actor=dataclasses.replace(config.actor, hidden_dims=size["hidden"]),
                                critic_hidden_dims=size["hidden"])
    trainer = make_trainer(config, env, params)
    hp = agents.default_hparams(algo)
    state = jax.jit(trainer.init)(jax.random.key(0), hp)
    step = jax.jit(partial(trainer.run, num_iterations=1))
    for _ in range(16):  # compile, then fill the buffer until the iteration updates
        state, metrics = step(state, hp)
        if float(metrics["updating"][-1]) > 0:
            break
    seconds = best_time(lambda: step(state, hp), 3)
    return {"env": env_name, "updates_per_s": size["updates"] / seconds}


def case_sweep(runs: int, size: dict) -> dict:
    from jaxdiff_rl.train.distributed import run_sharding, sweep_mesh, to_global

    trainer, _ = sweep_setup(size["updates"])
    sharding = run_sharding(sweep_mesh())
    keys, hps = to_global(sweep_inputs(runs), sharding)
    states = jax.jit(jax.vmap(trainer.init), out_shardings=sharding)(keys, hps)
    step = jax.jit(jax.vmap(partial(trainer.run, num_iterations=1)), out_shardings=sharding)
    states, _ = step(states, hps)  # compiles; fills a batch
    seconds = best_time(lambda: step(states, hps), 2)
    return {"devices": jax.device_count(), "updates_per_s": runs * size["updates"] / seconds}


def cases(size: dict) -> list[tuple[str, Callable[[], dict]]]:
    out: list[tuple[str, Callable[[], dict]]] = [("matmul", lambda: case_matmul(size))]
    out += [(f"env/{n}", partial(case_env, n, size)) for n in size["env"]]
    out += [(f"sampling/{n}", partial(case_sampling, n, size)) for n in size["sampling"]]
    out += [(f"update/{a}", partial(case_update, a, size)) for a in ("d2sac", "dm_ddpg")]
    out += [(f"sweep/{n}", partial(case_sweep, n, size)) for n in size["sweep"]]
    return out


def markdown(result: dict) -> str:
    lines = [f"Accelerator suite on {result['machine']['device']} ({result['machine']['platform']}), "
             f"jax {result['machine']['jax']}, {result['wall_s']:.0f} s", "",
             "| case | throughput | wall s |", "|---|---|---|"]
    for name, row in result["cases"].items():
        if row.get("skipped"):
            lines.append(f"| {name} | skipped ({row['skipped']}) | |")
            continue
        key = next(k for k in row if k.endswith("_per_s"))
        lines.append(f"| {name} | {row[key]:,.0f} {key.replace('_per_s', '/s').replace('_', ' ')} | "
                     f"{row['wall_s']:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tiny", action="store_true", help="seconds-long shapes (the CPU test)")
    ap.add_argument("--budget", type=float, default=900.0, help="seconds after which no new case starts")
    ap.add_argument("--only", help="comma list of case-name prefixes to run (e.g. env,sampling); default all")
    ap.add_argument("--out", type=Path, help="JSON path (default benchmarks/results/accelerator_<platform>.json); "
                                             "the markdown table goes next to it")
    args = ap.parse_args(argv)
    if not args.budget > 0:
        raise ValueError(f"--budget must be > 0 seconds, got {args.budget}")
    size = SIZES["tiny" if args.tiny else "full"]
    platform = jax.devices()[0].platform
    out = args.out or ROOT / "benchmarks" / "results" / f"accelerator_{platform}{'-tiny' if args.tiny else ''}.json"
    t0 = time.perf_counter()
    rows: dict[str, dict] = {}
    selected = cases(size)
    if args.only:
        prefixes = [p.strip() for p in args.only.split(",") if p.strip()]
        selected = [(n, f) for n, f in selected if any(n.startswith(p) for p in prefixes)]
        if not selected:
            raise ValueError(f"--only {args.only!r} matches no case; cases: {[n for n, _ in cases(size)]}")
    for name, fn in selected:
        if time.perf_counter() - t0 > args.budget:
            rows[name] = {"skipped": f"budget of {args.budget:g} s spent"}
            continue
        t_case = time.perf_counter()
        rows[name] = {**fn(), "wall_s": time.perf_counter() - t_case}
        print(f"{name:18s} " + ", ".join(f"{k} {v:,.4g}" if isinstance(v, float) else f"{k} {v}"
                                         for k, v in rows[name].items()), flush=True)
    result = {"machine": machine_info(), "sizes": size, "budget_s": args.budget, "cases": rows,
              "wall_s": time.perf_counter() - t0}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    out.with_suffix(".md").write_text(markdown(result))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
