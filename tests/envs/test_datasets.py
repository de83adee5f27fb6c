"""Batched dataset generation: solutions achieve the stored optimum, round trip through .npz, bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import envs
from envs.datasets import generate_dataset, load_dataset, save_dataset
from envs.msr import sum_rate


@pytest.mark.parametrize("problem,dx,dy", [("co", 9, 6), ("msr-3", 4, 3), ("msr-80", 81, 80), ("nu", 6, 5)])
def test_generate_dataset_shapes_and_consistency(problem, dx, dy, tmp_path):
    n = 8 if problem == "nu" else 64
    data = generate_dataset(jax.random.key(0), problem, n)
    assert data["x"].shape == (n, dx) and data["y"].shape == (n, dy) and data["value"].shape == (n,)
    assert np.all(np.isfinite(data["value"]))
    if problem.startswith("msr"):  # independent check: the stored value is the rate of the stored powers
        gains = data["x"][:, :-1]
        np.testing.assert_allclose(sum_rate(jnp.asarray(data["y"]), jnp.asarray(gains)), data["value"], rtol=1e-5)
        np.testing.assert_allclose(data["y"].sum(-1), data["x"][:, -1], rtol=1e-5)
    same = generate_dataset(jax.random.key(0), problem, n)
    np.testing.assert_array_equal(same["y"], data["y"])  # same key, same dataset
    path = save_dataset(tmp_path / f"{problem}.npz", data, problem)
    name, loaded = load_dataset(path)
    assert name == problem and all(np.array_equal(loaded[k], data[k]) for k in data)


def test_dataset_bad_input(tmp_path):
    with pytest.raises(ValueError, match="unknown problem"):
        generate_dataset(jax.random.key(0), "tsp", 10)
    with pytest.raises(ValueError, match="n must be"):
        generate_dataset(jax.random.key(0), "co", 0)
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    with pytest.raises(ValueError, match="missing"):
        load_dataset(tmp_path / "bad.npz")
