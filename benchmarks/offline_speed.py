"""Diffusion-QL gradient steps/s at its reference settings (3 x 256 Mish denoiser and twin critics, T = 5 VP,
batch 256), side by side with a PyTorch Diffusion-QL of the same shapes (`benchmarks/torch_reference/
diffusion_ql.py`) in the same process, plus the achieved matmul FLOP/s against the machine's matmul ceiling
measured in the same run, and EDP's action approximation against the full chain.

    python benchmarks/offline_speed.py           # writes benchmarks/results/offline_speed.json
    python benchmarks/offline_speed.py --quick   # fewer repeats

Shapes: msr-80 (81 observations, 80 actions; our offline experiment) and a D4RL-locomotion-sized problem
(17 observations, 6 actions: halfcheetah / walker2d). The JAX side is one jitted `lax.scan` of
`updates` Diffusion-QL updates on minibatches sampled from an on-device dataset (`jaxdiff_rl.train.offline`); the
PyTorch side is the same number of `DiffusionQL.update` calls on minibatches indexed from a tensor dataset, both
on every CPU core. FLOPs per update (analytic, matmuls only, backward = 2x forward, input-only backward = 1x):
full chain (4T + 3) a + 6 c, EDP (T + 3) a + 6 c, a = one denoiser pass, c = both critics' forward.
The return EDP costs is measured by experiments/offline (results/msr80.json: diffusion_ql vs diffusion_ql-edp).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import _mlp_flops, best_time, machine_info, matmul_ceiling  # noqa: E402
from jaxdiff_rl.agents import diffusion_ql  # noqa: E402
from jaxdiff_rl.agents.offline_base import init_offline  # noqa: E402
from jaxdiff_rl.train.offline import sample_batch  # noqa: E402

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results" / "offline_speed.json"
SHAPES = {"msr-80": (81, 80), "locomotion (17/6)": (17, 6)}


def update_flops(obs_dim: int, action_dim: int, batch: int, steps: int, hidden: tuple[int, ...], edp: bool) -> float:
    a = _mlp_flops([action_dim + 16 + obs_dim, *hidden, action_dim])
    c = 2 * _mlp_flops([obs_dim + action_dim, *hidden, 1])
    per_sample = ((steps + 3) if edp else (4 * steps + 3)) * a + 6 * c
    return float(batch * per_sample)


def dataset(obs_dim: int, action_dim: int, n: int = 20_000) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {"obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
            "action": rng.uniform(-1, 1, size=(n, action_dim)).astype(np.float32),
            "reward": rng.normal(size=n).astype(np.float32),
            "next_obs": rng.normal(size=(n, obs_dim)).astype(np.float32),
            "terminal": (rng.uniform(size=n) < 0.01).astype(np.float32)}


def jax_steps_per_s(data: dict[str, np.ndarray], edp: bool, updates: int, repeats: int) -> float:
    obs_dim, action_dim = data["obs"].shape[1], data["action"].shape[1]
    config = diffusion_ql.default_config(edp=edp)
    hp = diffusion_ql.default_hparams()
    device = {k: jnp.asarray(v) for k, v in data.items()}
    state = init_offline(jax.random.PRNGKey(0), config, obs_dim, action_dim, False)

    @jax.jit
    def many(state, key):
        def step(state, k):
            k_b, k_u = jax.random.split(k)
            batch = sample_batch(device, k_b, config.batch_size, jnp.float32(0.99))
            return diffusion_ql.update(k_u, config, state, batch, hp, action_dim, False)[0], None
        return jax.lax.scan(step, state, jax.random.split(key, updates))[0]

    state = many(state, jax.random.PRNGKey(1))  # compile + warm up
    jax.block_until_ready(state)
    return updates / best_time(lambda: many(state, jax.random.PRNGKey(2)), repeats)


def torch_steps_per_s(data: dict[str, np.ndarray], edp: bool, updates: int, repeats: int) -> float:
    import torch

    from benchmarks.torch_reference.diffusion_ql import DiffusionQL

    torch.manual_seed(0)
    obs_dim, action_dim = data["obs"].shape[1], data["action"].shape[1]
    agent = DiffusionQL(obs_dim, action_dim, edp=edp)
    t = {k: torch.from_numpy(v) for k, v in data.items()}
    n = t["reward"].shape[0]

    def many():
        for _ in range(updates):
            idx = torch.randint(0, n, (256,))
            agent.update(t["obs"][idx], t["action"][idx], t["reward"][idx], t["next_obs"][idx],
                         1.0 - t["terminal"][idx])

    many()  # warm up
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        many()
        best = min(best, time.perf_counter() - t0)
    return updates / best


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args()
    import torch

    repeats = 2 if args.quick else 5
    updates = 20 if args.quick else 100
    rows = []
    for name, (obs_dim, action_dim) in SHAPES.items():
        data = dataset(obs_dim, action_dim)
        for edp in (False, True):
            flops = update_flops(obs_dim, action_dim, 256, 5, (256, 256, 256), edp)
            jax_rate = jax_steps_per_s(data, edp, updates, repeats)
            torch_rate = torch_steps_per_s(data, edp, max(10, updates // 4), repeats)
            ceiling = matmul_ceiling(flops * 20, repeats)
            row = {"shape": name, "obs_dim": obs_dim, "action_dim": action_dim, "edp": edp,
                   "update_gflop": flops / 1e9, "jax_updates_per_s": jax_rate, "torch_updates_per_s": torch_rate,
                   "speedup_vs_torch": jax_rate / torch_rate, "jax_gflops_per_s": jax_rate * flops / 1e9,
                   "ceiling_gflops_per_s": ceiling / 1e9, "utilisation": jax_rate * flops / ceiling}
            rows.append(row)
            print(f"{name:18s} {'EDP ' if edp else 'full'}  JAX {jax_rate:7.1f} updates/s  PyTorch {torch_rate:7.1f}  "
                  f"x{row['speedup_vs_torch']:.2f}  {row['jax_gflops_per_s']:6.1f} GFLOP/s = "
                  f"{100 * row['utilisation']:.0f}% of the matmul ceiling ({row['ceiling_gflops_per_s']:.1f})",
                  flush=True)
    for name in SHAPES:
        full, edp = [r for r in rows if r["shape"] == name]
        print(f"{name:18s} EDP / full chain: JAX x{edp['jax_updates_per_s'] / full['jax_updates_per_s']:.2f}, "
              f"PyTorch x{edp['torch_updates_per_s'] / full['torch_updates_per_s']:.2f}")
    out = {"rows": rows, "machine": {**machine_info(), "torch": torch.__version__,
                                     "torch_threads": torch.get_num_threads()},
           "updates_per_timing": updates, "repeats": repeats}
    if not args.quick:
        RESULTS.parent.mkdir(exist_ok=True)
        RESULTS.write_text(json.dumps(out, indent=1))
        print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
