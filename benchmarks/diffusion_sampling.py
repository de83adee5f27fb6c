"""Reverse-diffusion sampling throughput (actions/s) vs the matmul ceiling and PyTorch, side by side in one run.

Network: the D2SAC-shaped denoiser with a 3 x 256 Mish trunk (x_t 20 + time embedding 16 + state 42 -> 256 ->
256 -> 256 -> 20). Sampler: DDPM ancestral, VP schedule, T in {5, 10, 20}; batch in {1, 256, 4096, 65536}.

- jax: `jit(sample)` (one `lax.scan` over T, the batch as one matmul per layer).
- ceiling: a bare chain of [B, 256] x [256, 256] matmuls with the same FLOPs as the sampler's network
  evaluations, jitted: what the CPU's matmul units deliver; the practical upper bound.
- torch (if installed; `pip install -e ".[torch]"`): the same network and DDPM loop in PyTorch, eager, no grad.

    python benchmarks/diffusion_sampling.py           # full grid, writes benchmarks/results/diffusion_sampling.json
    python benchmarks/diffusion_sampling.py --quick   # batch <= 4096, T in {5, 20}
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from jaxdiff_rl.diffusion import SamplerConfig, make_schedule, sample  # noqa: E402
from jaxdiff_rl.nets import Denoiser  # noqa: E402

ACTION, STATE, TIME, WIDTH, DEPTH = 20, 42, 16, 256, 3


def network_flops_per_sample() -> int:
    """Multiply-adds x 2 of one denoiser evaluation for one sample."""
    macs = (ACTION + TIME + STATE) * WIDTH + (DEPTH - 1) * WIDTH * WIDTH + WIDTH * ACTION
    macs += TIME * 2 * TIME + 2 * TIME * TIME  # time-embedding MLP
    return 2 * macs


def best_time(fn, repeats: int) -> float:
    best = math.inf
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def jax_sampler(batch: int, steps: int, repeats: int) -> float:
    net = Denoiser(out_dim=ACTION, cond_dim=STATE, hidden_dims=(WIDTH,) * DEPTH, time_dim=TIME)
    params = net.init(jax.random.key(0), jnp.zeros((1, ACTION)), jnp.zeros(1, jnp.int32), jnp.zeros((1, STATE)))
    sch = make_schedule("vp", steps)
    state = jax.random.normal(jax.random.key(1), (batch, STATE))
    run = jax.jit(lambda p, k, s: sample(k, partial(net.apply, p), sch, (batch, ACTION), s, SamplerConfig()))
    jax.block_until_ready(run(params, jax.random.key(2), state))
    return best_time(lambda: jax.block_until_ready(run(params, jax.random.key(3), state)), repeats)


def matmul_ceiling(batch: int, flops: float, repeats: int) -> float:
    """Seconds for a chain of [B, W] x [W, W] matmuls totalling `flops`."""
    n = max(1, round(flops / (2 * batch * WIDTH * WIDTH)))
    w = jax.random.normal(jax.random.key(0), (WIDTH, WIDTH)) / math.sqrt(WIDTH)
    x = jax.random.normal(jax.random.key(1), (batch, WIDTH))
    chain = jax.jit(lambda x, w: jax.lax.fori_loop(0, n, lambda i, h: jnp.tanh(h @ w), x))
    jax.block_until_ready(chain(x, w))
    seconds = best_time(lambda: jax.block_until_ready(chain(x, w)), repeats)
    return seconds * flops / (2 * batch * WIDTH * WIDTH * n)  # scale to the exact FLOP count


def torch_sampler(batch: int, steps: int, repeats: int) -> float | None:
    try:
        import torch

        from benchmarks.torch_reference.nets import Denoiser, VPSchedule, ddpm_sample
    except ImportError:
        return None

    model = Denoiser(ACTION, STATE, (WIDTH,) * DEPTH, TIME, out_tanh=False).eval()
    schedule, state = VPSchedule(steps), torch.randn(batch, STATE)

    @torch.no_grad()
    def run():
        return ddpm_sample(model, schedule, state, ACTION, clip=False)

    run()
    return best_time(run, repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "diffusion_sampling.json"))
    args = parser.parse_args()
    batches = (1, 256, 4096) if args.quick else (1, 256, 4096, 65536)
    steps_grid = (5, 20) if args.quick else (5, 10, 20)
    try:
        import torch

        torch_version = torch.__version__
    except ImportError:
        torch_version = None
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
               "torch": torch_version, "device": str(jax.devices()[0])}
    print(f"machine: {machine}")
    header = (f"{'T':>3s} {'batch':>6s} {'jax act/s':>11s} {'GFLOP/s':>8s} {'ceiling':>8s} {'% ceiling':>9s} "
              f"{'torch act/s':>11s} {'GFLOP/s':>8s} {'x torch':>8s}")
    print(header)
    print("-" * len(header))
    rows = []
    flops_per_eval = network_flops_per_sample()
    for steps in steps_grid:
        for batch in batches:
            repeats = 5 if batch * steps <= 4096 * 5 else 2
            flops = flops_per_eval * batch * steps
            t_jax = jax_sampler(batch, steps, repeats)
            t_ceiling = matmul_ceiling(batch, flops, repeats)
            t_torch = torch_sampler(batch, steps, repeats)
            row = dict(
                T=steps, batch=batch, jax_actions_per_s=batch / t_jax, jax_gflops=flops / t_jax / 1e9,
                ceiling_gflops=flops / t_ceiling / 1e9, fraction_of_ceiling=t_ceiling / t_jax,
                torch_actions_per_s=None if t_torch is None else batch / t_torch,
                ratio_vs_torch=None if t_torch is None else t_torch / t_jax,
            )
            rows.append(row)
            torch_cols = ("n/a", "n/a", "n/a") if t_torch is None else (
                f"{batch / t_torch:11.3g}", f"{flops / t_torch / 1e9:8.1f}", f"{t_torch / t_jax:8.2f}")
            print(f"{steps:3d} {batch:6d} {batch / t_jax:11.3g} {flops / t_jax / 1e9:8.1f} {flops / t_ceiling / 1e9:8.1f} "
                  f"{100 * t_ceiling / t_jax:8.0f}% {torch_cols[0]:>11s} {torch_cols[1]:>8s} {torch_cols[2]:>8s}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "diffusion_sampling", "machine": machine,
                               "flops_per_network_eval": flops_per_eval, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
