"""Networks: activations and embeddings against formulas, denoiser structure and conditioning."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff_rl.nets import MLP, Denoiser, activation, mish, sinusoidal_embedding


def test_mish_matches_float64_formula_and_jax_gradient():
    x = np.linspace(-100, 100, 400_001).astype(np.float32)
    ref = x.astype(np.float64) * np.tanh(np.logaddexp(x.astype(np.float64), 0.0))
    got = np.asarray(mish(jnp.asarray(x)), np.float64)
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-30)
    g_fast = jax.vmap(jax.grad(mish))(jnp.asarray(x[::97]))
    g_ref = jax.vmap(jax.grad(jax.nn.mish))(jnp.asarray(x[::97]))
    np.testing.assert_allclose(g_fast, g_ref, rtol=1e-4, atol=1e-5)


def test_sinusoidal_embedding_formula():
    t = np.array([0, 1, 4, 19])
    emb = np.asarray(sinusoidal_embedding(jnp.asarray(t), 16))
    freqs = np.exp(-np.log(10000.0) / 7 * np.arange(8))
    np.testing.assert_allclose(emb, np.concatenate([np.sin(t[:, None] * freqs), np.cos(t[:, None] * freqs)], -1),
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="even"):
        sinusoidal_embedding(jnp.asarray(t), 7)


def test_d2sac_denoiser_parameter_count():
    """D2SAC actor (spec): [x_t 20, temb 16, state 42] -> 256 -> 256 -> 20, time MLP 16 -> 32 -> 16, + null cond."""
    net = Denoiser(out_dim=20, cond_dim=42, hidden_dims=(256, 256), output_activation="tanh")
    params = net.init(jax.random.key(0), jnp.zeros((1, 20)), jnp.zeros(1, jnp.int32), jnp.zeros((1, 42)))
    count = sum(p.size for p in jax.tree_util.tree_leaves(params))
    expected = (78 * 256 + 256) + (256 * 256 + 256) + (256 * 20 + 20) + (16 * 32 + 32) + (32 * 16 + 16) + 42
    assert count == expected
    out = net.apply(params, jnp.ones((5, 20)) * 100, jnp.arange(5), jnp.ones((5, 42)))
    assert out.shape == (5, 20) and float(jnp.abs(out).max()) <= 1.0  # tanh output


def test_null_condition_and_scalar_time():
    net = Denoiser(out_dim=3, cond_dim=4, hidden_dims=(32,))
    params = net.init(jax.random.key(0), jnp.zeros((1, 3)), jnp.zeros(1, jnp.int32), jnp.zeros((1, 4)))
    params = jax.tree_util.tree_map(lambda p: p + 0.1, params)  # make the null condition non-zero
    x, t, c = jnp.ones((6, 3)), jnp.full((6,), 2), jax.random.normal(jax.random.key(1), (6, 4))
    mask = jnp.array([True, False, True, False, True, False])
    mixed = net.apply(params, x, t, c, mask)
    np.testing.assert_allclose(mixed[mask], net.apply(params, x, t, c)[mask], rtol=1e-6)
    np.testing.assert_allclose(mixed[~mask], net.apply(params, x, t)[~mask], rtol=1e-6)  # None = null condition
    np.testing.assert_allclose(net.apply(params, x, 2, c), net.apply(params, x, t, c), rtol=1e-6)  # scalar t


def test_mlp_options_and_errors():
    mlp = MLP(out_dim=2, hidden_dims=(8, 8), layer_norm=True, residual=True, activation="relu")
    params = mlp.init(jax.random.key(0), jnp.zeros((1, 8)))
    assert "LayerNorm_0" in params["params"] and mlp.apply(params, jnp.ones((3, 8))).shape == (3, 2)
    with pytest.raises(ValueError, match="unknown activation"):
        activation("swishy")
    net = Denoiser(out_dim=3, cond_dim=4, hidden_dims=(8,))
    with pytest.raises(ValueError, match="cond_dim=4"):
        net.init(jax.random.key(0), jnp.zeros((1, 3)), jnp.zeros(1, jnp.int32), jnp.zeros((1, 5)))
    with pytest.raises(ValueError, match="out_dim=3"):
        net.init(jax.random.key(0), jnp.zeros((1, 2)), jnp.zeros(1, jnp.int32), jnp.zeros((1, 4)))
    with pytest.raises(ValueError, match="cond_dim=0"):
        Denoiser(out_dim=3).init(jax.random.key(0), jnp.zeros((1, 3)), jnp.zeros(1, jnp.int32), jnp.zeros((1, 4)))
