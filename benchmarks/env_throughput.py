"""Environment throughput: jitted + vmapped + scanned JAX rollouts vs NumPy, side by side in one process.

For msr-80 and aigc, at 1, 64, 4096 and 65536 parallel environments ("lanes"):
- JAX: `lax.scan` over steps of `vmap(env.step)` (auto-reset included), one compiled program;
- NumPy per-env loop: the independent loop implementation from tests/envs/reference_numpy.py stepped one
  environment at a time in Python (the way the papers' reference code runs an environment);
- vectorised NumPy: the same environment as NumPy arrays over lanes.

All three run the same deterministic heuristic so that the policy costs no random numbers and the
environment's own dynamics (including its random draws: channel gains, arrivals, task sizes) are measured:
msr -> allocation proportional to the observed gains, aigc -> crash-avoid. Steps/s counts environment
transitions; compile time is reported separately and excluded.

    python benchmarks/env_throughput.py            # full table, writes benchmarks/results/env_throughput.json
    python benchmarks/env_throughput.py --quick    # smaller step counts (smoke run)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import envs  # noqa: E402
from envs.aigc import crash_avoid_policy  # noqa: E402
from tests.envs.reference_numpy import (  # noqa: E402
    AIGCLoop,
    AIGCVectorized,
    MSRLoop,
    msr_step_vectorized,
)

LANES = (1, 64, 4096, 65536)


# --- policies (deterministic, identical in JAX and NumPy) -------------------------------------------------------
def msr_proportional(key, obs, state, params):
    gains = obs[:-1]
    return gains / jnp.max(gains)


POLICY = {"msr-80": msr_proportional, "aigc": crash_avoid_policy}


# --- JAX ---------------------------------------------------------------------------------------------------------------
def jax_steps_per_s(name: str, lanes: int, num_steps: int, repeats: int = 3) -> tuple[float, float]:
    env, params = envs.make(name)
    policy = POLICY[name]

    def run(key):
        def body(carry, key):
            obs, state = carry
            keys = jax.random.split(key, lanes)
            actions = jax.vmap(policy, in_axes=(0, 0, 0, None))(keys, obs, state, params)
            obs, state, reward, *_ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(keys, state, actions, params)
            return (obs, state), jnp.sum(reward)

        init = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(key, lanes), params)
        return jax.lax.scan(body, init, jax.random.split(key, num_steps))[1].sum()

    t0 = time.perf_counter()
    compiled = jax.jit(run).lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    best = np.inf
    for r in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(jax.random.key(r + 1)))
        best = min(best, time.perf_counter() - t0)
    return lanes * num_steps / best, compile_s


# --- NumPy per-env loop ---------------------------------------------------------------------------------------------
def numpy_loop_steps_per_s(name: str, total_steps: int, num_envs: int = 16) -> float:
    """Step `num_envs` independent loop environments round-robin in Python for `total_steps` transitions."""
    rng = np.random.default_rng(0)
    env, params = envs.make(name)
    if name.startswith("msr"):
        n, total_power = params.num_channels, float(params.total_power)
        draw = lambda: rng.uniform(0.5, 2.5, n)
        pool = [MSRLoop(n, total_power) for _ in range(num_envs)]
        obs = [e.reset(draw()) for e in pool]
        t0 = time.perf_counter()
        for step in range(total_steps):
            i = step % num_envs
            g = obs[i][:-1]
            action = g / g.max()
            o, r, done = pool[i].step(action, draw())
            obs[i] = o  # i.i.d. instances: the next instance is also the reset instance
        return total_steps / (time.perf_counter() - t0)
    pool = [AIGCLoop() for _ in range(num_envs)]
    clocks = [0.0] * num_envs
    draw_size = lambda: 100.0 + 10.0 * rng.integers(0, 16)
    for e in pool:
        e.reset(draw_size())
    t0 = time.perf_counter()
    for step in range(total_steps):
        i = step % num_envs
        e = pool[i]
        clocks[i] += rng.exponential(1000.0)
        _, _, done = e.step(e.crash_avoid(), int(np.floor(clocks[i])), draw_size())
        if done:
            clocks[i] = 0.0
            e.reset(draw_size())
    return total_steps / (time.perf_counter() - t0)


# --- vectorised NumPy ----------------------------------------------------------------------------------------------
def numpy_vectorized_steps_per_s(name: str, lanes: int, num_steps: int) -> float:
    rng = np.random.default_rng(0)
    if name.startswith("msr"):
        _, params = envs.make(name)
        n, total_power = params.num_channels, float(params.total_power)
        gains = rng.uniform(0.5, 2.5, (lanes, n)).astype(np.float32)
        t0 = time.perf_counter()
        for _ in range(num_steps):
            actions = gains / gains.max(-1, keepdims=True)
            rewards = msr_step_vectorized(gains, actions, total_power)
            gains = rng.uniform(0.5, 2.5, (lanes, n)).astype(np.float32)
            rewards.sum()
        return lanes * num_steps / (time.perf_counter() - t0)
    vec = AIGCVectorized(lanes, rng)
    t0 = time.perf_counter()
    for _ in range(num_steps):
        avail = vec.cap[None] - vec.size_.sum(-1)
        vec.step(np.argmax(avail, -1))
    return lanes * num_steps / (time.perf_counter() - t0)


def steps_for(lanes: int, quick: bool) -> int:
    """Scan length per lane count: enough transitions for a stable timing, bounded wall time."""
    budget = 2**18 if quick else 2**21
    return int(max(8, min(20_000 if not quick else 2_000, budget // lanes)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smaller step counts")
    parser.add_argument("--envs", nargs="+", default=["msr-80", "aigc"], choices=sorted(POLICY))
    parser.add_argument("--lanes", nargs="+", type=int, default=list(LANES))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "env_throughput.json"))
    args = parser.parse_args()

    machine = {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "numpy": np.__version__,
        "device": str(jax.devices()[0]),
    }
    print(f"machine: {machine}")
    rows = []
    header = f"{'env':8s} {'lanes':>6s} {'jax steps/s':>12s} {'np loop':>10s} {'np vector':>10s} {'x loop':>8s} {'x vector':>9s} {'compile s':>9s}"
    print(header)
    print("-" * len(header))
    for name in args.envs:
        loop = numpy_loop_steps_per_s(name, 2_000 if args.quick else 10_000)
        for lanes in args.lanes:
            steps = steps_for(lanes, args.quick)
            ours, compile_s = jax_steps_per_s(name, lanes, steps)
            vec_steps = max(4, min(steps, (2**16 if args.quick else 2**19) // lanes))
            vector = numpy_vectorized_steps_per_s(name, lanes, vec_steps)
            row = dict(
                env=name, lanes=lanes, jax_steps_per_s=ours, numpy_loop_steps_per_s=loop,
                numpy_vectorized_steps_per_s=vector, ratio_vs_loop=ours / loop, ratio_vs_vectorized=ours / vector,
                jax_compile_s=compile_s, scan_steps=steps,
            )
            rows.append(row)
            print(
                f"{name:8s} {lanes:6d} {ours:12.3g} {loop:10.3g} {vector:10.3g} {ours / loop:8.1f} "
                f"{ours / vector:9.2f} {compile_s:9.2f}"
            )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "env_throughput", "machine": machine, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
