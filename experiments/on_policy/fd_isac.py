"""DM-PPO on FD-ISAC (seed 003's full-duplex ISAC base station, one-shot slots) against PPO, the off-policy DM-DDPG
of the D2RL reproduction, and the MRT + water-filling + MMSE reference.

System: the D2RL quick scale (experiments/d2rl/common.py: K = L = 2 users, N_t = N_r = 2 antennas, Table I
otherwise), raw sum-rate reward C (bit/s/Hz), every slot its own episode. 8 seeds per agent, one vmapped program
each. Every trained agent is scored by its greedy policy on the same 4096 fresh slots (16 x 256); the references by
their policies on 4096 slots.
- PPO (Gaussian, clipped) and DM-PPO (T = 5, VP, std floor 0.1): 64 envs x 8 steps, 2e5 env steps per seed,
  gamma 0 (one-shot), no entropy bonus, lr 1e-3, 64 x 64 networks.
- DM-DDPG: D2RL's quick-scale agent (64-wide, T = 6, straight-through clip gradient) with the raw reward and with
  D2RL's designed reward, 5000 epochs x 4 envs = 2e4 env steps per seed.

    python experiments/on_policy/fd_isac.py     # about 7 minutes (one core); writes results/fd_isac.json
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jaxdiff_rl.app.xla_cpu import pin_to_one_core  # noqa: E402

pin_to_one_core()  # long vmapped PPO programs deadlock XLA's CPU runtime on 2 threads: see jaxdiff_rl/app/xla_cpu.py

import jax  # noqa: E402
import numpy as np  # noqa: E402

from experiments.d2rl.common import SCALES, baselines, make_env  # noqa: E402
from jaxdiff_rl import agents  # noqa: E402
from jaxdiff_rl.train import make_trainer  # noqa: E402
from jaxdiff_rl.train.sweep import with_seeds  # noqa: E402

HERE = Path(__file__).parent
SEEDS = 8
EVAL_STEPS, EVAL_ENVS = 16, 256


def _train_and_score(name: str, config, hparams, env, params) -> dict:
    trainer = make_trainer(config, env, params)
    keys, hp = with_seeds(hparams, SEEDS)
    t0 = time.perf_counter()
    compiled = jax.jit(jax.vmap(trainer.train)).lower(keys, hp).compile()
    t1 = time.perf_counter()
    state, _ = jax.block_until_ready(compiled(keys, hp))
    t2 = time.perf_counter()
    ev = jax.jit(jax.vmap(lambda s, h: trainer.evaluate(s, jax.random.key(7), h, EVAL_STEPS, num_envs=EVAL_ENVS)))(
        state, hp)
    rate = np.asarray(ev["reward_mean"])
    steps = config.total_env_steps if hasattr(config, "total_env_steps") else config.num_iterations * config.num_envs
    out = {"greedy_sum_rate_per_seed": rate.tolist(), "mean": float(rate.mean()), "std": float(rate.std()),
           "min": float(rate.min()), "env_steps_per_seed": int(steps), "run_s": t2 - t1, "compile_s": t1 - t0}
    print(f"{name:26s} greedy C {out['mean']:.3f} ± {out['std']:.3f} (min {out['min']:.3f}) bit/s/Hz; "
          f"{steps} env steps per seed; {t2 - t1:.0f} s + {t1 - t0:.0f} s compile", flush=True)
    return out


def main() -> None:
    scale = SCALES["quick"]
    env, params = make_env(scale)
    results = {"references": baselines(scale)}
    print("references (bit/s/Hz):", {k: round(v, 3) for k, v in results["references"].items()}, flush=True)
    ppo_over = dict(num_envs=64, num_steps=8, total_timesteps=200_000)
    ppo_hp = dict(lr=1e-3, ent_coef=0.0, gamma=0.0)
    results["PPO"] = _train_and_score("PPO (Gaussian)", agents.default_config("ppo", actor="gaussian", **ppo_over),
                                      agents.default_hparams("ppo", **ppo_hp), env, params)
    results["DM-PPO"] = _train_and_score("DM-PPO (T=5, floor 0.1)", agents.default_config("dm_ppo", **ppo_over),
                                         agents.default_hparams("dm_ppo", **ppo_hp), env, params)
    for reward in ("raw", "designed"):
        results[f"DM-DDPG {reward}"] = _train_and_score(f"DM-DDPG ({reward} reward)", scale.config(reward),
                                                        scale.base_hparams(), env, params)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "fd_isac.json").write_text(json.dumps(results, indent=1))
    print(f"wrote {HERE / 'results' / 'fd_isac.json'}")


if __name__ == "__main__":
    main()
