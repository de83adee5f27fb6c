"""Few-step generators side by side: updates/s and actions/s of the diffusion agents with a T-step DDPM actor vs
K-step flow and 1-2 step consistency actors, at the reference settings, in one process on one machine.

    python benchmarks/few_step.py            # writes benchmarks/results/few_step.json
    python benchmarks/few_step.py --quick    # fewer repeats

Agents and settings (the references' own): D2SAC on aigc (2 x 256 Mish actor and critics, T = 5 VP, batch 512,
discrete: the chain generates logits), DM-DDPG on msr-80 (4 x 256 Mish actor, P = 6 VP, batch 256, Box
actions). Generative optimizer (DiffSG: 3 x 256 Mish, T = 20 cosine, w = 500 CFG) on msr-80 and NU: solutions/s
of one solve of 1000 instances. updates/s: one jitted gradient update (critics + actor through the whole chain +
targets); actions/s: one jitted `act` at batch 1 (latency, a per-slot decision) and batch 1024 (throughput).
The return / exceed ratio each generator reaches at a fixed training budget is measured by
experiments/few_step/run.py (too long for a benchmark): experiments/few_step/results/{rl,optimizer}.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import best_time, machine_info  # noqa: E402
from jaxdiff_rl import agents  # noqa: E402
from jaxdiff_rl.agents import ActorConfig  # noqa: E402
from jaxdiff_rl.agents.base import act, init_agent  # noqa: E402
from jaxdiff_rl.train.buffer import Batch  # noqa: E402
import envs  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "few_step.json"

#: (label, generator, steps); the DDPM entry takes the agent's reference T
GENERATORS = (("ddpm T", "ddpm", None), ("flow K=1", "flow", 1), ("flow K=2", "flow", 2),
              ("consistency 1", "consistency", 1), ("consistency 2", "consistency", 2))
AGENTS = (("d2sac", "aigc", 512), ("dm_ddpg", "msr-80", 256))


def agent_speed(algo: str, env_name: str, batch: int, generator: str, steps: int | None, repeats: int) -> dict:
    env, params = envs.make(env_name)
    obs_space, act_space = env.observation_space(params), env.action_space(params)
    discrete = hasattr(act_space, "n")
    obs_dim = int(np.prod(obs_space.shape))
    action_dim = int(act_space.n) if discrete else int(np.prod(act_space.shape))
    config = agents.default_config(algo)
    actor = ActorConfig(**{**config.actor.__dict__, "generator": generator,
                           "diffusion_steps": steps or config.actor.diffusion_steps})
    config = config.replace(actor=actor, batch_size=batch)
    hp = agents.default_hparams(algo)
    state = init_agent(jax.random.key(0), config, hp, obs_dim, action_dim, discrete)
    k = jax.random.split(jax.random.key(1), 4)
    obs = jax.random.normal(k[0], (batch, obs_dim))
    action = (jax.random.randint(k[1], (batch,), 0, action_dim) if discrete
              else jax.random.uniform(k[1], (batch, action_dim), minval=-1.0, maxval=1.0))
    data = Batch(obs=obs, action=action, reward=jax.random.normal(k[2], (batch,)),
                 next_obs=jax.random.normal(k[3], (batch, obs_dim)), discount=jnp.full((batch,), 0.95))
    update = jax.jit(lambda s, key: agents.module(algo).update(key, config, s, data, hp, action_dim, discrete)[0])
    jax.block_until_ready(update(state, jax.random.key(2)))
    t_update = best_time(lambda: update(state, jax.random.key(3)), repeats)
    out = {"updates_per_s": 1.0 / t_update, "update_ms": 1e3 * t_update,
           "evaluations": actor.generator_config.evaluations()}
    for n in (1, 1024):
        o = jax.random.normal(k[0], (n, obs_dim))
        fn = jax.jit(lambda s, key, o=o: act(key, config, s, o, hp, action_dim, discrete, explore=False))
        jax.block_until_ready(fn(state, jax.random.key(4)))
        t = best_time(lambda: fn(state, jax.random.key(5)), repeats * (10 if n == 1 else 1))
        out[f"actions_per_s_batch{n}"] = n / t
    return out


def optimizer_speed(problem: str, generator: str, steps: int | None, repeats: int) -> dict:
    from envs.datasets import generate_dataset
    from jaxdiff_rl.optimize import GDMConfig, GDMHparams, GenerativeOptimizer

    data = generate_dataset(jax.random.key(0), problem, 1000)
    x, y = jnp.asarray(data["x"]), jnp.asarray(data["y"])
    config = GDMConfig(x_dim=x.shape[1], y_dim=y.shape[1], generator=generator, num_steps=steps or 20,
                       prediction="x0" if problem == "nu" else "eps")
    opt = GenerativeOptimizer(config)
    state = opt.init(jax.random.key(1), x, y)
    hp = GDMHparams()
    fn = jax.jit(lambda s, key: opt.sample(s, key, x, hp))
    jax.block_until_ready(fn(state, jax.random.key(2)))
    t = best_time(lambda: fn(state, jax.random.key(3)), repeats)
    return {"solutions_per_s": x.shape[0] / t, "evaluations": config.generator_config.evaluations()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    args = ap.parse_args()
    repeats = 3 if args.quick else 10
    results: dict = {"machine": machine_info(), "agents": {}, "optimizer": {}}
    for algo, env_name, batch in AGENTS:
        rows = {}
        for label, gen, steps in GENERATORS:
            rows[label] = agent_speed(algo, env_name, batch, gen, steps, repeats)
        base = rows["ddpm T"]
        print(f"\n{algo} on {env_name} (batch {batch}); ratios vs the DDPM actor")
        print(f"{'generator':15s} {'evals':>5s} {'updates/s':>10s} {'x':>5s} {'act/s b=1':>10s} {'x':>5s} "
              f"{'act/s b=1024':>12s} {'x':>5s}")
        for label, r in rows.items():
            r["update_speedup"] = r["updates_per_s"] / base["updates_per_s"]
            r["act_speedup_batch1"] = r["actions_per_s_batch1"] / base["actions_per_s_batch1"]
            r["act_speedup_batch1024"] = r["actions_per_s_batch1024"] / base["actions_per_s_batch1024"]
            print(f"{label:15s} {r['evaluations']:5d} {r['updates_per_s']:10.1f} {r['update_speedup']:5.2f} "
                  f"{r['actions_per_s_batch1']:10.0f} {r['act_speedup_batch1']:5.2f} "
                  f"{r['actions_per_s_batch1024']:12.0f} {r['act_speedup_batch1024']:5.2f}", flush=True)
        results["agents"][f"{algo}/{env_name}"] = rows
    for problem in ("msr-80", "nu"):
        rows = {label: optimizer_speed(problem, gen, steps if gen != "ddpm" else None, repeats)
                for label, gen, steps in GENERATORS}
        base = rows["ddpm T"]["solutions_per_s"]
        print(f"\noptimizer on {problem}: solutions/s (1000 instances, w = 500 CFG: 2 evaluations per step)")
        for label, r in rows.items():
            r["speedup"] = r["solutions_per_s"] / base
            print(f"{label:15s} {r['evaluations']:5d} {r['solutions_per_s']:10.0f} {r['speedup']:6.2f}x", flush=True)
        results["optimizer"][problem] = rows
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(results, indent=1))
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
