"""Host runner: executes a (vmapped) training run in chunks of iterations, with a progress bar, metrics to
JSON lines, an orbax checkpoint after every chunk, and resume that continues bit-identically.

    trainer = make_trainer(config, env, env_params)
    result = run(trainer, hparams, keys, out_dir="runs/x", chunk_iterations=10)   # hparams/keys: [R] runs
    result = run(..., resume=True)   # after a crash: restores the last checkpoint, re-runs nothing twice
    result = run(trainer, hp, jax.random.key(0))   # one run: a single key and unstacked hparams (no run axis)
    result = run(..., eval_steps=1, eval_envs=256) # greedy evaluation at iteration 0 and after every chunk

Files in `out_dir`: `metrics.jsonl` (one line per iteration and run: {"iteration", "run", <scalar metrics>}),
`evaluations.jsonl` (with `eval_steps`: one line per evaluation point and run),
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
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from jax.sharding import Mesh

from jaxdiff_rl.train.distributed import is_multiprocess, is_primary, run_sharding, sweep_mesh, to_global, to_host
from jaxdiff_rl.train.sweep import is_stacked, stack, sweep_size, unstack
from jaxdiff_rl.train import RunnerState, Trainer, check_finite

__all__ = ["RunResult", "run", "read_metrics", "restore_latest"]


@dataclass
class RunResult:
    """state: final RunnerState with leading axis R; metrics: {name: np.ndarray [R, iterations]};
    seconds: wall time of this call (compile included); env_steps_per_s: aggregate over all runs;
    evaluations: with `eval_steps`, {"iteration": [E], <Trainer.evaluate metric>: [R, E]} of the greedy policy
    at iteration 0 (or the resumed one) and after every chunk, else {}; chunk_seconds: wall time of each chunk's
    training call (the first includes compilation). A single-key run drops the R axis."""

    state: RunnerState
    metrics: dict[str, np.ndarray]
    seconds: float
    env_steps_per_s: float
    evaluations: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)
    chunk_seconds: list[float] = dataclasses.field(default_factory=list)


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
    """(step, state) of the latest checkpoint, restored with the shapes, dtypes and shardings of `template` (arrays
    or ShapeDtypeStructs; a sharded template reshards, e.g. a checkpoint of 2 processes restored on 1), or None when
    there is no checkpoint."""
    step = manager.latest_step()
    if step is None:
        return None
    # an explicit target sharding everywhere: without one orbax restores onto the devices that saved the checkpoint,
    # which fails on another topology; a template without shardings (jax.eval_shape) restores onto local device 0
    local = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    abstract = jax.tree_util.tree_map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=getattr(x, "sharding", None) or local), template)
    return int(step), manager.restore(step, args=ocp.args.StandardRestore(abstract))


def _truncate_metrics(path: Path, iteration: int) -> None:
    """Drop lines at or after `iteration` (written after the checkpoint we resume from)."""
    if not path.exists():
        return
    keep = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["iteration"] < iteration]
    path.write_text("".join(line + "\n" for line in keep))


def _is_single_key(keys: Any) -> bool:
    keys = jax.numpy.asarray(keys) if not isinstance(keys, jax.Array) else keys
    if jax.numpy.issubdtype(keys.dtype, jax.dtypes.prng_key):
        return keys.ndim == 0
    return keys.ndim == 1 and keys.shape == (2,)


def _check_positive(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"run: {name} must be an integer >= 1, got {value!r}")


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
    eval_steps: int = 0,
    eval_envs: int | None = None,
    eval_seed: int = 1,
    mesh: Mesh | None = None,
) -> RunResult:
    """Run `trainer.train` for every run (keys [R], hparams stacked [R]) in chunks of iterations.

    Args:
        trainer: from `make_trainer`.
        hparams: Hparams with leading axis R (see `sweep.grid`/`with_seeds`), or unstacked (shared by all runs).
        keys: [R] PRNG keys, or one key: a single run, whose state and metrics come back without the run axis.
        out_dir: where metrics, run.json and checkpoints go (None: keep everything in memory).
        chunk_iterations: iterations per chunk (default ~1% of the run, at least 1).
        resume: continue from the last checkpoint in `out_dir` (starts fresh if there is none).
        progress: tqdm bar (stderr) with env steps/s and the latest mean return.
        env_params: stacked [R] environment parameters, or None for the trainer's.
        description: extra JSON-able facts stored in run.json.
        eval_steps: > 0: evaluate the greedy policy (`Trainer.evaluate`, `eval_steps` steps in `eval_envs`
            environments, default the config's `num_envs`) before the first chunk and after every chunk, so the
            learning curve starts at the untrained policy; every run and point uses the key fold_in(eval_seed,
            iteration) (common random instances across runs). 0: no evaluation.
        mesh: split the runs over this mesh's devices (axis "sweep"; `distributed.sweep_mesh()`). Default: in a
            multi-process job (`distributed.initialize`) the mesh of every process's devices, else no sharding.
            With a mesh, R must be a multiple of the device count (refused, not padded, so that a checkpoint
            restores on another device or process count); every process calls `run` with the same arguments,
            process 0 alone writes the files and shows progress, all processes write the (sharded) checkpoints,
            and the returned state and metrics are full NumPy arrays on every process.
    Raises:
        FloatingPointError: a loss became NaN/inf (the message names the loss and the iteration).
        ValueError: run counts that disagree, or chunk/eval sizes < 1.
    """
    from tqdm import tqdm

    config = trainer.config
    total = config.num_iterations
    single = _is_single_key(keys)
    if single:
        keys = jax.numpy.asarray(keys)[None]
    runs = int(keys.shape[0])
    if not is_stacked(hparams, runs):
        if is_stacked(hparams):
            raise ValueError(f"run: hparams have {sweep_size(hparams)} runs but keys have {runs}")
        hparams = stack(hparams, runs)
    if env_params is not None and not is_stacked(env_params, runs):
        if is_stacked(env_params) and sweep_size(env_params) != runs:
            raise ValueError(f"run: env_params have {sweep_size(env_params)} runs but keys have {runs}")
        env_params = stack(env_params, runs)
    chunk = chunk_iterations or max(1, total // 100)
    _check_positive("chunk_iterations", chunk)
    if isinstance(eval_steps, bool) or not isinstance(eval_steps, (int, np.integer)) or eval_steps < 0:
        raise ValueError(f"run: eval_steps must be an integer >= 0, got {eval_steps!r}")
    if eval_envs is not None:
        _check_positive("eval_envs", eval_envs)
    if mesh is None and is_multiprocess():
        mesh = sweep_mesh()
    shard = {} if mesh is None else {"out_shardings": run_sharding(mesh)}
    host_hparams = hparams  # for run.json: global arrays cannot be read whole on one process
    if mesh is not None:
        if runs % mesh.size:
            raise ValueError(f"run: {runs} runs cannot be split evenly over the mesh's {mesh.size} devices "
                             f"({jax.process_count()} processes); use a multiple of {mesh.size} runs (more seeds)")
        keys, hparams, env_params = to_global((keys, hparams, env_params), run_sharding(mesh))
    primary = is_primary()
    env_axis = None if env_params is None else 0
    evaluate = None
    if eval_steps:
        evaluate = jax.jit(jax.vmap(
            lambda s, k, h, e: trainer.evaluate(s, k, h, eval_steps, e, num_envs=eval_envs), in_axes=(0, None, 0, env_axis)),
            **shard)
    init = jax.jit(jax.vmap(trainer.init, in_axes=(0, 0, env_axis)), **shard)
    run_chunk = jax.jit(
        jax.vmap(lambda s, h, e, n: trainer.run(s, h, n, e), in_axes=(0, 0, env_axis, None)), static_argnums=3,
        **shard)

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
            if primary:
                _truncate_metrics(metrics_path, done)
                _truncate_metrics(out / "evaluations.jsonl", done)
        elif primary:
            metrics_path.write_text("")
            (out / "evaluations.jsonl").write_text("")
        info = {"config": repr(config), "runs": runs, "num_iterations": total, "chunk_iterations": chunk,
                "hparams": jax.tree_util.tree_map(lambda x: np.asarray(x).tolist(), host_hparams.__dict__),
                **(description or {})}
        if primary:
            (out / "run.json").write_text(json.dumps(info, indent=1, default=str))

    collected: list[dict[str, np.ndarray]] = []
    evaluations: list[tuple[int, dict[str, np.ndarray]]] = []
    chunk_seconds: list[float] = []

    def evaluate_now(iteration: int) -> None:
        # host NumPy: a replicated input on every process
        key = np.asarray(jax.random.fold_in(jax.random.PRNGKey(eval_seed), iteration))
        values = to_host(evaluate(state, key, hparams, env_params))
        evaluations.append((iteration, values))
        if out_dir is not None and primary:
            with (out / "evaluations.jsonl").open("a") as f:
                f.write("".join(line + "\n" for line in _scalar_rows({k: v[:, None] for k, v in values.items()},
                                                                    iteration)))

    if evaluate is not None:
        evaluate_now(done)
    bar = tqdm(total=total, initial=done, desc=config.algo, unit="it", disable=not (progress and primary),
               file=sys.stderr)
    steps_per_iter = config.num_envs * config.steps_per_iter * runs
    while done < total:
        n = min(chunk, total - done)
        t_chunk = time.perf_counter()
        state, metrics = run_chunk(state, hparams, env_params, n)
        metrics = to_host(metrics)
        chunk_seconds.append(time.perf_counter() - t_chunk)
        check_finite(metrics, done)
        collected.append(metrics)
        if metrics_path is not None and primary:
            with metrics_path.open("a") as f:
                f.write("".join(line + "\n" for line in _scalar_rows(metrics, done)))
        done += n
        if evaluate is not None:
            evaluate_now(done)
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
    evals: dict[str, np.ndarray] = {}
    if evaluations:
        evals = {"iteration": np.asarray([it for it, _ in evaluations])}
        evals.update({k: np.stack([v[k] for _, v in evaluations], axis=1) for k in evaluations[0][1]})
    if mesh is not None and is_multiprocess():
        state = to_host(state)
    if single:
        state = unstack(state, 0)
        merged = {k: v[0] for k, v in merged.items()}
        evals = {k: (v if k == "iteration" else v[0]) for k, v in evals.items()}
    return RunResult(state=state, metrics=merged, seconds=seconds, env_steps_per_s=env_steps / max(seconds, 1e-9),
                     evaluations=evals, chunk_seconds=chunk_seconds)
