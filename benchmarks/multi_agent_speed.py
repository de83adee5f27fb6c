"""Multi-agent throughput, side by side in one process (2-core CPU numbers in experiments/multi_agent/README.md):

1. MADDPG on ic-power (K = 5 Rayleigh links): agent-steps/s (iterations x envs x agents / s) of our one-jit loop
   against a PyTorch MADDPG of the same shapes with a vectorised NumPy env (`benchmarks/torch_reference/maddpg.py`),
   at 1 ... 256 parallel environments; one env step and one update (batch 256) per iteration in both.
2. Scaling in the number of agents at 16 environments: MADDPG (ours and PyTorch) at K = 5 ... 40.
3. The mean-field agent's cost per step as K grows (16 ... 256 links at ic-power-64's density): the time of one
   MFAC update (batch 64 joint transitions), of one MADDPG update for contrast (its critic reads the K^2 gains and
   all K actions), and of one whole loop iteration (8 envs: env step, acting, one update), with the log-log slope
   of each (1 = linear in K, 2 = quadratic).

The WMMSE reference, which the loop computes every slot only for its `reference_fraction` metric, is cut to one
iteration here (the PyTorch loop computes no metric). The process runs on one core (torch with one thread), so both
sides get the same hardware. Compile time is excluded (best of 2 after a warm-up call).

    python benchmarks/multi_agent_speed.py            # about 10 minutes; writes results/multi_agent_speed.json
    python benchmarks/multi_agent_speed.py --quick    # fewer points
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxdiff_rl.app.xla_cpu import pin_to_one_core  # noqa: E402

PINNED = pin_to_one_core()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402
from benchmarks.common import best_time, machine_info  # noqa: E402
from jaxdiff_rl.agents import maddpg, mean_field  # noqa: E402
from jaxdiff_rl.agents.networks import ActorConfig  # noqa: E402
from jaxdiff_rl.train import make_trainer  # noqa: E402
from jaxdiff_rl.train.buffer import Batch  # noqa: E402

OUT = Path(__file__).parent / "results" / "multi_agent_speed.json"
ACTOR, CRITIC = (64, 64), (128, 128)
HP = dict(gamma=0.0, lr_actor=1e-3, explore_noise=0.2)


def warmup(num_envs: int, batch_size: int = 256) -> int:
    """Iterations before the first update (both loops wait for a batch's worth of transitions)."""
    return -(-batch_size // num_envs)


def maddpg_flops(num_links: int, num_envs: int, iterations: int, batch: int = 256) -> float:
    """Matmul FLOPs of a run of `iterations` iterations (acting in N envs every iteration, one MADDPG update in every
    iteration after the warm-up), backward = 2x forward (1x where only the input gradient is needed): per update
    target actor B K a + target critic B c + critic fwd/bwd 3 B c + actor fwd/bwd 3 B K a + critic on the K
    substituted joint actions, fwd and input-backward, 2 K B c; per iteration acting N K a."""
    k = num_links
    mlp = lambda dims: sum(2 * x * y for x, y in zip(dims[:-1], dims[1:]))
    a = mlp([6 + k, *ACTOR, 1])
    c = mlp([k * k + 2 * k + k, *CRITIC, k])
    update = batch * k * a + batch * c + 3 * batch * c + 3 * batch * k * a + 2 * k * batch * c
    return (iterations - warmup(num_envs, batch)) * update + iterations * num_envs * k * a


def jax_agent_steps_per_s(num_links: int, num_envs: int, iterations: int) -> float:
    env, params = envs.make("ic-power", num_links=num_links, wmmse_iterations=1)
    config = maddpg.default_config("maddpg", actor=ActorConfig(kind="deterministic", hidden_dims=ACTOR),
                                   critic_hidden_dims=CRITIC, num_envs=num_envs, batch_size=256,
                                   buffer_size=100_000, num_iterations=iterations, learning_starts=0)
    hp = maddpg.default_hparams(**HP)
    train = jax.jit(make_trainer(config, env, params).train).lower(jax.random.PRNGKey(0), hp).compile()
    return iterations * num_envs * num_links / best_time(lambda: train(jax.random.PRNGKey(0), hp), 2)


def torch_agent_steps_per_s(num_links: int, num_envs: int, iterations: int) -> float:
    from benchmarks.torch_reference.maddpg import train
    run = lambda: train(num_envs, num_links, iterations, batch_size=256, buffer_size=100_000, learning_starts=0,
                        actor_hidden=ACTOR, critic_hidden=CRITIC, explore_noise=HP["explore_noise"])
    return max(run()["agent_steps_per_s"] for _ in range(2))


def _random_batch(b: int, k: int, o: int, s: int) -> Batch:
    ks = jax.random.split(jax.random.PRNGKey(1), 5)
    obs = lambda kk: {"local": jax.random.normal(kk, (b, k, o)), "global": jax.random.normal(kk, (b, s))}
    return Batch(obs=obs(ks[0]), action=jax.random.uniform(ks[1], (b, k, 1), minval=-1, maxval=1),
                 reward=jax.random.normal(ks[2], (b, k)), next_obs=obs(ks[3]), discount=jnp.zeros((b,)))


def update_seconds(algo: str, k: int, batch: int) -> float:
    """One update of `algo` on a batch of `batch` joint transitions of K agents (ic-power's widths)."""
    config = maddpg.default_config(algo, actor=ActorConfig(kind="deterministic", hidden_dims=ACTOR),
                                   critic_hidden_dims=CRITIC, batch_size=batch)
    hp = maddpg.default_hparams(**HP)
    if algo == "mfac":
        state = mean_field.init(jax.random.PRNGKey(0), config, hp, k, 6, 1, 1)
        data, fn = _random_batch(batch, k, 7, 1), mean_field.update
    else:
        state = maddpg.init(jax.random.PRNGKey(0), config, hp, k, 6, k * k + 2 * k, 1)
        data, fn = _random_batch(batch, k, 6, k * k + 2 * k), maddpg.update
    step = jax.jit(lambda st, d: fn(jax.random.PRNGKey(2), config, st, d, hp, 1))
    step(state, data)
    return best_time(lambda: step(state, data), 5)


def mean_field_iteration_seconds(k: int, iterations: int = 20, num_envs: int = 8) -> float:
    env, params = envs.make("ic-power", **{**envs.ICPower.dense_preset(k), "wmmse_iterations": 1})
    config = maddpg.default_config("mfac", actor=ActorConfig(kind="deterministic", hidden_dims=ACTOR),
                                   critic_hidden_dims=CRITIC, num_envs=num_envs, batch_size=64,
                                   buffer_size=4096, num_iterations=iterations, learning_starts=0)
    hp = maddpg.default_hparams(**HP)
    train = jax.jit(make_trainer(config, env, params).train).lower(jax.random.PRNGKey(0), hp).compile()
    return best_time(lambda: train(jax.random.PRNGKey(0), hp), 2) / iterations


def slope(ks: list[int], seconds: list[float]) -> float:
    """Least-squares exponent of seconds ~ K^slope."""
    return float(np.polyfit(np.log(ks), np.log(seconds), 1)[0])


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--iterations", type=int, default=300)
    args = p.parse_args(argv)
    try:
        import torch
        torch.set_num_threads(1)
        have_torch = True
    except ImportError:
        have_torch = False
        print("torch not installed (pip install -e '.[torch]'): the PyTorch columns are skipped")
    out = {"machine": machine_info(), "pinned_to_one_core": PINNED, "iterations": args.iterations,
           "actor_hidden": ACTOR, "critic_hidden": CRITIC}
    env_counts = (1, 16, 256) if args.quick else (1, 4, 16, 64, 256)
    from benchmarks.common import matmul_ceiling
    ceiling = matmul_ceiling(2e9, 3)
    out["matmul_ceiling_flops"] = ceiling
    print(f"matmul ceiling of this core: {ceiling / 1e9:.1f} GFLOP/s")
    rows = []
    for n in env_counts:
        iters = args.iterations + warmup(n)
        ours = jax_agent_steps_per_s(5, n, iters)
        ref = torch_agent_steps_per_s(5, n, iters) if have_torch else float("nan")
        flops = maddpg_flops(5, n, iters) / (iters * n * 5 / ours)  # FLOP/s
        rows.append({"num_envs": n, "iterations": iters, "jax": ours, "torch": ref, "ratio": ours / ref,
                     "jax_fraction_of_ceiling": flops / ceiling})
        print(f"MADDPG K=5, {n:4d} envs: ours {ours:10.0f} agent-steps/s ({flops / ceiling:.0%} of the matmul "
              f"ceiling), PyTorch {ref:9.0f}: {ours / ref:6.1f}x", flush=True)
    out["maddpg_envs"] = rows
    rows = []
    for k in ((5, 20) if args.quick else (5, 10, 20, 40)):
        ours = jax_agent_steps_per_s(k, 16, args.iterations + warmup(16))
        ref = torch_agent_steps_per_s(k, 16, args.iterations + warmup(16)) if have_torch else float("nan")
        rows.append({"num_agents": k, "jax": ours, "torch": ref, "ratio": ours / ref})
        print(f"MADDPG 16 envs, K={k:3d}: ours {ours:10.0f} agent-steps/s, PyTorch {ref:9.0f}: {ours / ref:6.1f}x",
              flush=True)
    out["maddpg_agents"] = rows
    ks = [16, 64, 256] if args.quick else [16, 32, 64, 128, 256]
    mf = {"num_agents": ks, "mfac_update_b16_s": [], "mfac_update_b64_s": [], "maddpg_update_b64_s": [],
          "mfac_iteration_s": []}
    for k in ks:
        mf["mfac_update_b16_s"].append(update_seconds("mfac", k, 16))
        mf["mfac_update_b64_s"].append(update_seconds("mfac", k, 64))
        mf["maddpg_update_b64_s"].append(update_seconds("maddpg", k, 64) if k <= 128 else float("nan"))
        mf["mfac_iteration_s"].append(mean_field_iteration_seconds(k))
        print(f"K={k:4d}: MFAC update {1e3 * mf['mfac_update_b16_s'][-1]:8.2f} ms (batch 16), "
              f"{1e3 * mf['mfac_update_b64_s'][-1]:8.2f} ms (batch 64); MADDPG update (batch 64) "
              f"{1e3 * mf['maddpg_update_b64_s'][-1]:8.2f} ms; MFAC loop iteration "
              f"{1e3 * mf['mfac_iteration_s'][-1]:8.2f} ms", flush=True)
    for name in ("mfac_update_b16_s", "mfac_update_b64_s", "maddpg_update_b64_s", "mfac_iteration_s"):
        pts = [(k, v) for k, v in zip(ks, mf[name]) if k >= 32 and np.isfinite(v)]
        mf[f"slope_{name[:-2]}"] = slope([k for k, _ in pts], [v for _, v in pts]) if len(pts) > 1 else float("nan")
    print("log-log slopes from K=32 (1 = linear, 2 = quadratic): " + ", ".join(
        f"{name[6:]} {mf[name]:.2f}" for name in mf if name.startswith("slope_")))
    out["mean_field_scaling"] = mf
    if not args.quick:
        OUT.parent.mkdir(exist_ok=True)
        OUT.write_text(json.dumps(out, indent=1))
        print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
