"""Solved problem instances per second: the jitted, vmapped exact solvers vs a NumPy loop over instances.

- jax: `envs.datasets.generate_dataset` (sample + solve in one compiled program; compile time excluded);
- numpy loop: the same algorithm for one instance at a time in NumPy, as a dataset script would run it:
  CO enumerates the 2^N offloading decisions with closed-form (Cauchy-Schwarz) shares in Python loops;
  NU evaluates the equal-power sum rate on the 1 m grid of the area with NumPy arrays, masked to the triangle.

    python benchmarks/dataset_generation.py [--quick]     # writes benchmarks/results/dataset_generation.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

import jax
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from envs.datasets import generate_dataset  # noqa: E402

CO = dict(F=2.5e9, kappa=1e-28, Pt=0.3, PI=0.1, B=1e6, N0=7.96159e-13)
NU = dict(H=150.0, rho0=60.0, sigma2=110.0, P=18.0)


def co_numpy_solve(size, cpu, weight, gain):
    n = len(size)
    rx = CO["Pt"] * gain**2
    rate = CO["B"] * np.log2(1 + rx / (CO["N0"] + rx.sum()))
    a, b = weight, 1 - weight
    cycles = 3000.0 * size
    x1 = a * cycles / cpu + b * CO["kappa"] * cpu**2 * cycles
    x2 = (a + b * CO["Pt"]) * size / rate
    x3 = (a + b * CO["PI"]) * cycles / CO["F"]
    best = math.inf
    for d in itertools.product((0, 1), repeat=n):
        local = sum(x1[i] for i in range(n) if not d[i])
        roots = [math.sqrt(x3[i]) for i in range(n) if d[i]]
        remote = sum(x2[i] for i in range(n) if d[i]) + sum(roots) ** 2
        best = min(best, local + remote)
    return best


def nu_numpy_solve(positions, xs):
    X, Y = np.meshgrid(xs, xs, indexing="ij")
    n = np.sort(np.stack([NU["sigma2"] * (NU["H"] ** 2 + (X - px) ** 2 + (Y - py) ** 2) / NU["rho0"]
                          for px, py in positions], -1), -1)
    share = NU["P"] / 3
    rates = sum(np.log1p(share / (r * share + n[..., r])) for r in range(3)) / math.log(2)
    a, b, c = positions

    def cross(o, u):
        return (u[0] - o[0]) * (Y - o[1]) - (u[1] - o[1]) * (X - o[0])

    s1, s2, s3 = cross(a, b), cross(b, c), cross(c, a)
    inside = ((s1 >= 0) & (s2 >= 0) & (s3 >= 0)) | ((s1 <= 0) & (s2 <= 0) & (s3 <= 0))
    return np.where(inside, rates, -np.inf).max()


def numpy_rate(problem: str, n: int) -> float:
    rng = np.random.default_rng(0)
    if problem == "co":
        inst = [(np.clip(rng.normal(2.5e5, 5e4, 3), 1, 5e5), np.clip(rng.normal(5e8, 2e8, 3), 1, 1e9),
                 rng.uniform(0, 1, 3), rng.uniform(0, 1, 3)) for _ in range(n)]
        t0 = time.perf_counter()
        for args in inst:
            co_numpy_solve(*args)
        return n / (time.perf_counter() - t0)
    xs = np.arange(0, 401, dtype=np.float64)
    inst = [np.stack([rng.permutation([[0, 0], [200, 0], [0, 200], [200, 200]])[:3][i] + rng.integers(0, 200, 2)
                      for i in range(3)]).astype(np.float64) for _ in range(n)]
    t0 = time.perf_counter()
    for pos in inst:
        nu_numpy_solve(pos, xs)
    return n / (time.perf_counter() - t0)


def jax_rate(problem: str, n: int) -> float:
    generate_dataset(jax.random.key(0), problem, n)  # compile
    t0 = time.perf_counter()
    generate_dataset(jax.random.key(1), problem, n)
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "dataset_generation.json"))
    args = parser.parse_args()
    sizes = {"co": (30_000, 3_000), "nu": (2_000, 20)} if not args.quick else {"co": (5_000, 1_000), "nu": (256, 8)}
    machine = {"platform": platform.platform(), "cpu_count": os.cpu_count(), "jax": jax.__version__,
               "numpy": np.__version__, "device": str(jax.devices()[0])}
    print(f"machine: {machine}")
    print(f"{'problem':8s} {'jax inst/s':>11s} {'numpy inst/s':>13s} {'ratio':>7s}")
    rows = []
    for problem, (n_jax, n_np) in sizes.items():
        ours, ref = jax_rate(problem, n_jax), numpy_rate(problem, n_np)
        rows.append(dict(problem=problem, jax_instances_per_s=ours, numpy_instances_per_s=ref, ratio=ours / ref,
                         n_jax=n_jax, n_numpy=n_np))
        print(f"{problem:8s} {ours:11.4g} {ref:13.4g} {ours / ref:7.1f}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"benchmark": "dataset_generation", "machine": machine, "rows": rows}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
