"""End-to-end training speed: jaxdiff-rl vs a PyTorch implementation of the same algorithm, side by side in one run.

Same algorithm, environment dynamics, network sizes, hyperparameters, number of environment steps and gradient
updates, same machine (the PyTorch reference: `benchmarks/torch_reference/`, NumPy environments stepped in Python).
An *epoch* is 1000 environment transitions + 1000 gradient updates (the spec's unit for D2SAC).

Cases (algorithm on its environment):
1. reference, single seed: D2SAC on aigc (2 x 256 actor and critics, batch 512, T = 5, n = 3) and DM-DDPG on
   msr-80 (4 x 256 actor, 2 x 256 critics, batch 256, T = 6), 1 environment. Targets: >= 2.5x per epoch; and the
   D2SAC update at >= 70% of the bare-matmul FLOP/s ceiling measured in the same run.
2. 16-seed sweep at the D2SAC reference settings: one `vmap(train)` over 16 seeds vs 16 sequential PyTorch runs.
   Target >= 2.5x.
3. small: both algorithms with 64-wide networks, batch 64, 16 parallel environments. Target >= 10x per epoch.
   Case `small` profiles it: the update's FLOP/s against a bare [64, 64] matmul chain, and the best ratio to
   PyTorch that an implementation running at that bare rate could reach.
4. to the same reward (small settings): DM-DDPG on msr-3 (16 environments, 64 transitions + 50 updates per
   iteration), behaviour fraction of the water-filling optimum vs wall-clock for both over the same number of
   iterations; the time to reach a common level, defined as: L = min over the two runs of their best 3-iteration
   moving average, minus 10% of (that best - the run's first value) -- i.e. 90% of the improvement the weaker run
   achieved; each run's time is the wall-clock when its moving average first reaches L (JAX: reported with and
   without compile). msr-3 because it is learnt within a few thousand updates; at a CPU budget of minutes neither
   D2SAC on aigc nor DM-DDPG on msr-80 moves off its initial level (12 iterations of 1000 updates, see README).

Timing: JAX programs are compiled ahead of time (compile time reported separately); both sides first collect one
batch of transitions untimed (so every timed iteration updates). With `--fraction f` the per-epoch cases time f x
an epoch (same number of steps and updates on both sides) and report time / f; time is linear in the number of
updates and steps, so this only shortens the run.

    python benchmarks/train_speed.py                # writes benchmarks/results/train_speed.json and train_speed.png
    python benchmarks/train_speed.py --quick        # a smoke run (tiny fractions; numbers not meaningful)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import envs  # noqa: E402
from benchmarks.common import (best_time, machine_info, matmul_ceiling, update_flops,  # noqa: E402
                               update_utilisation)
from jaxdiff_rl import agents  # noqa: E402
from jaxdiff_rl.train import make_trainer  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "train_speed.json"
ENV = {"d2sac": "aigc", "dm_ddpg": "msr-80"}
METRIC = {"d2sac": "reward_mean", "dm_ddpg": "optimum_fraction"}


def jax_config(algo: str, small: bool, num_envs: int, transitions: int, updates: int):
    """The algorithm's default config (the reference settings) or its small variant, with `transitions` env
    transitions and `updates` updates per iteration."""
    c = agents.default_config(algo, num_envs=num_envs, steps_per_iter=max(1, transitions // num_envs),
                              updates_per_iter=updates, num_iterations=1, learning_starts=0)
    if algo == "d2sac":
        c = c.replace(buffer_size=100_000)  # 1e6 in the spec; the runs here never exceed 1e5 transitions
    if small:
        depth = len(c.actor.hidden_dims)
        c = c.replace(actor=dataclasses.replace(c.actor, hidden_dims=(64,) * depth), critic_hidden_dims=(64, 64),
                      batch_size=64)
    return c


def torch_config(config, hparams, env_name: str):
    from benchmarks.torch_reference.agents import TorchConfig

    env, params = envs.make(env_name)
    spec = make_trainer(config, env, params).spec
    return TorchConfig.from_jax(config, hparams, spec.obs_dim, spec.dim)


def torch_env(env_name: str):
    from benchmarks.torch_reference.envs_numpy import AIGCEnv, MSREnv

    if env_name == "aigc":
        return AIGCEnv
    if env_name == "msr-3":
        return partial(MSREnv, num_channels=3, total_power=10.0)
    return MSREnv


# --- JAX side ------------------------------------------------------------------------------------------------------
class JaxRun:
    """One (or a vmapped batch of) training run(s), compiled ahead of time: `fill()` collects one batch untimed,
    `iteration()` runs one iteration (steps + updates) and returns its metrics."""

    def __init__(self, config, hparams, seeds: int | None = None, env_name: str | None = None, fill: bool = True):
        env, params = envs.make(env_name or ENV[config.algo])
        self.hp = hparams
        fill_cfg = config.replace(steps_per_iter=-(-config.batch_size // config.num_envs), updates_per_iter=1)
        trainer, filler = make_trainer(config, env, params), make_trainer(fill_cfg, env, params)
        self.spec = trainer.spec
        init = lambda k: trainer.init(k, hparams)
        run = lambda t, s: t.run(s, hparams, 1)
        keys = jax.random.split(jax.random.PRNGKey(0), seeds) if seeds else jax.random.PRNGKey(0)
        vm = (lambda f: jax.vmap(f)) if seeds else (lambda f: f)
        t0 = time.perf_counter()
        self.state = jax.jit(vm(init))(keys)
        if fill:
            self._fill = jax.jit(vm(partial(run, filler))).lower(self.state).compile()
        self._iter = jax.jit(vm(partial(run, trainer))).lower(self.state).compile()
        self.compile_s = time.perf_counter() - t0

    def fill(self) -> None:
        self.state, _ = self._fill(self.state)
        jax.block_until_ready(self.state)

    def iteration(self) -> dict:
        self.state, metrics = self._iter(self.state)
        return jax.tree_util.tree_map(np.asarray, jax.block_until_ready(metrics))


def jax_epoch_time(config, hparams, repeats: int, seeds: int | None = None) -> tuple[float, float]:
    run = JaxRun(config, hparams, seeds)
    run.fill()
    return best_time(run.iteration, repeats), run.compile_s


# --- PyTorch side --------------------------------------------------------------------------------------------------
def torch_epoch_time(config, hparams, repeats: int, seed: int = 0) -> float:
    from benchmarks.torch_reference.loop import train

    env_name = ENV[config.algo]
    records = train(torch_config(config, hparams, env_name), torch_env(env_name), config.num_envs, repeats,
                    config.steps_per_iter, config.updates_per_iter, seed=seed, prefill=config.batch_size)
    times = np.diff([0.0] + [r["wall_s"] for r in records])
    return float(np.min(times))


# --- cases ---------------------------------------------------------------------------------------------------------
def per_epoch(algo: str, small: bool, fraction: float, repeats: int) -> dict:
    n = 16 if small else 1
    k = max(1, int(round(1000 * fraction)))
    config = jax_config(algo, small, n, k, k)
    hp = agents.default_hparams(algo)
    t_jax, compile_s = jax_epoch_time(config, hp, repeats)
    t_torch = torch_epoch_time(config, hp, repeats)
    scale = 1000.0 / k
    out = {"algo": algo, "env": ENV[algo], "setting": "small" if small else "reference", "num_envs": n,
           "timed_transitions": config.steps_per_iter * n, "timed_updates": k,
           "jax_epoch_s": t_jax * scale, "torch_epoch_s": t_torch * scale, "speedup": t_torch / t_jax,
           "jax_compile_s": compile_s}
    env, params = envs.make(ENV[algo])
    spec = make_trainer(config, env, params).spec
    flops = update_flops(config, spec.obs_dim, spec.dim, spec.discrete)
    out["update_gflop"] = flops / 1e9
    out["jax_gflops_per_s_epoch"] = flops * k / t_jax / 1e9  # updates only; env steps and acting add a little
    print(f"{out['setting']:9s} {algo:7s} {ENV[algo]:6s} {n:2d} env: jax {out['jax_epoch_s']:8.2f} s/epoch, torch "
          f"{out['torch_epoch_s']:8.2f} s/epoch -> {out['speedup']:5.2f}x  (compile {compile_s:.1f} s; "
          f"{out['jax_gflops_per_s_epoch']:.1f} GFLOP/s over the epoch)", flush=True)
    return out


def reference_utilisation(repeats: int) -> dict:
    """One D2SAC reference update: analytic FLOPs / time vs a bare [512, 256] x [256, 256] matmul chain, and a
    per-stage breakdown."""
    config = jax_config("d2sac", False, 1, 1000, 1)
    hp = agents.default_hparams("d2sac")
    run = JaxRun(config, hp)
    run.fill()
    out = update_utilisation(config, hp, run.state, run.spec, repeats + 3)
    out["update_ms"] = 1e3 * out["update_s"]
    out["breakdown_ms"] = update_breakdown(config, hp, run.state, run.spec, repeats + 3)
    print(f"D2SAC reference update: {out['update_gflop']:.2f} GFLOP in {out['update_ms']:.1f} ms = "
          f"{out['update_gflops_per_s']:.1f} GFLOP/s; matmul ceiling {out['ceiling_gflops_per_s']:.1f} GFLOP/s -> "
          f"{100 * out['utilisation']:.0f}% (target >= 70%)", flush=True)
    print("  where the time goes (ms, each stage jitted alone): " +
          ", ".join(f"{k} {v:.1f}" for k, v in out["breakdown_ms"].items()), flush=True)
    return out


def update_breakdown(config, hp, state, spec, repeats: int) -> dict:
    """Where one D2SAC reference update's time goes: each stage jitted on its own with the update's shapes."""
    from jaxdiff_rl.agents.base import critic_step, make_critic, polyak
    from jaxdiff_rl.agents.networks import actor_forward
    from jaxdiff_rl.train.buffer import buffer_sample

    agent, key, a = state.agent, jax.random.PRNGKey(1), spec.dim
    critic_net = make_critic(config, a, True)
    batch = jax.jit(lambda k: buffer_sample(state.buffer, k, config.batch_size, config.n_step, hp.gamma))(key)

    def target(agent, batch, k):
        nxt = actor_forward(config.actor, agent.target_actor, k, batch.next_obs, a, True)
        q_next = jnp.min(critic_net.apply(agent.target_critic, batch.next_obs), axis=0)
        return batch.reward + batch.discount * jnp.sum(nxt.probs * q_next, -1)

    def actor_step(agent, batch, k):
        def loss(p):
            out = actor_forward(config.actor, p, k, batch.obs, a, True)
            return -jnp.mean(jnp.sum(out.probs * jax.lax.stop_gradient(out.probs), -1))
        return jax.grad(loss)(agent.actor)

    noise = lambda k: jax.random.normal(k, (config.actor.diffusion_steps + 1, config.batch_size, a))
    y = jax.jit(target)(agent, batch, key)
    stages = {
        "buffer_sample": (lambda k: buffer_sample(state.buffer, k, config.batch_size, config.n_step, hp.gamma), (key,)),
        "target_chain_and_critics": (target, (agent, batch, key)),
        "critic_fwd_bwd_adam": (lambda ag, b, y: critic_step(critic_net, ag, b, y, hp, True)[:3], (agent, batch, y)),
        "actor_chain_fwd_bwd": (actor_step, (agent, batch, key)),
        "polyak_both": (lambda ag: (polyak(ag.target_actor, ag.actor, hp.tau), polyak(ag.target_critic, ag.critic, hp.tau)),
                        (agent,)),
        "chain_noise_rng": (noise, (key,)),
    }
    out = {}
    for name, (fn, args) in stages.items():
        c = jax.jit(fn).lower(*args).compile()
        out[name] = 1e3 * best_time(lambda: c(*args), repeats)
    return out


def small_profile(algo: str, repeats: int, torch_epoch_s: float | None) -> dict:
    """Where a small-setting update's time goes (64-wide, batch 64): its analytic matmul FLOPs over the per-update
    time inside the training loop (an iteration of 200 updates and one env step), against a bare chain of
    [64, 64] x [64, 64] matmuls of the same FLOPs -- the machine's rate at these shapes, which is what bounds
    any implementation. With PyTorch's epoch time, the best ratio an implementation at that bare rate could reach
    (1000 updates at the ceiling + our measured env-step time)."""
    k = 200
    config = jax_config(algo, True, 16, 16, k)
    hp = agents.default_hparams(algo)
    run = JaxRun(config, hp)
    run.fill()
    t_update = best_time(run.iteration, repeats + 3) / k
    flops = update_flops(config, run.spec.obs_dim, run.spec.dim, run.spec.discrete)
    ceiling = matmul_ceiling(flops * 20, repeats + 3, batch=64, width=64)
    steps = jax_config(algo, True, 16, 1000, 1)
    srun = JaxRun(steps, hp)
    srun.fill()
    t_steps = best_time(srun.iteration, repeats + 3)  # 62 vector steps x 16 envs (acting chains) + 1 update
    out = {"algo": algo, "update_mflop": flops / 1e6, "update_ms": 1e3 * t_update,
           "update_gflops_per_s": flops / t_update / 1e9, "ceiling_64_gflops_per_s": ceiling / 1e9,
           "utilisation_64": flops / t_update / ceiling, "env_steps_per_epoch_s": t_steps,
           "epoch_at_ceiling_s": 1000 * flops / ceiling + t_steps}
    if torch_epoch_s:
        out["best_possible_speedup"] = torch_epoch_s / out["epoch_at_ceiling_s"]
    print(f"small     {algo:7s} update {out['update_mflop']:.0f} MFLOP in {out['update_ms']:.2f} ms = "
          f"{out['update_gflops_per_s']:.1f} GFLOP/s; bare [64, 64] matmul chain {out['ceiling_64_gflops_per_s']:.1f} "
          f"GFLOP/s -> {100 * out['utilisation_64']:.0f}%; an epoch at that ceiling {out['epoch_at_ceiling_s']:.2f} s"
          + (f" = {out['best_possible_speedup']:.1f}x PyTorch at best" if torch_epoch_s else ""), flush=True)
    return out


def sweep(seeds: int, fraction: float, repeats: int) -> dict:
    k = max(1, int(round(1000 * fraction)))
    config = jax_config("d2sac", False, 1, k, k)
    hp = agents.default_hparams("d2sac")
    t_jax, compile_s = jax_epoch_time(config, hp, repeats, seeds=seeds)
    t_torch = sum(torch_epoch_time(config, hp, 1, seed=s) for s in range(seeds))
    out = {"seeds": seeds, "timed_updates_per_seed": k, "jax_s": t_jax, "torch_sequential_s": t_torch,
           "speedup": t_torch / t_jax, "jax_compile_s": compile_s}
    print(f"sweep     d2sac   aigc   {seeds} seeds x ({k} steps + {k} updates): jax vmapped {t_jax:.2f} s, torch "
          f"sequential {t_torch:.2f} s -> {out['speedup']:.2f}x (target >= 2.5x)", flush=True)
    return out


def moving_average(v: np.ndarray, w: int = 3) -> np.ndarray:
    return np.array([np.nanmean(v[max(0, i - w + 1): i + 1]) for i in range(len(v))])


def to_same_reward(algo: str, env_name: str, iterations: int, transitions: int, updates: int) -> dict:
    from benchmarks.torch_reference.loop import train

    config = jax_config(algo, True, 16, transitions, updates)
    hp = agents.default_hparams(algo)
    # no untimed prefill on either side: an iteration collects one batch (64 transitions) before its updates
    run = JaxRun(config, hp, env_name=env_name, fill=False)
    t0 = time.perf_counter()
    jax_curve = []
    for _ in range(iterations):
        m = run.iteration()
        jax_curve.append((time.perf_counter() - t0 + run.compile_s, float(np.ravel(m[METRIC[algo]])[-1])))
    records = train(torch_config(config, hp, env_name), torch_env(env_name), 16, iterations, config.steps_per_iter,
                    config.updates_per_iter, prefill=0)
    torch_curve = [(r["wall_s"], float(r[METRIC[algo]])) for r in records]
    curves = {"jax": np.array(jax_curve), "torch": np.array(torch_curve)}
    ma = {k: moving_average(v[:, 1]) for k, v in curves.items()}
    level = min(np.nanmax(ma[k]) - 0.1 * (np.nanmax(ma[k]) - curves[k][0, 1]) for k in curves)
    reach = {}
    for k, v in curves.items():
        hit = np.nonzero(ma[k] >= level)[0]
        reach[k] = float(v[hit[0], 0]) if len(hit) else math.inf
    out = {"algo": algo, "env": env_name, "metric": METRIC[algo], "iterations": iterations, "level": float(level),
           "jax_s_to_level": reach["jax"], "torch_s_to_level": reach["torch"],
           "speedup": reach["torch"] / reach["jax"], "jax_compile_s": run.compile_s,
           "curves": {k: v.tolist() for k, v in curves.items()}}
    out["speedup_excluding_compile"] = reach["torch"] / max(reach["jax"] - run.compile_s, 1e-9)
    print(f"to level  {algo:7s} {env_name:6s} {METRIC[algo]} >= {level:.4f}: jax {reach['jax']:.1f} s (incl. compile "
          f"{run.compile_s:.1f} s), torch {reach['torch']:.1f} s -> {out['speedup']:.1f}x incl. compile, "
          f"{out['speedup_excluding_compile']:.1f}x excluding it (target >= 10x)", flush=True)
    return out


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(5 * len(results), 3.5), squeeze=False)
    for ax, res in zip(axes[0], results):
        for name, color in (("jax", "tab:blue"), ("torch", "tab:red")):
            v = np.array(res["curves"][name])
            ax.plot(v[:, 0], v[:, 1], color=color, marker=".", label=f"{'jaxdiff-rl' if name == 'jax' else 'PyTorch'}")
            t = res[f"{name}_s_to_level"]
            if math.isfinite(t):
                ax.axvline(t, color=color, ls=":", lw=1)
            if name == "jax":
                ax.plot(v[:, 0] - res["jax_compile_s"], v[:, 1], color=color, ls="--", lw=1, alpha=0.6,
                        label="jaxdiff-rl, compile excluded")
        ax.axhline(res["level"], color="gray", ls="--", lw=1, label="common level")
        ax.set_xscale("log")
        ax.set_xlabel("wall-clock (s, log; JAX incl. compile)")
        ax.set_ylabel(res["metric"])
        ax.set_title(f"{res['algo']} on {res['env']}, small, 16 envs: {res['speedup']:.1f}x (compile incl.), "
                     f"{res['speedup_excluding_compile']:.1f}x (excl.)", fontsize=8)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="tiny fractions and iteration counts (smoke run)")
    ap.add_argument("--fraction", type=float, default=0.25, help="fraction of an epoch timed in the per-epoch cases")
    ap.add_argument("--sweep-fraction", type=float, default=0.05, help="fraction of an epoch per seed in the sweep")
    ap.add_argument("--iterations", type=int, default=40, help="iterations of the to-the-same-reward runs")
    ap.add_argument("--cases", nargs="+", default=["epoch", "utilisation", "small", "sweep", "reward"],
                    choices=["epoch", "utilisation", "small", "sweep", "reward"])
    args = ap.parse_args()
    try:
        import torch
    except ImportError:
        sys.exit("train_speed.py needs PyTorch: pip install -e '.[torch]'")
    torch.set_num_threads(max(1, torch.get_num_threads()))
    frac, sfrac, iters, reps = (0.01, 0.01, 2, 1) if args.quick else (args.fraction, args.sweep_fraction, args.iterations, 2)
    results = {"machine": {**machine_info(), "torch": torch.__version__, "torch_threads": torch.get_num_threads()},
               "settings": {"fraction": frac, "sweep_fraction": sfrac, "iterations": iters}}
    if "epoch" in args.cases:
        results["per_epoch"] = [per_epoch(a, s, frac, reps) for s in (False, True) for a in ("d2sac", "dm_ddpg")]
    if "utilisation" in args.cases:
        results["utilisation"] = reference_utilisation(reps)
    if "small" in args.cases:
        known = results.get("per_epoch") or (json.loads(OUT.read_text()).get("per_epoch", []) if OUT.exists() else [])
        torch_s = {r["algo"]: r["torch_epoch_s"] for r in known if r["setting"] == "small"}
        results["small_profile"] = [small_profile(a, reps, torch_s.get(a)) for a in ("d2sac", "dm_ddpg")]
    if "sweep" in args.cases:
        results["sweep"] = sweep(16, sfrac, 1)
    if "reward" in args.cases:
        results["same_reward"] = [to_same_reward("dm_ddpg", "msr-3", iters, 64, 50)]
    if not args.quick:
        OUT.parent.mkdir(parents=True, exist_ok=True)
        if OUT.exists():  # keep the cases not re-run
            results = {**json.loads(OUT.read_text()), **results}
        OUT.write_text(json.dumps(results, indent=1))
        if "same_reward" in results:
            plot(results["same_reward"], OUT.parent.parent / "train_speed.png")
        print(f"wrote {OUT} and benchmarks/train_speed.png")


if __name__ == "__main__":
    main()
