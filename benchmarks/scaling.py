"""Scaling: throughput vs the number of parallel environments and vs the sweep size, with the point where the
machine saturates; a log-log plot.

1. Parallel environments (1 ... 65536 lanes): one compiled `lax.scan` of vectorised steps where D2SAC's reference
   diffusion actor (2 x 256, T = 5) picks every action by a reverse-diffusion chain and the AIGC environment
   steps: env steps/s = denoising chains/s. Next to it, the environment alone (crash-avoid heuristic).
2. Sweep size (1 ... 256 configurations): `vmap(train)` over configurations (different seeds and actor learning
   rates) of the small D2SAC setting (64-wide, batch 64, 16 environments, msr-3): aggregate gradient updates/s
   and env steps/s over all configurations.
3. Processes (1 and 2): the same setting's 64-run sweep split over N local processes of one `jax.distributed`
   job (gloo), each pinned to its own core: aggregate updates/s of the slowest process and the efficiency
   (speed-up / N; ideal 1).

Saturation: the smallest size whose throughput is >= 90% of the largest measured.

    python benchmarks/scaling.py            # writes benchmarks/results/scaling.json and benchmarks/scaling.png
    python benchmarks/scaling.py --quick    # smaller maxima (smoke run)
    python benchmarks/scaling.py --part processes   # only the process axis, merged into the JSON
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import envs  # noqa: E402
from benchmarks.common import best_time, machine_info  # noqa: E402
from envs.aigc import crash_avoid_policy  # noqa: E402
from jaxdiff_rl import agents  # noqa: E402
from jaxdiff_rl.agents.base import act, init_agent  # noqa: E402
from jaxdiff_rl.train import make_trainer  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "scaling.json"


def rollout_program(lanes: int, steps: int, policy: str):
    """A jitted rollout of `steps` vectorised AIGC steps over `lanes` environments; policy "diffusion" (D2SAC's
    reference actor) or "heuristic" (crash-avoid)."""
    env, params = envs.make("aigc")
    config = agents.default_config("d2sac", num_envs=lanes)
    hp = agents.default_hparams("d2sac")
    obs_dim = env.observation_space(params).shape[0]
    num_actions = env.action_space(params).n
    agent = init_agent(jax.random.PRNGKey(0), config, hp, obs_dim, num_actions, True)

    def run(key):
        k_reset, k_scan = jax.random.split(key)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, lanes), params)

        def body(carry, k):
            obs, state = carry
            k_act, k_env = jax.random.split(k)
            if policy == "diffusion":
                action = act(k_act, config, agent, obs, hp, num_actions, True, explore=True)
            else:
                action = jax.vmap(crash_avoid_policy, in_axes=(None, 0, 0, None))(k_act, obs, state, params)
            obs, state, reward, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                jax.random.split(k_env, lanes), state, action, params)
            return (obs, state), jnp.mean(reward)

        _, rewards = jax.lax.scan(body, (obs, state), jax.random.split(k_scan, steps))
        return rewards

    return jax.jit(run).lower(jax.random.PRNGKey(1)).compile()


def lanes_scaling(sizes: list[int], budget: float) -> list[dict]:
    rows = []
    for policy in ("diffusion", "heuristic"):
        steps = 4
        for lanes in sizes:
            # grow the step count until a call takes >= budget/4 seconds (amortises the call overhead)
            while True:
                prog = rollout_program(lanes, steps, policy)
                t = best_time(lambda: prog(jax.random.PRNGKey(2)), 1)
                if t >= budget / 4 or steps >= 4096:
                    break
                steps = min(4096, steps * max(2, int(budget / 4 / max(t, 1e-4))))
            t = best_time(lambda: prog(jax.random.PRNGKey(2)), 2)
            rows.append({"policy": policy, "lanes": lanes, "steps": steps, "seconds": t,
                         "env_steps_per_s": lanes * steps / t})
            print(f"{policy:9s} lanes {lanes:6d}: {lanes * steps / t:12,.0f} env steps/s"
                  f"{' (= denoising chains/s)' if policy == 'diffusion' else ''}", flush=True)
            steps = max(1, steps // 4)
    return rows


def sweep_setup(updates: int):
    """The small D2SAC setting of the sweep rows: (trainer, config)."""
    env, params = envs.make("msr-3")
    c = agents.default_config("d2sac", num_envs=16, steps_per_iter=4, updates_per_iter=updates, num_iterations=1,
                              batch_size=64, buffer_size=10_000)
    c = c.replace(actor=dataclasses.replace(c.actor, hidden_dims=(64, 64)), critic_hidden_dims=(64, 64))
    return make_trainer(c, env, params), c


def sweep_inputs(n: int):
    """n configurations: actor learning rates log-spaced over [3e-5, 3e-4], one seed each: (keys [n], hparams [n])."""
    hp = agents.default_hparams("d2sac")
    lrs = jnp.geomspace(3e-5, 3e-4, n) if n > 1 else jnp.array([1e-4])
    hps = jax.tree_util.tree_map(lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (n,)), hp)
    return jax.random.split(jax.random.PRNGKey(0), n), hps.replace(lr_actor=lrs.astype(jnp.float32))


def sweep_scaling(sizes: list[int], updates: int) -> list[dict]:
    trainer, c = sweep_setup(updates)
    rows = []
    for n in sizes:
        keys, hps = sweep_inputs(n)
        states = jax.jit(jax.vmap(trainer.init))(keys, hps)
        step = jax.jit(jax.vmap(partial(trainer.run, num_iterations=1))).lower(states, hps).compile()
        states, _ = step(states, hps)  # fills a batch; from here on every iteration updates
        jax.block_until_ready(states)
        t = best_time(lambda: step(states, hps), 2)
        rows.append({"configs": n, "seconds": t, "updates_per_s": n * updates / t,
                     "env_steps_per_s": n * c.steps_per_iter * c.num_envs / t})
        print(f"sweep {n:4d} configs: {n * updates / t:10,.0f} updates/s in aggregate "
              f"({updates / t:8,.0f} per configuration)", flush=True)
    return rows


def process_worker(args: argparse.Namespace) -> None:
    """One process of the process-axis measurement: join the job, time one sharded iteration of the `--runs`-run
    sweep (this process's slice of it), and (process 0) print {"seconds": the slowest process's time} as JSON."""
    from jax.experimental import multihost_utils

    from jaxdiff_rl.train import distributed

    distributed.initialize(args.num_processes, args.process_id, args.coordinator, timeout_s=120)
    trainer, c = sweep_setup(args.updates)
    sharding = distributed.run_sharding(distributed.sweep_mesh())
    keys, hps = distributed.to_global(sweep_inputs(args.runs), sharding)
    states = jax.jit(jax.vmap(trainer.init), out_shardings=sharding)(keys, hps)
    step = jax.jit(jax.vmap(partial(trainer.run, num_iterations=1)), out_shardings=sharding)
    states, _ = step(states, hps)  # compiles; fills a batch
    jax.block_until_ready(states)
    multihost_utils.sync_global_devices("timed")
    t = best_time(lambda: step(states, hps), 3)
    slowest = float(np.max(multihost_utils.process_allgather(np.float32(t))))
    if distributed.is_primary():
        print(json.dumps({"seconds": slowest, "processes": args.num_processes, "runs": args.runs}), flush=True)


def process_scaling(runs: int, updates: int, counts: tuple[int, ...] = (1, 2)) -> list[dict]:
    """Aggregate updates/s of one `runs`-run sweep split over N local processes, each pinned to its own core."""
    import socket
    import subprocess

    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else list(range(os.cpu_count() or 1))
    rows = []
    for n in counts:
        if n > len(cores):
            print(f"processes {n}: skipped, only {len(cores)} cores", flush=True)
            continue
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        env = {**os.environ, "JAX_PLATFORMS": "cpu"}
        env.pop("XLA_FLAGS", None)
        procs = [subprocess.Popen(["taskset", "-c", str(cores[i]), sys.executable, __file__, "--worker",
                                   "--num-processes", str(n), "--process-id", str(i), "--coordinator",
                                   f"127.0.0.1:{port}", "--runs", str(runs), "--updates", str(updates)],
                                  env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for i in range(n)]
        outs = [p.communicate(timeout=1800) for p in procs]
        for p, (_, err) in zip(procs, outs):
            if p.returncode:
                raise RuntimeError(f"process worker failed (rc {p.returncode}): {err[-2000:]}")
        t = json.loads(outs[0][0].strip().splitlines()[-1])["seconds"]
        rows.append({"processes": n, "runs": runs, "seconds": t, "updates_per_s": runs * updates / t})
        print(f"processes {n}: {runs} runs, {runs * updates / t:10,.0f} updates/s in aggregate", flush=True)
    if len(rows) > 1:
        for r in rows:
            r["speedup_vs_1"] = r["updates_per_s"] / rows[0]["updates_per_s"]
            r["efficiency"] = r["speedup_vs_1"] / r["processes"]
    return rows


def saturation(xs: list[int], ys: list[float]) -> int:
    top = max(ys)
    return next(x for x, y in zip(xs, ys) if y >= 0.9 * top)


def plot(lanes: list[dict], sweep: list[dict], path: Path, device: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for policy, color in (("diffusion", "tab:blue"), ("heuristic", "tab:gray")):
        r = [x for x in lanes if x["policy"] == policy]
        axes[0].loglog([x["lanes"] for x in r], [x["env_steps_per_s"] for x in r], marker="o", color=color,
                       label="diffusion actor (chains/s)" if policy == "diffusion" else "environment only")
    axes[0].set_xlabel("parallel environments")
    axes[0].set_ylabel("env steps / s")
    axes[0].legend(fontsize=8)
    axes[1].loglog([x["configs"] for x in sweep], [x["updates_per_s"] for x in sweep], marker="o", label="updates/s")
    axes[1].loglog([x["configs"] for x in sweep], [x["env_steps_per_s"] for x in sweep], marker="s",
                   label="env steps/s")
    axes[1].set_xlabel("configurations in one vmapped sweep")
    axes[1].set_ylabel("aggregate throughput / s")
    axes[1].legend(fontsize=8)
    fig.suptitle(f"jaxdiff-rl scaling on {device}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=OUT, help="JSON path (the plot goes next to benchmarks/)")
    ap.add_argument("--part", choices=["all", "processes"], default="all",
                    help="processes: only the process axis (merged into an existing JSON)")
    # the process axis's workers (started by this script itself)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--num-processes", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--process-id", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--coordinator", help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=64, help="runs of the process-axis sweep")
    ap.add_argument("--updates", type=int, default=100, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        process_worker(args)
        return
    if args.part == "processes":
        rows = process_scaling(args.runs, 20 if args.quick else 100)
        if not args.quick:
            result = json.loads(args.out.read_text()) if args.out.exists() else {"machine": machine_info()}
            result["processes"] = rows
            args.out.write_text(json.dumps(result, indent=1))
            print(f"wrote {args.out}")
        return
    lane_sizes = [1, 16, 256, 4096] if args.quick else [1, 16, 256, 4096, 65536]
    sweep_sizes = [1, 4, 16] if args.quick else [1, 4, 16, 64, 256]
    t0 = time.perf_counter()
    lanes = lanes_scaling(lane_sizes, 1.0 if args.quick else 4.0)
    sweep = sweep_scaling(sweep_sizes, 20 if args.quick else 100)
    processes = process_scaling(args.runs, 20 if args.quick else 100)
    diff = [x for x in lanes if x["policy"] == "diffusion"]
    result = {
        "machine": machine_info(), "lanes": lanes, "sweep": sweep, "processes": processes,
        "saturation": {
            "lanes_diffusion": saturation([x["lanes"] for x in diff], [x["env_steps_per_s"] for x in diff]),
            "sweep_updates": saturation([x["configs"] for x in sweep], [x["updates_per_s"] for x in sweep]),
        },
        "wall_s": time.perf_counter() - t0,
    }
    print(f"saturates at {result['saturation']['lanes_diffusion']} lanes (diffusion acting) and "
          f"{result['saturation']['sweep_updates']} configurations (training sweep)")
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=1))
        plot(lanes, sweep, ROOT / "benchmarks" / f"{args.out.stem}.png", result["machine"]["device"])
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
