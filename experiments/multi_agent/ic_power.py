"""ic-power (K-link interference-channel power control): MADDPG and DM-MADDPG vs WMMSE, full power and random.

    python -m experiments.multi_agent.ic_power [--links 5 10] [--seeds 8] [--iterations 1000]

Each algorithm trains `--seeds` seeds in one vmapped program (gamma = 0: slots are i.i.d., see envs/ic_power.py);
the greedy joint policy of every seed is then scored on the same 64 x 64 fresh slots as the references.
Writes results/ic_power.json and ic_power.png (sum rate as a fraction of WMMSE's during training).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np

import envs
from jaxdiff_rl.agents import maddpg
from jaxdiff_rl.agents.networks import ActorConfig
from jaxdiff_rl.train import make_trainer
from jaxdiff_rl.train.multi_agent import evaluate_reference
from jaxdiff_rl.train.sweep import with_seeds

HERE = Path(__file__).parent


def config_for(algo: str, iterations: int) -> maddpg.MAConfig:
    kind = "diffusion" if algo == "dm_maddpg" else "deterministic"
    return maddpg.default_config(algo, actor=ActorConfig(kind=kind, hidden_dims=(64, 64), diffusion_steps=5),
                                 critic_hidden_dims=(128, 128), num_envs=16, batch_size=256, num_iterations=iterations,
                                 learning_starts=512)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--links", type=int, nargs="+", default=[5, 10])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--iterations", type=int, default=1000)
    args = p.parse_args(argv)
    out = {"seeds": args.seeds, "iterations": args.iterations, "machine": "2-core CPU", "links": {}}
    curves = {}
    eval_key = jax.random.PRNGKey(12345)
    for k in args.links:
        env, params = envs.make("ic-power", num_links=k)
        row = {}
        for name in ("wmmse", "max_power", "random"):
            r = evaluate_reference(env, params, name, eval_key, 64, 64)
            row[name] = {"sum_rate": float(r["reward_mean"]), "wmmse_fraction": float(r["reference_fraction"])}
        for algo in ("maddpg", "dm_maddpg"):
            trainer = make_trainer(config_for(algo, args.iterations), env, params)
            keys, hp = with_seeds(maddpg.default_hparams(gamma=0.0, lr_actor=1e-3, explore_noise=0.2), args.seeds, 0)
            t0 = time.perf_counter()
            state, metrics = jax.block_until_ready(jax.jit(jax.vmap(trainer.train))(keys, hp))
            seconds = time.perf_counter() - t0
            ev = jax.jit(jax.vmap(lambda s, h: trainer.evaluate(s, eval_key, h, 64, num_envs=64)))(state, hp)
            frac = np.asarray(ev["reference_fraction"])
            rate = np.asarray(ev["reward_mean"])
            row[algo] = {"sum_rate": float(rate.mean()), "sum_rate_std": float(rate.std()),
                         "wmmse_fraction": float(frac.mean()), "wmmse_fraction_std": float(frac.std()),
                         "per_seed": frac.tolist(), "train_seconds_all_seeds": seconds,
                         "env_steps_per_seed": int(trainer.config.total_env_steps)}
            curves[(k, algo)] = np.asarray(metrics["reference_fraction"])
            print(f"K={k} {algo}: {frac.mean():.4f} +- {frac.std():.4f} of WMMSE ({seconds:.0f} s for {args.seeds} seeds)",
                  flush=True)
        print(f"K={k} references: " + ", ".join(f"{n} {row[n]['wmmse_fraction']:.4f}" for n in ("max_power", "random"))
              + f"; WMMSE sum rate {row['wmmse']['sum_rate']:.3f} bit/s/Hz", flush=True)
        out["links"][str(k)] = row
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "ic_power.json").write_text(json.dumps(out, indent=1))
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, len(args.links), figsize=(5 * len(args.links), 3.5), squeeze=False)
    for ax, k in zip(axes[0], args.links):
        for algo in ("maddpg", "dm_maddpg"):
            c = curves[(k, algo)]
            x = np.arange(c.shape[1])
            ax.plot(x, c.mean(0), label=algo)
            ax.fill_between(x, c.mean(0) - c.std(0), c.mean(0) + c.std(0), alpha=0.2)
        for name, style in (("max_power", "--"), ("random", ":")):
            ax.axhline(out["links"][str(k)][name]["wmmse_fraction"], ls=style, c="k", label=name)
        ax.axhline(1.0, c="r", label="WMMSE")
        ax.set(title=f"ic-power K={k}", xlabel="iteration (16 slots each)", ylabel="sum rate / WMMSE")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "ic_power.png", dpi=110)
    print(f"wrote {HERE / 'results' / 'ic_power.json'} and {HERE / 'ic_power.png'}")


if __name__ == "__main__":
    main()
