"""mc-access (multi-user channel access): QMIX and DM-QMIX vs the enumerated optimum, best-channel and random access.

    python -m experiments.multi_agent.mc_access [--seeds 8] [--iterations 1500]

Settings (N users, C subchannels): (3, 2) and (4, 3). Writes results/mc_access.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

import envs
from jaxdiff_rl.agents import maddpg, qmix
from jaxdiff_rl.train import make_trainer
from jaxdiff_rl.train.multi_agent import evaluate_reference
from jaxdiff_rl.train.sweep import with_seeds

HERE = Path(__file__).parent


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--iterations", type=int, default=1500)
    args = p.parse_args(argv)
    out = {"seeds": args.seeds, "iterations": args.iterations, "machine": "2-core CPU", "settings": {}}
    eval_key = jax.random.PRNGKey(12345)
    for n, c in ((3, 2), (4, 3)):
        env, params = envs.make("mc-access", num_users=n, num_channels=c)
        row = {}
        for name in ("optimal", "best_channel", "random"):
            r = evaluate_reference(env, params, name, eval_key, 64, 64)
            row[name] = {"sum_rate": float(r["reward_mean"]), "optimum_fraction": float(r["reference_fraction"])}
        for algo in ("qmix", "dm_qmix"):
            config = maddpg.default_config(algo, num_envs=16, batch_size=128, num_iterations=args.iterations,
                                           learning_starts=256)
            trainer = make_trainer(config, env, params)
            keys, hp = with_seeds(qmix.default_hparams(gamma=0.0), args.seeds, 0)
            t0 = time.perf_counter()
            state, _ = jax.block_until_ready(jax.jit(jax.vmap(trainer.train))(keys, hp))
            seconds = time.perf_counter() - t0
            ev = jax.jit(jax.vmap(lambda s, h: trainer.evaluate(s, eval_key, h, 64, num_envs=64)))(state, hp)
            frac = np.asarray(ev["reference_fraction"])
            row[algo] = {"sum_rate": float(np.mean(ev["reward_mean"])), "optimum_fraction": float(frac.mean()),
                         "optimum_fraction_std": float(frac.std()), "per_seed": frac.tolist(),
                         "train_seconds_all_seeds": seconds}
            print(f"N={n} C={c}: {algo} {frac.mean():.4f} +- {frac.std():.4f} of the optimum ({seconds:.0f} s); "
                  f"best-channel {row['best_channel']['optimum_fraction']:.4f}, random "
                  f"{row['random']['optimum_fraction']:.4f}", flush=True)
        out["settings"][f"N{n}-C{c}"] = row
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "mc_access.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
