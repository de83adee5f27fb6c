"""On-policy throughput, side by side in one process (2-core CPU numbers in experiments/on_policy/README.md):

1. PureJaxRL's CartPole configuration (4 envs x 128 steps, 5e5 env steps, 4 epochs x 4 minibatches, lr 2.5e-4
   annealed, tanh 64 x 64): our PPO against the reference design (`benchmarks/purejaxrl_design.py`, PureJaxRL's
   `ppo.py` layout), one seed and 8 seeds vmapped, env steps/s (compile excluded, best of interleaved repeats) and
   the final training return of every seed (mean return of the episodes finished in the last 10 iterations).
2. PPO env steps/s on gymnax CartPole-v1 and msr-80 at 1 ... 4096 parallel environments against a PyTorch PPO
   written the usual way (`benchmarks/torch_reference/ppo.py`: vectorised NumPy env, Python loop over steps and
   minibatches) at the same settings (num_steps = 128 up to 4 envs, then 512 / envs with a floor of 8; 4 epochs x
   4 minibatches). Needs the `torch` extra; without it that column is skipped.
3. DM-PPO's cost per env step relative to PPO's, beside the analytic matmul-FLOP ratio.

The whole process runs on one core (`jaxdiff_rl.app.xla_cpu.pin_to_one_core`, torch with one thread): long vmapped
programs on jax 0.10.2's CPU runtime can deadlock with two cores, and both sides then get the same hardware.

    python benchmarks/on_policy_speed.py            # about 10 minutes (one core); writes results/on_policy_speed.json
    python benchmarks/on_policy_speed.py --quick    # 1, 64 and 1024 envs only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import best_time, machine_info  # noqa: E402
from benchmarks.purejaxrl_design import PUREJAXRL_CARTPOLE, make_train as reference_make_train  # noqa: E402
from jaxdiff_rl import agents  # noqa: E402
from jaxdiff_rl.app.experiment import make_env  # noqa: E402
from jaxdiff_rl.app.xla_cpu import pin_to_one_core  # noqa: E402
from jaxdiff_rl.train import make_trainer  # noqa: E402

OUT = Path(__file__).parent / "results" / "on_policy_speed.json"
ENVS = (1, 4, 16, 64, 256, 1024, 4096)


def rollout_steps(num_envs: int) -> int:
    return 128 if num_envs <= 4 else max(8, 512 // num_envs)


def jax_steps_per_s(algo: str, env_name: str, num_envs: int, iterations: int = 4) -> float:
    """Env steps/s of a whole jitted training run of `iterations` iterations (compile excluded, best of 2)."""
    env, params = make_env(env_name)
    actor = {} if algo == "dm_ppo" else {"actor": "categorical" if env_name.startswith("gymnax") else "gaussian"}
    num_steps = rollout_steps(num_envs)
    config = agents.default_config(algo, num_envs=num_envs, num_steps=num_steps, num_minibatches=4,
                                   total_timesteps=iterations * num_envs * num_steps, **actor)
    hp = agents.default_hparams(algo)
    train = jax.jit(make_trainer(config, env, params).train).lower(jax.random.key(0), hp).compile()
    return config.total_env_steps / best_time(lambda: train(jax.random.key(0), hp), 2)


def torch_steps_per_s(env_name: str, num_envs: int, max_seconds: float = 4.0) -> float:
    from benchmarks.torch_reference.envs_numpy import CartPoleVec, MSRVec
    from benchmarks.torch_reference.ppo import TorchPPOConfig, train

    num_steps = rollout_steps(num_envs)
    if env_name == "gymnax:CartPole-v1":
        env, dims = CartPoleVec(num_envs, 0), {"obs_dim": 4, "action_dim": 2, "discrete": True}
    else:
        _, params = make_env(env_name)
        env = MSRVec(num_envs, 0, params.num_channels, float(params.total_power))
        dims = {"obs_dim": env.obs_dim, "action_dim": env.action_dim, "discrete": False}
    config = TorchPPOConfig(**dims, num_envs=num_envs, num_steps=num_steps,
                            total_timesteps=10**9 // (num_envs * num_steps) * num_envs * num_steps)
    return train(config, env, max_seconds=max_seconds)["steps_per_s"]


def _final_returns(episodes: np.ndarray, return_sum: np.ndarray, last: int = 10) -> np.ndarray:
    """[seeds, iterations] per-iteration counts and sums -> mean return of the episodes of the last iterations."""
    return return_sum[:, -last:].sum(1) / np.maximum(episodes[:, -last:].sum(1), 1)


def purejaxrl_comparison(seeds: int = 8, repeats: int = 4) -> dict:
    """Ours (default: truncations bootstrap from V(final obs)), ours with PureJaxRL's convention
    (`bootstrap_truncated=False`, the same work as the reference) and the reference design; 1 seed and `seeds`
    vmapped; best of `repeats` interleaved runs."""
    env, params = make_env("gymnax:CartPole-v1")
    hp = agents.default_hparams("ppo")
    steps = agents.default_config("ppo").total_env_steps
    keys = jax.random.split(jax.random.key(0), seeds)
    programs = {}
    for name, flag in (("ours", True), ("ours_pjx_gae", False)):
        train = make_trainer(agents.default_config("ppo", bootstrap_truncated=flag), env, params).train
        one = jax.jit(train).lower(keys[0], hp).compile()
        many = jax.jit(jax.vmap(train, in_axes=(0, None))).lower(keys, hp).compile()
        programs[f"{name}_1"] = lambda one=one: one(keys[0], hp)
        programs[f"{name}_many"] = lambda many=many: many(keys, hp)
    reference = reference_make_train(dict(PUREJAXRL_CARTPOLE), env, params)
    ref_one = jax.jit(reference).lower(keys[0]).compile()
    ref_many = jax.jit(jax.vmap(reference)).lower(keys).compile()
    programs["reference_1"] = lambda: ref_one(keys[0])
    programs["reference_many"] = lambda: ref_many(keys)
    times = {name: [] for name in programs}
    returns = {}
    for _ in range(repeats):  # interleaved, so a noisy stretch hits every design
        for name, fn in programs.items():
            t0 = time.perf_counter()
            out = jax.block_until_ready(fn())
            times[name].append(time.perf_counter() - t0)
            if name.endswith("many"):
                if name.startswith("reference"):
                    episodes, sums = np.asarray(out["metrics"]["episodes"]), np.asarray(out["metrics"]["return_sum"])
                else:
                    episodes = np.asarray(out[1]["episodes"])
                    sums = np.nan_to_num(np.asarray(out[1]["return_mean"])) * episodes
                returns[name[:-5]] = _final_returns(episodes, sums).tolist()
    rate = {k: (steps * (seeds if k.endswith("many") else 1)) / min(v) for k, v in times.items()}
    median = {k: float(np.median(v)) for k, v in times.items()}
    return {"config": PUREJAXRL_CARTPOLE, "seeds": seeds, "repeats": repeats, "env_steps_per_s": rate,
            "median_s": median,
            **{f"ratio_{design}_{n}": rate[f"{design}_{n}"] / rate[f"reference_{n}"]
               for design in ("ours", "ours_pjx_gae") for n in ("1", "many")},
            "final_return": returns}


def mlp_flops(dims: list[int]) -> int:
    return sum(2 * a * b for a, b in zip(dims[:-1], dims[1:]))


def ppo_flops(obs_dim: int, action_dim: int, hidden=(64, 64), epochs: int = 4) -> int:
    """Matmul FLOPs per env step of PPO: rollout actor + critic, V(s') batched after the rollout, then `epochs` x 3
    (forward + backward) of actor + critic."""
    actor = mlp_flops([obs_dim, *hidden, action_dim])
    critic = mlp_flops([obs_dim, *hidden, 1])
    return actor + 2 * critic + epochs * 3 * (actor + critic)


def ppo_flops_per_step(env_name: str) -> int:
    """`ppo_flops` of section 2's environments (CartPole: 4 observations, 2 logits; msr-80: 81 and 80)."""
    return ppo_flops(4, 2) if env_name.startswith("gymnax:CartPole") else ppo_flops(81, 80)


def flop_ratio(obs_dim: int, action_dim: int, hidden=(64, 64), t: int = 5, time_dim: int = 16,
               epochs: int = 4) -> float:
    """Matmul FLOPs per env step, DM-PPO / PPO. PPO: rollout actor + critic, V(s') batched after the rollout, then
    `epochs` x 3 (fwd + bwd) of actor + critic. DM-PPO: rollout T denoiser passes (the chain's log-probability comes
    from the sampler's own predictions) + 2 critics, then `epochs` x 3 x (T denoiser passes + critic)."""
    critic = mlp_flops([obs_dim, *hidden, 1])
    denoiser = mlp_flops([action_dim + time_dim + obs_dim, *hidden, action_dim])
    dm = t * denoiser + 2 * critic + epochs * 3 * (t * denoiser + critic)
    return dm / ppo_flops(obs_dim, action_dim, hidden, epochs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1, 64 and 1024 envs only")
    args = parser.parse_args()
    pinned = pin_to_one_core()
    env_counts = (1, 64, 1024) if args.quick else ENVS
    try:
        import torch

        torch.set_num_threads(1)
        have_torch = True
    except ImportError:
        have_torch = False
        print("torch not installed (pip install -e '.[torch]'): the PyTorch column is skipped", flush=True)
    out = {"machine": machine_info(), "one_core": pinned, "purejaxrl_cartpole": {}, "ppo": {}, "dm_ppo_vs_ppo": {}}

    pj = purejaxrl_comparison()
    out["purejaxrl_cartpole"] = pj
    r, ret = pj["env_steps_per_s"], pj["final_return"]
    for design, label in (("ours", "ours (truncation bootstrapped)"), ("ours_pjx_gae", "ours, PureJaxRL's GAE")):
        print(f"PureJaxRL CartPole config, {label}: 1 seed {r[design + '_1']:,.0f} vs reference design "
              f"{r['reference_1']:,.0f} env steps/s (x{pj[f'ratio_{design}_1']:.3f}); {pj['seeds']} seeds vmapped "
              f"{r[design + '_many']:,.0f} vs {r['reference_many']:,.0f} (x{pj[f'ratio_{design}_many']:.3f}); "
              f"final return {np.mean(ret[design]):.1f} (min {np.min(ret[design]):.1f})", flush=True)
    print(f"reference design final return {np.mean(ret['reference']):.1f} (min {np.min(ret['reference']):.1f})",
          flush=True)

    for env_name in ("gymnax:CartPole-v1", "msr-80"):
        out["ppo"][env_name] = {}
        for n in env_counts:
            row = {"num_steps": rollout_steps(n), "jax_steps_per_s": jax_steps_per_s("ppo", env_name, n)}
            row["jax_gflops"] = row["jax_steps_per_s"] * ppo_flops_per_step(env_name) / 1e9
            if have_torch:
                row["torch_steps_per_s"] = torch_steps_per_s(env_name, n)
                row["torch_gflops"] = row["torch_steps_per_s"] * ppo_flops_per_step(env_name) / 1e9
                row["speedup"] = row["jax_steps_per_s"] / row["torch_steps_per_s"]
            out["ppo"][env_name][n] = row
            torch_part = (f"  torch {row['torch_steps_per_s']:10,.0f} ({row['torch_gflops']:5.1f} GFLOP/s)  -> "
                          f"x{row['speedup']:.1f}" if have_torch else "")
            print(f"ppo {env_name:20s} {n:5d} envs: jax {row['jax_steps_per_s']:12,.0f} env steps/s "
                  f"({row['jax_gflops']:5.1f} GFLOP/s){torch_part}", flush=True)
    for env_name, obs_dim, action_dim in (("msr-3", 4, 3), ("msr-80", 81, 80)):
        for n in (64, 1024):
            ppo = jax_steps_per_s("ppo", env_name, n)
            dm = jax_steps_per_s("dm_ppo", env_name, n)
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
