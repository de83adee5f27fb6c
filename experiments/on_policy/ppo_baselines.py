"""PPO and DM-PPO (the on-policy loop, `jaxdiff_rl.train.on_policy`): PPO on CartPole-v1 (gymnax) at PureJaxRL's
published settings, PPO and DM-PPO on the power-allocation environments, 8 seeds per row as one vmapped program
(4 for the min_std ablation); greedy evaluation on fresh episodes / instances. Writes results/ppo.json, ppo.png.

    python experiments/on_policy/ppo_baselines.py          # about 6 minutes (one core)
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jaxdiff_rl import agents  # noqa: E402
from jaxdiff_rl.app.experiment import make_env  # noqa: E402
from jaxdiff_rl.app.plot import plot_curves  # noqa: E402
from jaxdiff_rl.app.xla_cpu import pin_to_one_core  # noqa: E402
from jaxdiff_rl.train import make_trainer  # noqa: E402

HERE = Path(__file__).parent
SEEDS = 8
# problem -> (env, config overrides, hparam overrides, greedy eval steps x envs, metric)
PROBLEMS = {
    "cartpole": ("gymnax:CartPole-v1", {}, {}, (500, 8), "return_mean"),
    "msr-3": ("msr-3", dict(actor="gaussian", num_envs=64, num_steps=8, total_timesteps=200_000),
              dict(lr=3e-4, ent_coef=0.0, gamma=0.0), (16, 256), "optimum_fraction"),
    "msr-3-lowsnr": ("msr-3-lowsnr", dict(actor="gaussian", num_envs=64, num_steps=8, total_timesteps=400_000),
                     dict(lr=1e-3, ent_coef=0.0, gamma=0.0), (16, 256), "optimum_fraction"),
    "msr-80": ("msr-80", dict(actor="gaussian", num_envs=64, num_steps=8, total_timesteps=200_000),
               dict(lr=3e-4, ent_coef=0.0, gamma=0.0), (4, 256), "optimum_fraction"),
    "dm_ppo msr-3": ("msr-3", dict(algo="dm_ppo", num_envs=64, num_steps=8, total_timesteps=200_000),
                     dict(lr=1e-3, ent_coef=0.0, gamma=0.0), (16, 256), "optimum_fraction"),
    "dm_ppo msr-3-lowsnr": ("msr-3-lowsnr", dict(algo="dm_ppo", num_envs=64, num_steps=8, total_timesteps=400_000),
                            dict(lr=1e-3, ent_coef=0.0, gamma=0.0), (16, 256), "optimum_fraction"),
    # the std floor: the linear schedule's last kernels have std 0.01-0.06 at T = 5
    "dm_ppo lowsnr linear min_std=0.1": ("msr-3-lowsnr", dict(algo="dm_ppo", schedule="linear", num_envs=64,
                                                              num_steps=8, total_timesteps=100_000),
                                         dict(lr=1e-3, ent_coef=0.0, gamma=0.0), (16, 256), "optimum_fraction"),
    "dm_ppo lowsnr linear min_std=0": ("msr-3-lowsnr", dict(algo="dm_ppo", schedule="linear", min_std=0.0,
                                                            num_envs=64, num_steps=8, total_timesteps=100_000),
                                       dict(lr=1e-3, ent_coef=0.0, gamma=0.0), (16, 256), "optimum_fraction"),
}


def run_problem(name: str) -> tuple[dict, dict]:
    env_name, cfg_over, hp_over, (steps, envs_eval), metric = PROBLEMS[name]
    env, params = make_env(env_name)
    cfg_over = dict(cfg_over)
    algo = cfg_over.pop("algo", "ppo")
    config = agents.default_config(algo, **cfg_over)
    hp = agents.default_hparams(algo, **hp_over)
    trainer = make_trainer(config, env, params)
    keys = jax.random.split(jax.random.PRNGKey(0), 4 if "min_std" in name else SEEDS)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(trainer.train, in_axes=(0, None))).lower(keys, hp).compile()
    t1 = time.perf_counter()
    state, metrics = jax.block_until_ready(compiled(keys, hp))
    t2 = time.perf_counter()
    ev = jax.jit(jax.vmap(lambda s: trainer.evaluate(s, jax.random.PRNGKey(5), hp, steps, num_envs=envs_eval)))(state)
    greedy = np.asarray(ev[metric])
    out = {"env": env_name, "config": repr(config), "metric": metric, "greedy_per_seed": greedy.tolist(),
           "greedy_mean": float(greedy.mean()), "greedy_std": float(greedy.std()),
           "env_steps_per_seed": config.total_env_steps, "compile_s": t1 - t0, "run_s": t2 - t1,
           "env_steps_per_s": len(keys) * config.total_env_steps / (t2 - t1), "seeds": len(keys)}
    print(f"{name:34s} greedy {metric} {out['greedy_mean']:.4g} ± {out['greedy_std']:.2g} ({len(keys)} seeds, "
          f"{config.total_env_steps} env steps each; {out['run_s']:.1f} s + {out['compile_s']:.1f} s compile, "
          f"{out['env_steps_per_s']:,.0f} env steps/s)", flush=True)
    return out, {k: np.asarray(v) for k, v in metrics.items()}


def main() -> None:
    pin_to_one_core()  # see jaxdiff_rl/app/xla_cpu.py: long vmapped programs can deadlock on 2 cores
    (HERE / "results").mkdir(exist_ok=True)
    results, curves = {}, {}
    for name in PROBLEMS:
        results[name], curves[name] = run_problem(name)
    (HERE / "results" / "ppo.json").write_text(json.dumps(results, indent=1))
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = {"CartPole-v1": {"PPO": "cartpole"}, "msr-3": {"PPO": "msr-3", "DM-PPO": "dm_ppo msr-3"},
              "msr-3-lowsnr": {"PPO": "msr-3-lowsnr", "DM-PPO": "dm_ppo msr-3-lowsnr",
                               "DM-PPO linear, floor 0.1": "dm_ppo lowsnr linear min_std=0.1",
                               "DM-PPO linear, no floor": "dm_ppo lowsnr linear min_std=0"},
              "msr-80": {"PPO": "msr-80"}}
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 3.4))
    for ax, (title, rows) in zip(axes, panels.items()):
        metric = PROBLEMS[next(iter(rows.values()))][4]
        plot_curves({label: curves[row] for label, row in rows.items()}, metric, None,
                    title=f"{title} (behaviour policy while training)", ax=ax,
                    reference_lines={"optimum": 1.0} if metric == "optimum_fraction" else {"max": 500.0})
    fig.tight_layout()
    fig.savefig(HERE / "results" / "ppo.png", dpi=110)
    print(f"wrote {HERE / 'results'}")


if __name__ == "__main__":
    main()
