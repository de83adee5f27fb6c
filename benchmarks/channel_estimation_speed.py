"""Diffusion channel estimator throughput, side by side in one process: estimates/s of the jitted JAX posterior
sampler (`jaxdiff_rl.estimate.diffusion.diffusion_estimate`, annealed Langevin) against the PyTorch implementation of
the same sampler and network (`benchmarks/torch_reference/score_langevin.py`: a Python loop over levels and steps,
one batched network call per step), at batch 1 ... 4096 channel estimates.

Settings are those of experiments/channel_estimation: N_r = 4, N_t = 16, N_p = 8 QPSK pilots, SNR 10 dB, the
512 x 3 Mish score network (EDM-preconditioned), 40 levels x 10 Langevin steps + the final denoising step
(401 network calls), 4 posterior samples per estimate. The network's weights are random (speed does not depend on
training); both sides run the same weights (`load_flax_denoiser`) and are checked to agree to float32 accuracy on the
deterministic part (the score). One core each (XLA pinned, torch with one thread): the same hardware for both.

    python benchmarks/channel_estimation_speed.py          # ~15 minutes; writes results/channel_estimation_speed.json
    python benchmarks/channel_estimation_speed.py --quick  # batch 1, 64, 1024
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from jaxdiff_rl.app.xla_cpu import pin_to_one_core  # noqa: E402

pin_to_one_core()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import _mlp_flops, best_time, machine_info, matmul_ceiling  # noqa: E402
from envs import mimo_channels as mc  # noqa: E402
from jaxdiff_rl.estimate.diffusion import ScorePrior, ScorePriorConfig, diffusion_estimate  # noqa: E402

OUT = Path(__file__).parent / "results" / "channel_estimation_speed.json"
BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
N_R, N_T, N_P, SNR_DB = 4, 16, 8, 10.0
NUM_SAMPLES, STEPS_PER_LEVEL, STEP_SIZE = 4, 10, 5e-5


def network_flops(config: ScorePriorConfig) -> float:
    """Matmul FLOPs of one posterior sample (all network calls of the chain): 2 x weights x calls."""
    calls = config.num_levels * STEPS_PER_LEVEL + 1
    return float(_mlp_flops([config.dim, *config.hidden_dims, config.dim]) * calls)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--max-seconds", type=float, default=60.0, help="skip torch above this time per call")
    args = parser.parse_args()
    try:
        import torch

        from benchmarks.torch_reference.score_langevin import load_flax_denoiser, make_score_net, real_operator
        from benchmarks.torch_reference.score_langevin import posterior_estimate as torch_estimate
        torch.set_num_threads(1)
    except ImportError:
        torch = None
        print("torch not installed (pip install -e '.[torch]'): JAX column only")
    config = ScorePriorConfig(N_R, N_T, hidden_dims=(512, 512, 512), num_levels=40, sigma_max=26.0, sigma_min=0.01)
    params = config.network().init(jax.random.key(0), jnp.zeros((2, config.dim)), jnp.zeros(2, jnp.int32))
    prior = ScorePrior(config, params)
    pilots = mc.qpsk_pilots(jax.random.key(1), N_T, N_P)
    var = mc.noise_variance(SNR_DB)
    est = jax.jit(lambda k, y: diffusion_estimate(k, prior, y, pilots, var, NUM_SAMPLES,
                                                  steps_per_level=STEPS_PER_LEVEL, step_size=STEP_SIZE))
    if torch is not None:
        model = load_flax_denoiser(make_score_net(config.dim, config.hidden_dims, config.time_dim),
                                   jax.device_get(params))
        a_r = real_operator(np.asarray(pilots), N_R)
        sigmas = np.asarray(config.sigmas())
    flops = network_flops(config) * NUM_SAMPLES
    rows = []
    for batch in (1, 64, 1024) if args.quick else BATCHES:
        h = mc.clustered_channels(jax.random.key(2), batch, N_R, N_T, "cdl-a")
        y = mc.observe(jax.random.key(3), h, pilots, SNR_DB)
        jax.block_until_ready(est(jax.random.key(4), y))
        t_jax = best_time(lambda: est(jax.random.key(4), y), 2)
        row = {"batch": batch, "jax_estimates_per_s": batch / t_jax, "jax_gflops": flops * batch / t_jax / 1e9}
        if torch is not None:
            y_r = torch.from_numpy(np.array(mc.to_real(y)))
            run = lambda: torch_estimate(model, sigmas, config.sigma_data, y_r, a_r, float(var), NUM_SAMPLES,
                                         STEPS_PER_LEVEL, STEP_SIZE)
            times = []
            while len(times) < 2 and sum(times) < args.max_seconds / 2:
                t0 = time.perf_counter()
                run()
                times.append(time.perf_counter() - t0)
            t_torch = min(times)
            row.update(torch_estimates_per_s=batch / t_torch, torch_gflops=flops * batch / t_torch / 1e9,
                       speedup=t_torch / t_jax)
        rows.append(row)
        print("  ".join(f"{k} {v:,.1f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
    # the one-core matmul ceiling at the network's width: how much of it the sampler reaches
    ceiling = matmul_ceiling(2e10, 2, batch=4096, width=512) / 1e9
    for row in rows:
        row["jax_fraction_of_matmul_ceiling"] = row["jax_gflops"] / ceiling
    print(f"matmul ceiling (4096 x 512 @ 512 x 512, one core): {ceiling:.1f} GFLOP/s; JAX sampler at batch "
          f"{rows[-1]['batch']}: {100 * rows[-1]['jax_fraction_of_matmul_ceiling']:.0f}% of it")
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"machine": machine_info(), "threads": 1, "matmul_ceiling_gflops": ceiling,
                               "n_r": N_R, "n_t": N_T, "n_p": N_P, "hidden": list(config.hidden_dims),
                               "network_calls": config.num_levels * STEPS_PER_LEVEL + 1,
                               "num_samples": NUM_SAMPLES, "rows": rows}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
