"""Helpers shared by the benchmarks: best-of-n timing, the bare-matmul FLOP/s ceiling, analytic update FLOPs,
machine description."""

from __future__ import annotations

import os
import platform
import time
from typing import Any, Callable

import jax


def best_time(fn: Callable[[], Any], repeats: int) -> float:
    """Best wall-clock of `repeats` calls of fn (its result is waited for)."""
    times = []
    for _ in range(max(1, repeats)):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return min(times)


def matmul_ceiling(flops: float, repeats: int, batch: int = 512, width: int = 256) -> float:
    """FLOP/s of a jitted chain of [batch, width] x [width, width] matmuls with about `flops` FLOPs in total: what
    the machine's matmul units deliver at the networks' shapes, the practical ceiling of a dense-network update."""
    per = 2 * batch * width * width
    n = max(1, int(round(flops / per)))
    w = jax.random.normal(jax.random.PRNGKey(2), (width, width)) / width**0.5
    x = jax.random.normal(jax.random.PRNGKey(3), (batch, width))
    chain = jax.jit(lambda x: jax.lax.fori_loop(0, n, lambda i, h: h @ w, x))
    chain(x).block_until_ready()
    return n * per / best_time(lambda: chain(x), repeats)


def _mlp_flops(dims: list[int]) -> int:
    return sum(2 * a * b for a, b in zip(dims[:-1], dims[1:]))


def update_flops(config: Any, obs_dim: int, action_dim: int, discrete: bool) -> float:
    """Matmul FLOPs of one update of a diffusion-actor agent (batch B, T denoising steps, twin critics), with a
    backward pass = 2x its forward (1x where only input gradients are needed):
      discrete (D2SAC): target chain T a + target critics c + critic fwd/bwd 3c + actor chain fwd/bwd 3 T a
                        + online critics for the actor's Q c;
      continuous (DM-DDPG/DM-TD3): T a + c + 3c + 3 T a + critic fwd and input-backward through the action 2c."""
    t, b = config.actor.diffusion_steps, config.batch_size
    actor = _mlp_flops([action_dim + config.actor.time_dim + obs_dim, *config.actor.hidden_dims, action_dim])
    if discrete:
        critic = config.num_critics * _mlp_flops([obs_dim, *config.critic_hidden_dims, action_dim])
        per_sample = t * actor + critic + 3 * critic + 3 * t * actor + critic
    else:
        critic = config.num_critics * _mlp_flops([obs_dim + action_dim, *config.critic_hidden_dims, 1])
        per_sample = t * actor + critic + 3 * critic + 3 * t * actor + 2 * critic
    return float(b * per_sample)


def update_utilisation(config: Any, hp: Any, state: Any, spec: Any, repeats: int) -> dict:
    """One update of a SAC-family agent (D2SAC) on a batch from a filled runner `state`: analytic matmul FLOPs
    (`update_flops`) over its time, against `matmul_ceiling` of the same FLOPs. XLA's own count is reported too
    (it counts a rolled scan's body once)."""
    from jaxdiff_rl.agents.sac import update as sac_update
    from jaxdiff_rl.train.buffer import buffer_sample

    def one_update(agent, key):
        batch = buffer_sample(state.buffer, key, config.batch_size, config.n_step, hp.gamma)
        return sac_update(key, config, agent, batch, hp, spec.dim, spec.discrete)

    compiled = jax.jit(one_update).lower(state.agent, jax.random.PRNGKey(1)).compile()
    cost = compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, list) else cost
    flops = update_flops(config, spec.obs_dim, spec.dim, spec.discrete)
    t_update = best_time(lambda: compiled(state.agent, jax.random.PRNGKey(1)), repeats)
    ceiling = matmul_ceiling(flops, repeats)
    return {"update_gflop": flops / 1e9, "xla_counted_gflop": float(cost["flops"]) / 1e9, "update_s": t_update,
            "update_gflops_per_s": flops / t_update / 1e9, "ceiling_gflops_per_s": ceiling / 1e9,
            "utilisation": (flops / t_update) / ceiling}


def machine_info() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(), "device": str(jax.devices()[0]), "jax": jax.__version__}
