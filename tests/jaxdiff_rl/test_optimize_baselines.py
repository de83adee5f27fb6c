"""DiffSG baselines on MSR-3 (convex, exact optimum known): each reaches near-optimal solutions or improves."""

import jax
import jax.numpy as jnp
import numpy as np

from envs.datasets import generate_dataset, objective_fn, repair_fn
from jaxdiff_rl.optimize import Normalizer
from jaxdiff_rl.optimize.baselines import MTFNN, OneStepPPO, PPOConfig, gradient_descent


def _data():
    train = generate_dataset(jax.random.key(0), "msr-3", 1024)
    test = generate_dataset(jax.random.key(1), "msr-3", 64)
    return train, test, objective_fn("msr-3"), repair_fn("msr-3")


def test_gradient_descent_solves_the_convex_problem():
    train, test, f, r = _data()
    y = gradient_descent(jax.random.key(2), jnp.asarray(test["x"]), Normalizer.fit(jnp.asarray(train["y"])), f, r,
                         1.0, 300)
    ratio = np.asarray(jax.vmap(f)(test["x"], y)) / test["value"]
    assert ratio.max() <= 1 + 1e-5 and ratio.mean() > 0.995
    np.testing.assert_allclose(np.asarray(y).sum(-1), test["x"][:, -1], rtol=1e-5)  # feasible: sum p = P


def test_mtfnn_regresses_the_optimum():
    train, test, f, r = _data()
    m = MTFNN(4, 3, hidden_dims=(64, 64), epochs=60, batch_size=128, lr=3e-3)
    params, xn, yn, losses = m.train(jax.random.key(3), jnp.asarray(train["x"]), jnp.asarray(train["y"]))
    assert float(losses[-1]) < 0.1 * float(losses[0])
    y = m.predict(params, xn, yn, jnp.asarray(test["x"]), r)
    assert float(np.mean(np.asarray(jax.vmap(f)(test["x"], y)) / test["value"])) > 0.98


def test_one_step_ppo_improves_the_reward():
    """On CO (a random policy pays heavy-tailed costs, so there is room to learn) the reward rises."""
    train = generate_dataset(jax.random.key(5), "co", 2048)
    f, r = objective_fn("co"), repair_fn("co")
    ppo = OneStepPPO(9, 6, PPOConfig(hidden_dims=(32, 32), iterations=100, batch_size=256, lr=1e-3))
    params, xn, yn, curve = ppo.train(jax.random.key(4), jnp.asarray(train["x"]), jnp.asarray(train["y"]), f, r, -1.0)
    curve = np.asarray(curve)  # mean reward = -mean cost per iteration
    assert np.median(curve[-20:]) > 0.5 * np.median(curve[:20])  # mean cost at least halved
