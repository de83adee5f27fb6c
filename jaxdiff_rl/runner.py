"""Host runner: executes a (vmapped) training run in chunks of iterations, with a progress bar, metrics to
JSON lines, an orbax checkpoint after every chunk, and resume that continues bit-identically.

    trainer = make_trainer(config, env, env_params)
    result = run(trainer, hparams, keys, out_dir="runs/x", chunk_iterations=10)   # hparams/keys: [R] runs
    result = run(..., resume=True)   # after a crash: restores the last checkpoint, re-runs nothing twice

Files in `out_dir`: `metrics.jsonl` (one line per iteration and run: {"iteration", "run", <scalar metrics>}),
`run.json` (config, hyperparameters, environment, seeds: what `jaxdiff-rl eval/plot` read), `checkpoints/`
(orbax; the last 2 chunks). Bit-identical resume: the run is one pure function of its state, the state
(including the PRNG key, as raw uint32) is saved whole after each chunk, and a resumed run calls the same
compiled chunk program, so the remaining chunks see exactly the same inputs as in an uninterrupted run.
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jaxdiff_rl.sweep import sweep_size
from jaxdiff_rl.train import RunnerState, Trainer, check_finite

__all__ = ["RunResult", "run", "read_metrics", "restore_latest"]


@dataclass
class RunResult:
    """state: final RunnerState with leading axis R; metrics: {name: np.ndarray [R, iterations]};
    seconds: wall time of this call (compile included); env_steps_per_s: aggregate over all runs."""

    state: RunnerState
    metrics: dict[str, np.ndarray]
    seconds: float
    env_steps_per_s: float


def _scalar_rows(metrics: dict[str, np.ndarray], first_iteration: int) -> list[str]:
    runs, iters = next(iter(metrics.values())).shape[:2]
    lines = []
    for i in range(iters):
        for r in range(runs):
            row = {"iteration": first_iteration + i, "run": r}
            for name, values in metrics.items():
                v = float(values[r, i])
                row[name] = v if math.isfinite(v) else None
            lines.append(json.dumps(row))
    return lines


def read_metrics(path: str | Path) -> dict[str, np.ndarray]:
    """metrics.jsonl -> {name: [runs, iterations]} (None/NaN where missing)."""
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    if not rows:
        raise ValueError(f"{path}: no metrics")
    runs = 1 + max(r["run"] for r in rows)
    iters = 1 + max(r["iteration"] for r in rows)
    names = [k for k in rows[0] if k not in ("iteration", "run")]
    out = {n: np.full((runs, iters), np.nan) for n in names}
    for r in rows:
        for n in names:
            if r.get(n) is not None:
                out[n][r["run"], r["iteration"]] = r[n]
    return out


def restore_latest(manager: ocp.CheckpointManager, template: Any) -> tuple[int, Any] | None:
    """(step, state) of the latest checkpoint, restored with the shapes and dtypes of `template` (arrays or
    ShapeDtypeStructs), or None when there is no checkpoint."""
    step = manager.latest_step()
    if step is None:
        return None
    abstract = jax.tree_util.tree_map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), template)
    return int(step), manager.restore(step, args=ocp.args.StandardRestore(abstract))


def _truncate_metrics(path: Path, iteration: int) -> None:
    """Drop lines at or after `iteration` (written after the checkpoint we resume from)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["iteration"] < iteration]
    path.write_text("".join(line + "\n" for line in keep))


def run(
    trainer: Trainer,
    hparams: Any,
    keys: jax.Array,
    out_dir: str | Path | None = None,
    chunk_iterations: int | None = None,
    resume: bool = False,
    progress: bool = True,
    env_params: Any = None,
    description: dict[str, Any] | None = None,
) -> RunResult:
    """Run `trainer.train` for every run (keys [R], hparams stacked [R]) in chunks of iterations.

    Args:
        trainer: from `make_trainer`.
        hparams: Hparams with leading axis R (see `sweep.grid`/`with_seeds`).
        keys: [R] PRNG keys.
        out_dir: where metrics, run.json and checkpoints go (None: keep everything in memory).
        chunk_iterations: iterations per chunk (default ~1% of the run, at least 1).
        resume: continue from the last checkpoint in `out_dir` (starts fresh if there is none).
        progress: tqdm bar (stderr) with env steps/s and the latest mean return.
        env_params: stacked [R] environment parameters, or None for the trainer's.
        description: extra JSON-able facts stored in run.json.
    Raises:
        FloatingPointError: a loss became NaN/inf (the message names the loss and the iteration).
    """
    from tqdm import tqdm

    config = trainer.config
    total = config.num_iterations
    runs = int(keys.shape[0])
    if sweep_size(hparams) != runs:
        raise ValueError(f"run: hparams have {sweep_size(hparams)} runs but keys have {runs}")
    chunk = chunk_iterations or max(1, total // 100)
    if chunk < 1:
        raise ValueError(f"chunk_iterations must be >= 1, got {chunk}")
    env_axis = None if env_params is None else 0
    init = jax.jit(jax.vmap(trainer.init, in_axes=(0, 0, env_axis)))
    run_chunk = jax.jit(
        jax.vmap(lambda s, h, e, n: trainer.run(s, h, n, e), in_axes=(0, 0, env_axis, None)), static_argnums=3
    )

    t0 = time.perf_counter()
    state = init(keys, hparams, env_params)
    done = 0
    manager = None
    metrics_path = None
    if out_dir is not None:
        out = Path(out_dir).resolve()
        out.mkdir(parents=True, exist_ok=True)
        metrics_path = out / "metrics.jsonl"
        manager = ocp.CheckpointManager(
            out / "checkpoints",
            options=ocp.CheckpointManagerOptions(max_to_keep=2, enable_async_checkpointing=False),
        )
        restored = restore_latest(manager, state) if resume else None
        if restored is not None:
            done, state = restored
            _truncate_metrics(metrics_path, done)
        else:
            metrics_path.write_text("")
        info = {"config": repr(config), "runs": runs, "num_iterations": total, "chunk_iterations": chunk,
                "hparams": jax.tree_util.tree_map(lambda x: np.asarray(x).tolist(), hparams.__dict__),
                **(description or {})}
        (out / "run.json").write_text(json.dumps(info, indent=1, default=str))

    collected: list[dict[str, np.ndarray]] = []
    bar = tqdm(total=total, initial=done, desc=config.algo, unit="it", disable=not progress, file=sys.stderr)
    steps_per_iter = config.num_envs * config.steps_per_iter * runs
    while done < total:
        n = min(chunk, total - done)
        t_chunk = time.perf_counter()
        state, metrics = run_chunk(state, hparams, env_params, n)
        metrics = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
        check_finite(metrics, done)
        collected.append(metrics)
        if metrics_path is not None:
            with metrics_path.open("a") as f:
                f.write("".join(line + "\n" for line in _scalar_rows(metrics, done)))
        done += n
        if manager is not None:
            manager.save(done, args=ocp.args.StandardSave(state))
        rate = n * steps_per_iter / (time.perf_counter() - t_chunk)
        latest = np.nanmean(metrics["return_mean"]) if np.isfinite(metrics["return_mean"]).any() else float("nan")
        bar.set_postfix_str(f"{rate:,.0f} env steps/s, return {latest:.3g}")
        bar.update(n)
    bar.close()
    if manager is not None:
        manager.wait_until_finished()
        manager.close()
    seconds = time.perf_counter() - t0
    merged = {k: np.concatenate([m[k] for m in collected], axis=1) for k in collected[0]} if collected else {}
    env_steps = sum(m["episodes"].shape[1] for m in collected) * steps_per_iter
    return RunResult(state=state, metrics=merged, seconds=seconds, env_steps_per_s=env_steps / max(seconds, 1e-9))
