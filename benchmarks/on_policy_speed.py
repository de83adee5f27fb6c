"""On-policy throughput: PPO env steps/s (training: rollout + GAE + epochs of minibatch updates, one jitted program,
compile excluded) on gymnax CartPole-v1 and msr-80 at 1 ... 4096 parallel environments; and DM-PPO's cost per env
step against PPO's at the same settings, beside the analytic matmul-FLOP ratio.

    python benchmarks/on_policy_speed.py         # about 4 minutes on 2 CPU cores; writes results/on_policy_speed.json

The PyTorch side of the issue's comparison (a PyTorch PPO in `benchmarks/torch_reference/`) is not written yet.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jax

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import best_time, machine_info  # noqa: E402
from jaxdiff_rl import agents  # noqa: E402
from jaxdiff_rl.app.experiment import make_env  # noqa: E402
from jaxdiff_rl.train import make_trainer  # noqa: E402

OUT = Path(__file__).parent / "results" / "on_policy_speed.json"
ENVS = (1, 4, 16, 64, 256, 1024, 4096)


def steps_per_s(algo: str, env_name: str, num_envs: int, iterations: int = 4, **overrides) -> float:
    env, params = make_env(env_name)
    num_steps = 128 if num_envs <= 4 else max(8, 512 // num_envs)
    actor = {} if algo == "dm_ppo" else {"actor": "categorical" if env_name.startswith("gymnax") else "gaussian"}
    config = agents.default_config(algo, num_envs=num_envs, num_steps=num_steps, num_minibatches=4,
                                   total_timesteps=iterations * num_envs * num_steps, **actor, **overrides)
    trainer = make_trainer(config, env, params)
    hp = agents.default_hparams(algo)
    train = jax.jit(trainer.train).lower(jax.random.key(0), hp).compile()
    return config.total_env_steps / best_time(lambda: train(jax.random.key(0), hp), 2)


def mlp_flops(dims: list[int]) -> int:
    return sum(2 * a * b for a, b in zip(dims[:-1], dims[1:]))


def flop_ratio(obs_dim: int, action_dim: int, hidden=(64, 64), t: int = 5, time_dim: int = 16,
               epochs: int = 4) -> float:
    """Matmul FLOPs per env step, DM-PPO / PPO. PPO: rollout actor + 2 critic forwards, then `epochs` x 3 (fwd +
    bwd) of actor + critic. DM-PPO: rollout T denoiser passes to sample + T to score the chain + 2 critics, then
    `epochs` x 3 x (T denoiser passes + critic)."""
    actor = mlp_flops([obs_dim, *hidden, action_dim])
    critic = mlp_flops([obs_dim, *hidden, 1])
    denoiser = mlp_flops([action_dim + time_dim + obs_dim, *hidden, action_dim])
    ppo = actor + 2 * critic + epochs * 3 * (actor + critic)
    dm = t * denoiser + 2 * critic + epochs * 3 * (t * denoiser + critic)
    return dm / ppo


def main() -> None:
    out = {"machine": machine_info(), "ppo": {}, "dm_ppo_vs_ppo": {}}
    for env_name in ("gymnax:CartPole-v1", "msr-80"):
        out["ppo"][env_name] = {}
        for n in ENVS:
            rate = steps_per_s("ppo", env_name, n)
            out["ppo"][env_name][n] = rate
            print(f"ppo    {env_name:20s} {n:5d} envs: {rate:12,.0f} env steps/s", flush=True)
    for env_name, obs_dim, action_dim in (("msr-3", 4, 3), ("msr-80", 81, 80)):
        for n in (64, 1024):
            ppo = steps_per_s("ppo", env_name, n)
            dm = steps_per_s("dm_ppo", env_name, n)
            row = {"ppo_steps_per_s": ppo, "dm_ppo_steps_per_s": dm, "measured_cost_ratio": ppo / dm,
                   "analytic_flop_ratio": flop_ratio(obs_dim, action_dim)}
            out["dm_ppo_vs_ppo"][f"{env_name} {n} envs"] = row
            print(f"dm_ppo {env_name:8s} {n:5d} envs: {dm:10,.0f} vs ppo {ppo:10,.0f} env steps/s -> cost x"
                  f"{row['measured_cost_ratio']:.1f} (analytic FLOP ratio x{row['analytic_flop_ratio']:.1f})", flush=True)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
