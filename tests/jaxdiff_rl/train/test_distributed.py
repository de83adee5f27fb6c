"""Multi-process sweeps (jax.distributed on CPU, gloo): argument checks, the unreachable-coordinator timeout, global
arrays round-trip, and two local processes whose sharded, killed and resumed run equals the single-process run
on the same devices bit for bit (and resumes on another process count)."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxdiff_rl.train import distributed

ROOT = Path(__file__).resolve().parents[3]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args, match", [
    ((2, 2, "127.0.0.1:1234"), "process_id must be in \\[0, num_processes - 1\\] = \\[0, 1\\]"),
    ((2, -1, "127.0.0.1:1234"), "process_id"),
    ((0, 0, None), "num_processes must be >= 1"),
    ((2, 0, "localhost"), "coordinator must be 'host:port'"),
    ((2, 0, "localhost:99999"), "port in \\[1, 65535\\]"),
    ((2, 0, "127.0.0.1:1234", 0.0), "timeout_s"),
])
def test_bad_process_arguments_name_the_field(args, match):
    with pytest.raises(ValueError, match=match):
        distributed.check_process_args(*args)


def test_bad_process_argument_types():
    with pytest.raises(TypeError, match="process_id must be an integer"):
        distributed.check_process_args(2, 1.0, "h:1")
    with pytest.raises(TypeError, match="coordinator must be 'host:port'"):
        distributed.check_process_args(2, 1, None)
    with pytest.raises(ValueError, match="together"):
        distributed.initialize(num_processes=2)


def test_initialize_after_backends_is_refused():
    jax.numpy.zeros(1).block_until_ready()
    with pytest.raises(RuntimeError, match="before the first JAX computation"):
        distributed.initialize(2, 1, f"127.0.0.1:{_free_port()}", timeout_s=1.0)
    assert distributed.initialize(1, 0, None) is False  # one process: nothing to join


def test_unreachable_coordinator_is_a_clear_error_after_the_timeout():
    port = _free_port()  # nobody listens there
    code = f"from jaxdiff_rl.train import distributed; distributed.initialize(2, 1, '127.0.0.1:{port}', timeout_s=2)"
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    elapsed = time.perf_counter() - t0
    assert out.returncode == 1, out.stderr[-2000:]  # a Python exception, not XLA's abort (rc 134)
    assert "TimeoutError" in out.stderr and f"127.0.0.1:{port} could not be reached within 2 s" in out.stderr
    assert 2.0 <= elapsed < 30.0


def test_global_arrays_round_trip_with_typed_keys():
    mesh = distributed.sweep_mesh()
    sharding = distributed.run_sharding(mesh)
    tree = {"k": jax.random.split(jax.random.key(3), 3), "x": np.arange(6.0, dtype=np.float32).reshape(3, 2)}
    padded, pad = distributed.pad_runs(tree, 4)
    assert pad == 1 and padded["x"].shape == (4, 2)
    np.testing.assert_array_equal(np.asarray(padded["x"][3]), [4.0, 5.0])
    g = distributed.to_global(tree, sharding)
    assert jax.numpy.issubdtype(g["k"].dtype, jax.dtypes.prng_key) and g["x"].sharding == sharding
    host = distributed.to_host(g)
    np.testing.assert_array_equal(host["k"], np.asarray(jax.random.key_data(tree["k"])))
    np.testing.assert_array_equal(host["x"], tree["x"])


# --- two local processes ---------------------------------------------------------------------------------------
TRAIN = ["-m", "jaxdiff_rl.app.cli", "train", "--algo", "ddpg", "--env", "msr-3", "--seeds", "4", "--hidden", "8",
         "--num-envs", "4", "--steps-per-iter", "2", "--updates-per-iter", "8", "--batch-size", "16",
         "--buffer-size", "512", "--num-iterations", "24", "--chunk", "2", "--no-progress"]

#: the same runs in one process over 2 (virtual) CPU devices: the partition of the 2-process job, 2 runs a device
REFERENCE = textwrap.dedent("""
    import sys, json
    from jaxdiff_rl.app.cli import build_parser
    from jaxdiff_rl.app.cli_train import _cmd_train
    import jaxdiff_rl.app.experiment as experiment
    from jaxdiff_rl.app import runner
    from jaxdiff_rl.train.distributed import sweep_mesh
    from jaxdiff_rl.train.sweep import unstack
    original = runner.run
    experiment.run = lambda *a, **k: original(*a, mesh=sweep_mesh(), **k)
    args = build_parser().parse_args(sys.argv[1:])
    _cmd_train(args)
    try:  # 5 runs over 2 devices: refused before anything compiles
        spec, _ = experiment.load_spec(args.out)
        trainer, keys, hp, _ = experiment.build(spec)
        original(trainer, unstack(hp, 0), keys[:3], mesh=sweep_mesh(), progress=False)
    except ValueError as exc:
        print(json.dumps({"refused": str(exc)}))
""")


def _final_state(run_dir: Path):
    from jaxdiff_rl.app.experiment import build, load_spec, restore_state

    spec, _ = load_spec(run_dir)
    trainer, keys, hp, _ = build(spec)
    return restore_state(run_dir, trainer, keys, hp)


def _launch(out: Path, port: int, env: dict, resume: bool = False) -> list[subprocess.Popen]:
    extra = ["--resume"] if resume else []
    return [subprocess.Popen(["taskset", "-c", str(i % max(1, os.cpu_count() or 1)), sys.executable, *TRAIN,
                              "--out", str(out), "--num-processes", "2", "--process-id", str(i), "--coordinator",
                              f"127.0.0.1:{port}", "--init-timeout", "60", *extra],
                             cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for i in range(2)]


def _wait(procs: list[subprocess.Popen], timeout: float = 240) -> None:
    for p in procs:
        out, err = p.communicate(timeout=timeout)
        assert p.returncode == 0, err.decode()[-3000:]


@pytest.mark.heavy
@pytest.mark.skipif(shutil.which("taskset") is None, reason="needs taskset (Linux)")
def test_two_processes_kill_resume_and_reshard_equal_the_single_process_run(tmp_path):
    env = {**os.environ, "JAX_PLATFORMS": "cpu", "JAX_COMPILATION_CACHE_DIR": str(tmp_path / "jax_cache"),
           "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0", "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "0"}
    env.pop("XLA_FLAGS", None)
    two_devices = {**env, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    ref, killed = tmp_path / "reference", tmp_path / "killed"
    out = subprocess.run([sys.executable, "-c", REFERENCE, *TRAIN[2:], "--out", str(ref)], cwd=ROOT, env=two_devices,
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "3 runs cannot be split evenly over the mesh's 2 devices" in json.loads(out.stdout.splitlines()[-1])["refused"]

    # kill process 1 once a mid-run checkpoint exists, then process 0 (its peer is gone); restart both
    procs = _launch(killed, _free_port(), env)
    ckpt, deadline = killed / "checkpoints", time.time() + 240
    while time.time() < deadline and procs[1].poll() is None:
        steps = [int(p.name) for p in ckpt.glob("*") if p.name.isdigit()] if ckpt.exists() else []
        if steps and max(steps) >= 6:
            break
        time.sleep(0.02)
    assert procs[1].poll() is None, "process 1 ended before it could be killed: " + procs[1].stderr.read().decode()[-2000:]
    procs[1].send_signal(signal.SIGKILL)
    procs[0].send_signal(signal.SIGKILL)
    for p in procs:
        p.wait()
    steps = sorted(int(p.name) for p in ckpt.glob("*") if p.name.isdigit())
    assert steps and 0 < steps[-1] < 24, steps
    shutil.copytree(killed, tmp_path / "reshard")
    _wait(_launch(killed, _free_port(), env, resume=True))

    # the 2-process checkpoint resumed by one process over 2 devices (a different process count)
    out = subprocess.run([sys.executable, "-c", REFERENCE, *TRAIN[2:], "--out", str(tmp_path / "reshard"), "--resume"],
                         cwd=ROOT, env=two_devices, capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-3000:]

    expected = jax.tree_util.tree_leaves(_final_state(ref))
    for run_dir in (killed, tmp_path / "reshard"):
        got = jax.tree_util.tree_leaves(_final_state(run_dir))
        assert len(got) == len(expected)
        for x, y in zip(expected, got):
            assert np.array_equal(np.asarray(x), np.asarray(y)), run_dir.name
        rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
        assert sorted((r["iteration"], r["run"]) for r in rows) == [(i, r) for i in range(24) for r in range(4)]
    assert int(np.asarray(_final_state(killed).iteration)[0]) == 24
