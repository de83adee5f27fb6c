"""Mixed precision (bf16 matmuls, f32 accumulation and parameters): against a NumPy computation with the same
bf16 rounding, and the losses' agreement with f32."""

import jax
import jax.numpy as jnp
import ml_dtypes
import numpy as np
import pytest

from jaxdiff_rl.agents.networks import ActorConfig, DoubleCritic, actor_module
from jaxdiff_rl.diffusion import make_schedule
from jaxdiff_rl.diffusion.losses import diffusion_loss
from jaxdiff_rl.nets import MLP, Denoiser, dense_layer, mish


def _bf16(a):
    return np.asarray(a, np.float32).astype(ml_dtypes.bfloat16).astype(np.float32)


def test_bf16_mlp_equals_numpy_with_bf16_rounded_operands():
    x = np.asarray(jax.random.normal(jax.random.key(0), (32, 12)))
    net = MLP(out_dim=3, hidden_dims=(64, 64), matmul_dtype="bfloat16")
    params = MLP(out_dim=3, hidden_dims=(64, 64)).init(jax.random.key(1), x)  # the same tree as f32
    got = np.asarray(net.apply(params, x))
    assert got.dtype == np.float32
    h = x
    layers = [params["params"][f"Dense_{i}"] for i in range(3)]
    for i, layer in enumerate(layers):
        z = _bf16(h) @ _bf16(layer["kernel"]) + np.asarray(layer["bias"])  # products exact in f32, sums in f32
        h = np.asarray(mish(jnp.asarray(z))) if i < 2 else z
    np.testing.assert_allclose(got, h, rtol=2e-5, atol=2e-5)
    f32 = np.asarray(MLP(out_dim=3, hidden_dims=(64, 64)).apply(params, x))
    rel = np.abs(got - f32).max() / np.abs(f32).max()
    assert 1e-4 < rel < 2e-2  # bf16 rounding is really applied, and small


def test_losses_agree_with_f32_within_one_percent():
    key = jax.random.key(2)
    obs, act = jax.random.normal(key, (256, 10)), jnp.tanh(jax.random.normal(jax.random.key(3), (256, 4)))
    target = jax.random.normal(jax.random.key(4), (256,))
    critic = DoubleCritic(hidden_dims=(256, 256))
    params = critic.init(jax.random.key(5), obs, act)
    td = lambda c: float(jnp.mean((c.apply(params, obs, act) - target[None]) ** 2))
    assert abs(td(DoubleCritic(hidden_dims=(256, 256), matmul_dtype="bfloat16")) - td(critic)) / td(critic) < 1e-2

    sch = make_schedule("vp", 5)
    den = lambda dtype: actor_module(ActorConfig(kind="diffusion", hidden_dims=(256, 256), matmul_dtype=dtype), 4, 10)
    p = den("float32").init(jax.random.key(6), act, jnp.zeros(256, jnp.int32), obs)
    loss = lambda dtype: float(diffusion_loss(jax.random.key(7), lambda x, t, c, u: den(dtype).apply(p, x, t, c, u),
                                         sch, act, obs))
    assert abs(loss("bfloat16") - loss("float32")) / loss("float32") < 1e-2
    hlo = jax.jit(lambda x: den("bfloat16").apply(p, x, jnp.zeros(256, jnp.int32), obs)).lower(act).as_text()
    assert "bf16" in hlo and isinstance(den("bfloat16"), Denoiser)


def test_bad_matmul_dtype():
    with pytest.raises(ValueError, match="ActorConfig.matmul_dtype must be one of"):
        ActorConfig(matmul_dtype="float16")
    with pytest.raises(ValueError, match="matmul_dtype must be one of"):
        dense_layer("int8")
