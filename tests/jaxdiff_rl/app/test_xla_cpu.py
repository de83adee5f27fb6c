"""pin_to_one_core: pins a fresh process, refuses (changing nothing) once JAX's backend is up."""

import os
import subprocess
import sys

import jax.numpy as jnp
import pytest

from jaxdiff_rl.app.xla_cpu import backends_initialised, pin_to_one_core


def test_after_the_backend_is_up_it_changes_nothing():
    jnp.zeros(1).block_until_ready()
    assert backends_initialised()
    before = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    assert pin_to_one_core() is False
    if before is not None:
        assert os.sched_getaffinity(0) == before


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this OS")
def test_a_fresh_process_is_pinned_and_xla_sees_one_cpu():
    code = ("import os; from jaxdiff_rl.app.xla_cpu import pin_to_one_core; ok = pin_to_one_core(); "
            "import jax; jax.numpy.zeros(1).block_until_ready(); print(ok, len(os.sched_getaffinity(0)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert out.stdout.split() == ["True", "1"]
