"""The default job (`jaxdiff-rl` / `jaxdiff-rl demo`): a vmapped sweep of a diffusion agent that learns a power
allocation from scratch to within 1-2% of the exact optimum, beating every textbook heuristic, in a few CPU minutes.

Problem: `msr-3-lowsnr`, 1 W split over 3 channels with gains U(0.1, 2.0) and unit noise (low SNR: the
water-filling optimum often switches channels off, so equal power, best channel and gain-proportional all leave
5-15% of the sum rate on the table). Each step is a fresh instance; reward = sum rate - optimum (GDMOPT's regret).

Agent: DM-TD3 (seed 000's DM-enabled TD3: the diffusion denoiser as actor, T = 5 steps, trained through the chain
on the twin critic's Q) acting by the best of 8 reverse chains by min-Q (Diffusion-QL's read-out,
`AgentConfig.action_candidates`).

Sweep: 8 seeds x 2 actor learning rates = 16 runs, one jitted `vmap(train)` program run in chunks of 25 iterations
(progress bar, metrics, orbax checkpoints under `<out>/sweep/`). After every chunk (and before the first) the greedy
policy of every run is scored on 512 common fresh instances, so the curves start at the untrained policy.

Speed: the same 12 runs one after another (the single-run program, compiled once, called per run) for one chunk,
against the vmapped chunk; compile excluded on both sides. With PyTorch installed (`pip install -e ".[torch]"`) and
the repository's `benchmarks/` next to the package, the PyTorch reference (`benchmarks/torch_reference`, DM-DDPG
update, one chain per action, NumPy environments) runs the same per-run schedule for comparison.

Writes `<out>/demo.png` (curves against the heuristics, speed bars) and `<out>/demo.json`.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

import envs
from jaxdiff_rl.app.experiment import TrainSpec, build
from jaxdiff_rl.train.rollout import optimum_fractions
from jaxdiff_rl.app.runner import RunResult, run
from jaxdiff_rl.train.sweep import unstack

__all__ = ["run_demo", "demo_spec", "sequential_speed", "HEURISTICS"]

ENV = "msr-3-lowsnr"
#: the baselines drawn against the learning curves (policies of `envs.MSR`), strongest first
HEURISTICS = ("gain-proportional", "best-channel", "equal-power", "random")


def demo_spec(scale: float = 1.0, seeds: int = 8) -> TrainSpec:
    """The demo's sweep; `scale` multiplies the number of iterations (400 at scale 1)."""
    return TrainSpec(
        algo="dm_td3", env=ENV, num_seeds=seeds, hidden=(64, 64), diffusion_steps=5,
        static=dict(num_envs=64, steps_per_iter=1, updates_per_iter=16, num_iterations=max(1, int(round(400 * scale))),
                    batch_size=128, buffer_size=20_000, action_candidates=8),
        hparams=dict(lr_actor=[1e-3, 2e-3], lr_critic=3e-3),
    )


def sequential_speed(trainer: Any, result: RunResult, hp: Any, chunk: int) -> dict[str, float]:
    """Seconds of one chunk of `chunk` iterations for all R runs: vmapped (the median of the runner's chunk times
    after the first, which includes compilation) vs the single-run program called once per run on that run's final
    state (compiled before timing)."""
    runs = int(jax.tree_util.tree_leaves(hp)[0].shape[0])
    single = jax.jit(lambda s, h: trainer.run(s, h, chunk)).lower(unstack(result.state, 0), unstack(hp, 0)).compile()
    t0 = time.perf_counter()
    for i in range(runs):
        jax.block_until_ready(single(unstack(result.state, i), unstack(hp, i)))
    sequential = time.perf_counter() - t0
    later = result.chunk_seconds[1:] or result.chunk_seconds
    vmapped = float(np.median(later))
    return {"runs": runs, "chunk_iterations": chunk, "vmapped_s": vmapped, "sequential_s": sequential,
            "speedup": sequential / vmapped}


def torch_speed(trainer: Any, hp: Any, env_params: Any, chunk: int, runs: int) -> dict[str, float] | None:
    """Seconds of `runs` x one chunk of the PyTorch reference with the same shapes and schedule, or None when torch
    or the repository's `benchmarks/` package is not available."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    root = Path(__file__).resolve().parents[1]
    if not (root / "benchmarks" / "torch_reference").is_dir():
        return None
    sys.path.insert(0, str(root))
    from benchmarks.torch_reference.agents import TorchConfig
    from benchmarks.torch_reference.envs_numpy import MSREnv
    from benchmarks.torch_reference.loop import train as torch_train

    config = trainer.config
    spec = trainer.spec
    c = TorchConfig.from_jax(config.replace(algo="dm_ddpg"), unstack(hp, 0), spec.obs_dim, spec.dim)
    make_env = lambda rng: MSREnv(rng, num_channels=int(env_params.num_channels),
                                  total_power=float(env_params.total_power),
                                  gain_low=float(env_params.gain_low), gain_high=float(env_params.gain_high),
                                  regret=env_params.reward_mode == "regret")
    t0 = time.perf_counter()
    torch_train(c, make_env, config.num_envs, chunk, config.steps_per_iter, config.updates_per_iter,
                prefill=config.batch_size)
    per_run = time.perf_counter() - t0
    return {"runs": runs, "chunk_iterations": chunk, "torch_sequential_s": per_run * runs,
            "torch_one_run_s": per_run}


def _summary(settings: list[dict], frac: np.ndarray, seeds: int) -> list[dict]:
    """Final greedy optimum fraction per setting: mean, std, min over seeds (runs are seed-major)."""
    g = len(settings)
    per = frac.reshape(seeds, g)
    return [{"setting": settings[j], "mean": float(per[:, j].mean()), "std": float(per[:, j].std()),
             "min": float(per[:, j].min()), "per_seed": per[:, j].tolist()} for j in range(g)]


def _label(setting: dict) -> str:
    return ", ".join(f"{k}={v:g}" for k, v in setting.items()) or "default"


def run_demo(out: Path, scale: float = 1.0, progress: bool = True, seeds: int = 8, chunk: int = 25,
             eval_envs: int = 512, spec: TrainSpec | None = None, heuristic_envs: int = 4096) -> dict:
    """Run the demo (see the module docstring); returns what it writes to `<out>/demo.json`.

    `spec` replaces `demo_spec(scale, seeds)` (same environment; the tests run a tiny one)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    print(f"jaxdiff-rl demo on {jax.devices()[0].platform.upper()} ({jax.device_count()} device(s)), jax {jax.__version__}")
    spec = demo_spec(scale, seeds) if spec is None else spec
    if spec.env != ENV:
        raise ValueError(f"run_demo: spec.env must be {ENV!r} (the heuristics drawn are its), got {spec.env!r}")
    seeds = spec.num_seeds
    trainer, keys, hp, settings = build(spec)
    env, env_params = envs.make(ENV)
    runs = int(keys.shape[0])
    chunk = max(1, min(chunk, spec.static["num_iterations"]))
    print(f"{ENV}: {spec.algo} (diffusion actor, T = {spec.diffusion_steps}, best of {spec.static['action_candidates']} "
          f"chains), {seeds} seeds x {len(settings)} settings = {runs} runs in one vmapped program")
    res = run(trainer, hp, keys, out_dir=out / "sweep", chunk_iterations=chunk, progress=progress,
              description={"spec": spec.to_json(), "settings": settings}, eval_steps=1, eval_envs=eval_envs)
    baselines = optimum_fractions(env, env_params, jax.random.key(11), heuristic_envs)
    final = _summary(settings, res.evaluations["optimum_fraction"][:, -1], seeds)
    start = _summary(settings, res.evaluations["optimum_fraction"][:, 0], seeds)
    speed = sequential_speed(trainer, res, hp, chunk)
    torch = torch_speed(trainer, hp, env_params, chunk, runs)

    steps = spec.static["num_envs"] * spec.static["num_iterations"]
    print(f"\n{ENV} power allocation: greedy policy's sum rate as % of the water-filling optimum "
          f"({eval_envs} fresh instances; {steps} env steps and "
          f"{spec.static['num_iterations'] * spec.static['updates_per_iter']} updates per run)")
    for s0, s1 in zip(start, final):
        print(f"  DM-TD3 {_label(s1['setting']):14s} {100 * s1['mean']:6.2f}% ± {100 * s1['std']:.2f}% "
              f"(worst seed {100 * s1['min']:.2f}%; untrained {100 * s0['mean']:.2f}%)")
    for name in HEURISTICS:
        print(f"  {name:21s} {100 * baselines[name]:6.2f}%")
    print(f"\nspeed: {runs} runs x {chunk} iterations vmapped in one program {speed['vmapped_s']:.2f} s vs the same runs "
          f"one after another {speed['sequential_s']:.2f} s -> {speed['speedup']:.1f}x (compile excluded)")
    if torch is not None:
        print(f"       PyTorch reference, the same runs one after another: {torch['torch_sequential_s']:.2f} s -> "
              f"{torch['torch_sequential_s'] / speed['vmapped_s']:.1f}x slower than the vmapped sweep")
    else:
        print("       (install torch, pip install -e \".[torch]\", to add the PyTorch reference)")

    results = {"env": ENV, "spec": spec.to_json(), "runs": runs, "final": final, "untrained": start,
               "baselines": baselines, "speed": speed, "torch": torch, "train_seconds": res.seconds,
               "eval_iterations": res.evaluations["iteration"].tolist(),
               "eval_optimum_fraction": res.evaluations["optimum_fraction"].tolist()}
    _plot(out / "demo.png", res, settings, seeds, baselines, speed, torch, spec)
    results["total_seconds"] = time.perf_counter() - t_start
    (out / "demo.json").write_text(json.dumps(results, indent=1))
    print(f"\nwrote {out / 'demo.png'} and {out / 'demo.json'} ({results['total_seconds']:.0f} s)")
    return results


def _plot(path: Path, res: RunResult, settings: list[dict], seeds: int, baselines: dict[str, float],
          speed: dict, torch: dict | None, spec: TrainSpec) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4), gridspec_kw={"width_ratios": [2.2, 1]})
    g = len(settings)
    x = res.evaluations["iteration"] * spec.static["num_envs"]
    frac = 100 * res.evaluations["optimum_fraction"]
    for j, setting in enumerate(settings):
        runs = frac[j::g]
        mean, std = runs.mean(0), runs.std(0)
        line, = ax.plot(x, mean, marker="o", ms=3, label=f"DM-TD3 {_label(setting)} ({seeds} seeds)")
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    ax.axhline(100, color="k", lw=1, label="water-filling optimum")
    for k, name in enumerate(HEURISTICS):
        ax.axhline(100 * baselines[name], ls="--", lw=1, color=f"C{g + k}", label=f"{name} {100 * baselines[name]:.1f}%")
    ax.set_xlabel("environment steps per run")
    ax.set_ylabel("greedy sum rate, % of optimum")
    ax.set_title(f"{ENV}: diffusion agent learning from scratch (mean ± std over seeds)", fontsize=9)
    ax.set_ylim(min(78, float(np.min(frac)) - 1), 101)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    names = ["vmapped\n(one program)", "one after\nanother"]
    values = [speed["vmapped_s"], speed["sequential_s"]]
    if torch is not None:
        names.append("PyTorch\nreference")
        values.append(torch["torch_sequential_s"])
    bars = bx.bar(names, values, color=["C0", "C7", "C3"][: len(values)])
    for bar, v in zip(bars, values):
        bx.text(bar.get_x() + bar.get_width() / 2, v, f"{v:.1f} s\n{v / speed['vmapped_s']:.1f}x", ha="center",
                va="bottom", fontsize=8)
    bx.set_ylabel(f"seconds for {speed['runs']} runs x {speed['chunk_iterations']} iterations")
    bx.set_title("same runs, compile excluded", fontsize=9)
    bx.set_ylim(0, 1.25 * max(values))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
