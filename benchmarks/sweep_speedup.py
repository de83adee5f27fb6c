"""Vmapped sweep vs the same runs one after another, side by side in one process; and one update's FLOP/s
against a bare matmul ceiling.

1. small: D2SAC on msr-3, 64-wide networks, batch 64, T = 5: 16 seeds as one `vmap(train)` call vs 16 calls of
   the single-seed program (both compiled ahead of time; compile excluded). Target >= 3x.
2. reference: D2SAC's spec configuration on AIGC (256-wide actor and critics, batch 512, T = 5, n-step 3),
   same comparison with 4 seeds (an update is ~2.7 GFLOP, so this is compute-bound). Target >= 1x.
3. utilisation: FLOPs of one reference update from XLA's cost analysis, divided by its time, against the FLOP/s
   of a bare [512, 256] x [256, 256] matmul chain of the same total FLOPs (the ceiling on this machine).
   Target >= 60%.

    python benchmarks/sweep_speedup.py            # writes benchmarks/results/sweep_speedup.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import envs  # noqa: E402
from benchmarks.common import best_time, machine_info, update_utilisation  # noqa: E402
from jaxdiff_rl import agents  # noqa: E402
from jaxdiff_rl.train import make_trainer  # noqa: E402

OUT = Path(__file__).parent / "results" / "sweep_speedup.json"


def compare(config, env, params, hp, seeds: int, repeats: int) -> dict:
    trainer = make_trainer(config, env, params)
    keys = jax.random.split(jax.random.PRNGKey(0), seeds)
    single = jax.jit(trainer.train).lower(keys[0], hp).compile()
    batched = jax.jit(jax.vmap(trainer.train, in_axes=(0, None))).lower(keys, hp).compile()
    t_seq = best_time(lambda: [single(keys[i], hp) for i in range(seeds)], repeats)
    t_vmap = best_time(lambda: batched(keys, hp), repeats)
    updates = seeds * config.num_iterations * config.updates_per_iter
    steps = seeds * config.total_env_steps
    return {
        "seeds": seeds, "updates_per_seed": config.num_iterations * config.updates_per_iter,
        "env_steps_per_seed": config.total_env_steps,
        "sequential_s": t_seq, "vmapped_s": t_vmap, "speedup": t_seq / t_vmap,
        "vmapped_seed_updates_per_s": updates / t_vmap, "sequential_seed_updates_per_s": updates / t_seq,
        "vmapped_env_steps_per_s": steps / t_vmap, "sequential_env_steps_per_s": steps / t_seq,
    }


def utilisation(config, env, params, hp, repeats: int) -> dict:
    """One reference update (no env steps): XLA-counted FLOPs / time vs the matmul ceiling."""
    trainer = make_trainer(config, env, params)
    state = jax.jit(trainer.init)(jax.random.PRNGKey(0), hp)
    # fill the buffer a little so the batch is realistic (values do not change the FLOPs)
    state, _ = jax.jit(lambda s: trainer.run(s, hp, 1))(state)
    return update_utilisation(config, hp, state, trainer.spec, repeats + 3)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="fewer updates (a smoke run)")
    args = ap.parse_args()
    repeats = 1 if args.quick else 2

    env, params = envs.make("msr-3")
    small = agents.default_config("d2sac", num_envs=8, steps_per_iter=8, updates_per_iter=16,
                                  num_iterations=5 if args.quick else 20, batch_size=64, buffer_size=20_000)
    small = small.replace(actor=dataclasses.replace(small.actor, hidden_dims=(64, 64)), critic_hidden_dims=(64, 64))
    res_small = compare(small, env, params, agents.default_hparams("d2sac"), 16, repeats)
    print(f"small (d2sac, msr-3, 64-wide, batch 64, 16 seeds): vmapped {res_small['vmapped_s']:.2f} s vs sequential "
          f"{res_small['sequential_s']:.2f} s -> {res_small['speedup']:.2f}x (target >= 3x); "
          f"{res_small['vmapped_seed_updates_per_s']:,.0f} vs {res_small['sequential_seed_updates_per_s']:,.0f} "
          f"seed-updates/s, {res_small['vmapped_env_steps_per_s']:,.0f} vs {res_small['sequential_env_steps_per_s']:,.0f} env steps/s")

    aenv, aparams = envs.make("aigc")
    # 600 steps first so that the buffer holds a batch of 512 and every timed update runs
    ref = agents.default_config("d2sac", num_envs=1, steps_per_iter=600, updates_per_iter=2 if args.quick else 8,
                                num_iterations=1, buffer_size=4096)
    ref_hp = agents.default_hparams("d2sac")
    res_ref = compare(ref.replace(batch_size=512), aenv, aparams, ref_hp, 4, repeats) if not args.quick else \
        compare(ref.replace(batch_size=512), aenv, aparams, ref_hp, 2, repeats)
    print(f"reference (d2sac spec, aigc, 256-wide, batch 512, {res_ref['seeds']} seeds): vmapped {res_ref['vmapped_s']:.2f} s "
          f"vs sequential {res_ref['sequential_s']:.2f} s -> {res_ref['speedup']:.2f}x (target >= 1x); "
          f"{res_ref['vmapped_seed_updates_per_s']:.1f} vs {res_ref['sequential_seed_updates_per_s']:.1f} seed-updates/s")

    util = utilisation(ref.replace(batch_size=512), aenv, aparams, ref_hp, repeats)
    print(f"one reference update: {util['update_gflop']:.2f} GFLOP (matmuls, counted analytically; XLA's cost analysis "
          f"says {util['xla_counted_gflop']:.2f}: it counts each scan body once) in {1e3 * util['update_s']:.1f} ms = "
          f"{util['update_gflops_per_s']:.1f} GFLOP/s vs matmul ceiling {util['ceiling_gflops_per_s']:.1f} GFLOP/s "
          f"-> {100 * util['utilisation']:.0f}% (target >= 60%)")

    if not args.quick:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps({
            "machine": machine_info(),
            "small": res_small, "reference": res_ref, "utilisation": util,
        }, indent=1))
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
