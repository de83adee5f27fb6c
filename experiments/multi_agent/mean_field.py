"""Many-agent power control (ic-power-64, ic-power-256): mean-field MFAC and DM-MFAC vs WMMSE, full power and random.

    python -m experiments.multi_agent.mean_field [--links 64 256] [--seeds 8] [--iterations 1000]

K links at a constant density (envs.ICPower.dense_preset), each agent rewarded by its difference reward; the team's
sum rate per link is what is reported. Each algorithm trains `--seeds` seeds in one vmapped program (gamma = 0: the
slots are i.i.d.); the greedy joint policy of every seed is then scored on the same 16 x 16 fresh slots as the
references. Writes results/mean_field.json and mean_field.png (sum rate as a fraction of WMMSE's during training).
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
ALGOS = ("mfac", "dm_mfac")


def config_for(algo: str, iterations: int, num_envs: int, buffer_size: int = 16_384) -> maddpg.MAConfig:
    """The buffer holds every transition of these runs (1000 x 8 or 600 x 4); a larger one would change nothing but
    memory (8 seeds of K = 256 with the default 100,000 were killed for memory)."""
    kind = "diffusion" if algo == "dm_mfac" else "deterministic"
    return maddpg.default_config(algo, actor=ActorConfig(kind=kind, hidden_dims=(64, 64), diffusion_steps=5),
                                 critic_hidden_dims=(128, 128), num_envs=num_envs, batch_size=64,
                                 num_iterations=iterations, learning_starts=256, buffer_size=buffer_size)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--links", type=int, nargs="+", default=[64, 256])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--iterations", type=int, default=1000)
    p.add_argument("--envs", type=int, default=8)
    p.add_argument("--out", default="mean_field")
    args = p.parse_args(argv)
    path = HERE / "results" / f"{args.out}.json"
    out = json.loads(path.read_text()) if path.exists() else {"links": {}}
    out.update({"seeds": args.seeds, "machine": "2-core CPU (one core per run)"})
    eval_key = jax.random.PRNGKey(12345)
    for k in args.links:
        env, params = envs.make("ic-power", **envs.ICPower.dense_preset(k))
        row = {"iterations": args.iterations, "num_envs": args.envs}
        for name in ("wmmse", "max_power", "random"):
            r = evaluate_reference(env, params, name, eval_key, 16, 16)
            row[name] = {"sum_rate_per_link": float(r["reward_mean"]), "wmmse_fraction": float(r["reference_fraction"])}
        for algo in ALGOS:
            trainer = make_trainer(config_for(algo, args.iterations, args.envs), env, params)
            keys, hp = with_seeds(maddpg.default_hparams(gamma=0.0, lr_actor=1e-3, explore_noise=0.2), args.seeds, 0)
            t0 = time.perf_counter()
            state, metrics = jax.block_until_ready(jax.jit(jax.vmap(trainer.train))(keys, hp))
            seconds = time.perf_counter() - t0
            ev = jax.jit(jax.vmap(lambda s, h: trainer.evaluate(s, eval_key, h, 16, num_envs=16)))(state, hp)
            frac = np.asarray(ev["reference_fraction"])
            rate = np.asarray(ev["reward_mean"])
            row[algo] = {"sum_rate_per_link": float(rate.mean()), "sum_rate_per_link_std": float(rate.std()),
                         "wmmse_fraction": float(frac.mean()), "wmmse_fraction_std": float(frac.std()),
                         "per_seed": frac.tolist(), "train_seconds_all_seeds": seconds,
                         "env_steps_per_seed": int(trainer.config.total_env_steps),
                         "curve_mean": np.nanmean(np.asarray(metrics["reference_fraction"]), 0).tolist(),
                         "curve_std": np.nanstd(np.asarray(metrics["reference_fraction"]), 0).tolist()}
            print(f"K={k} {algo}: {frac.mean():.4f} +- {frac.std():.4f} of WMMSE, per seed {np.round(frac, 3)} "
                  f"({seconds:.0f} s for {args.seeds} seeds)", flush=True)
        print(f"K={k} references: " + ", ".join(f"{n} {row[n]['wmmse_fraction']:.4f}" for n in ("max_power", "random"))
              + f"; WMMSE {row['wmmse']['sum_rate_per_link']:.3f} bit/s/Hz per link", flush=True)
        out["links"][str(k)] = row
        path.parent.mkdir(exist_ok=True)
        path.write_text(json.dumps(out, indent=1))
    plot(out)
    print(f"wrote {path} and {HERE / 'mean_field.png'}")


def plot(out: dict) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    links = sorted(out["links"], key=int)
    fig, axes = plt.subplots(1, len(links), figsize=(5 * len(links), 3.5), squeeze=False)
    for ax, k in zip(axes[0], links):
        row = out["links"][k]
        for algo in ALGOS:
            if "curve_mean" not in row.get(algo, {}):
                continue
            m, s = np.asarray(row[algo]["curve_mean"]), np.asarray(row[algo]["curve_std"])
            x = np.arange(m.size)
            ax.plot(x, m, label=algo)
            ax.fill_between(x, m - s, m + s, alpha=0.2)
        for name, style in (("max_power", "--"), ("random", ":")):
            ax.axhline(row[name]["wmmse_fraction"], ls=style, c="k", label=name)
        ax.axhline(1.0, c="r", label="WMMSE")
        ax.set(title=f"ic-power-{k} (mean field)", xlabel=f"iteration ({row.get('num_envs', out.get('num_envs'))} slots each)",
               ylabel="sum rate / WMMSE")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(HERE / "mean_field.png", dpi=110)


if __name__ == "__main__":
    main()
