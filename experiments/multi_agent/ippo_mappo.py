"""IPPO and MAPPO (the on-policy loop, one shared actor over agent lanes) on ic-power and mc-access.

    python -m experiments.multi_agent.ippo_mappo [--seeds 8]

The same slot budgets as the off-policy runs of this folder: 16,000 slots per seed on ic-power (MADDPG's
1000 x 16) and 24,000 on mc-access (QMIX's 1500 x 16), as 16 envs x 16 steps per iteration, 4 epochs x 4
minibatches, lr 1e-3, gamma = 0 and GAE lambda = 0 (the slots are i.i.d.). The greedy joint policies (the
Gaussian's mean / the argmax) are scored on the same fresh slots as the other scripts' (64 envs x 64 steps), as
fractions of WMMSE (ic-power) or of the enumerated optimum (mc-access). Writes results/ippo_mappo.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

import envs
from jaxdiff_rl import agents
from jaxdiff_rl.train import make_trainer
from jaxdiff_rl.train.sweep import with_seeds

HERE = Path(__file__).parent
SETTINGS = (("ic-power K=5", "ic-power", {"num_links": 5}, 16_000),
            ("ic-power K=10", "ic-power", {"num_links": 10}, 16_000),
            ("mc-access N=3 C=2", "mc-access", {"num_users": 3, "num_channels": 2}, 24_000),
            ("mc-access N=4 C=3", "mc-access", {"num_users": 4, "num_channels": 3}, 24_000))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, default=8)
    args = p.parse_args(argv)
    out = {"seeds": args.seeds, "machine": "2-core CPU (one core)", "settings": {}}
    eval_key = jax.random.PRNGKey(12345)
    for label, name, overrides, slots in SETTINGS:
        env, params = envs.make(name, **overrides)
        discrete = name == "mc-access"
        row = {"slots_per_seed": slots}
        for algo in ("ippo", "mappo"):
            per_iter = 16 * 16
            config = agents.default_config(algo, actor="categorical" if discrete else "gaussian", num_envs=16,
                                           num_steps=16, total_timesteps=slots // per_iter * per_iter,
                                           num_minibatches=4, update_epochs=4)
            hp = agents.default_hparams(algo, gamma=0.0, gae_lambda=0.0, lr=1e-3)
            trainer = make_trainer(config, env, params)
            keys, hps = with_seeds(hp, args.seeds, 0)
            t0 = time.perf_counter()
            state, metrics = jax.block_until_ready(jax.jit(jax.vmap(trainer.train))(keys, hps))
            seconds = time.perf_counter() - t0
            ev = jax.jit(jax.vmap(lambda s, h: trainer.evaluate(s, eval_key, h, 64, num_envs=64)))(state, hps)
            frac = np.asarray(ev["reference_fraction"])
            row[algo] = {"fraction": float(frac.mean()), "fraction_std": float(frac.std()), "per_seed": frac.tolist(),
                         "team_reward": float(np.mean(ev["reward_mean"])), "train_seconds_all_seeds": seconds,
                         "curve_mean": np.nanmean(np.asarray(metrics["reference_fraction"]), 0).tolist()}
            print(f"{label}: {algo} {frac.mean():.4f} +- {frac.std():.4f} of the reference ({seconds:.0f} s for "
                  f"{args.seeds} seeds)", flush=True)
        out["settings"][label] = row
        (HERE / "results").mkdir(exist_ok=True)
        (HERE / "results" / "ippo_mappo.json").write_text(json.dumps(out, indent=1))
    print(f"wrote {HERE / 'results' / 'ippo_mappo.json'}")


if __name__ == "__main__":
    main()
