"""Flow matching (rectified flow; Liu et al. 2023, Lipman et al. 2023) and its K-step ODE sampler.

Interpolant: x_t = (1 - t) x_0 + t eps, t in [0, 1] (t = 1: pure noise N(0, I), t = 0: data). The network
predicts the velocity v(x_t, t, cond) ~ E[eps - x_0 | x_t] = dx_t/dt, trained by
    L = E_{t ~ U(0, 1), eps} ||v_theta(x_t, t, cond) - (eps - x_0)||^2,
and samples integrate dx/dt = v from t = 1 to t = 0 on K uniform steps (Euler: K network evaluations; Heun:
2K, the flow is defined at t = 0 so the last step is Heun too). Relations used for guidance and clipping, with x = x_t fixed:
    x0_hat = x - t v,   eps_hat = x + (1 - t) v.

The network sees the time as `FLOW_TIME_SCALE * t` (a sinusoidal embedding resolves it the way it resolves the
integer DDPM steps). Every function is jittable; the chain is one `lax.scan`.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_rl.diffusion.guidance import GuideFn, cfg_combine, cfg_normalize, cfg_pair, clip_box

__all__ = ["FLOW_TIME_SCALE", "FLOW_ODES", "flow_matching_loss", "flow_times", "flow_sample", "flow_chain_log_prob",
           "flow_trajectory_log_prob"]

FLOW_TIME_SCALE = 100.0
FLOW_ODES = ("euler", "heun")


def flow_matching_loss(
    key: jax.Array,
    model_fn: Any,
    x0: jax.Array,
    cond: jax.Array | None = None,
    p_uncond: jax.Array | float = 0.0,
    weights: jax.Array | None = None,
) -> jax.Array:
    """Conditional flow-matching loss, averaged over batch and dims (per-sample `weights` [B] optional).

    x0 [B, D] data, cond [B, C] or None; p_uncond: condition-dropout probability (classifier-free guidance)."""
    batch = x0.shape[0]
    k_t, k_eps, k_drop = jax.random.split(key, 3)
    t = jax.random.uniform(k_t, (batch,))
    eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
    x_t = (1.0 - t)[:, None] * x0 + t[:, None] * eps
    use_cond = None if cond is None else jax.random.uniform(k_drop, (batch,)) >= p_uncond
    v = model_fn(x_t, FLOW_TIME_SCALE * t, cond, use_cond)
    per_sample = jnp.mean((v - (eps - x0)) ** 2, axis=-1)
    if weights is None:
        return jnp.mean(per_sample)
    return jnp.sum(weights * per_sample) / jnp.sum(weights)


def flow_times(steps: int) -> np.ndarray:
    """The K + 1 integration times 1 = t_0 > t_1 > ... > t_K = 0 (uniform), float32 [K + 1]."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"flow steps K must be an integer >= 1, got {steps!r}")
    return np.linspace(1.0, 0.0, steps + 1, dtype=np.float32)


def _velocity(model_fn, x, t, cond, cfg_weight=None, guide_fn=None, guide_scale=1.0, clip_x0=None,
              cfg_normalize_steps=0, step=0):
    """Guided velocity [B, D] at (x [B, D], time t: a scalar shared by the rows, or [B])."""
    tt = jnp.asarray(FLOW_TIME_SCALE, jnp.float32) * t
    t = t[:, None] if jnp.ndim(t) == 1 else t
    if cfg_weight is None:
        v = model_fn(x, tt, cond, None)
    else:
        v_cond, v_uncond = cfg_pair(model_fn, x, tt, cond)
        v = cfg_combine(v_cond, v_uncond, cfg_weight)
        if cfg_normalize_steps > 0:
            v = jnp.where(step < cfg_normalize_steps, cfg_normalize(v, v_cond), v)
    if guide_fn is not None:
        # the eps-form shift of gradient guidance (noise std t): eps_hat -= s t grad g, x0_hat fixed -> v -= s t grad g
        grad = jax.grad(lambda a: jnp.sum(guide_fn(a, cond)))(x)
        v = v - jnp.asarray(guide_scale, v.dtype) * t * grad
    if clip_x0 is not None:  # keep the implied x0 in the box: v = (x - clip(x - t v)) / t
        x0 = jnp.clip(x - t * v, *clip_x0)
        v = jnp.where(t > 0, (x - x0) / jnp.maximum(t, 1e-6), v)
    return v


def flow_sample(
    key: jax.Array,
    model_fn: Any,
    shape: tuple[int, int],
    cond: jax.Array | None = None,
    *,
    steps: int = 10,
    ode: str = "euler",
    clip_x0: tuple[float, float] | None = None,
    clip_xt: tuple[float, float] | None = None,
    straight_through: bool = False,
    cfg_weight: jax.Array | float | None = None,
    cfg_normalize_steps: int = 0,
    guide_fn: GuideFn | None = None,
    guide_scale: jax.Array | float = 1.0,
    x_init: jax.Array | None = None,
    unroll: int | bool = True,
    noise_std: float = 0.0,
    return_trajectory: bool = False,
) -> jax.Array | tuple[jax.Array, jax.Array]:
    """Integrate the learned flow from x_1 ~ N(0, I) (or `x_init`) to t = 0 in K steps: x_0 [B, D].

    Args:
        model_fn: velocity network `(x [B, D], time scalar, cond, use_cond) -> [B, D]`.
        shape: (B, D). cond: [B, C] or None.
        steps: K. ode: "euler" or "heun".
        clip_x0: box for the implied x0 = x - t v at every evaluation, or None.
        clip_xt: box for x after every step (RL actions), or None; `straight_through`: identity gradient there.
        cfg_weight: classifier-free guidance weight on the velocity (needs cond); cfg_normalize_steps as in
            `SamplerConfig` (the guided velocity rescaled to the conditional one's norm in the first k steps).
        guide_fn, guide_scale: gradient guidance g(x, cond) -> [B], shifting v by -scale t grad g (eq. 11's
            "step shifted along grad Q" for the flow: the Euler step from t to t' moves x by (t - t') t scale grad g).
        noise_std: sigma > 0 makes every step but the last a Gaussian kernel, x_{k+1} ~ N(x_k + dt v, sigma^2 I)
            (a stochastic flow policy with an exact chain likelihood, `flow_chain_log_prob`; DM-PPO's flow actor).
        return_trajectory: also return {"x": the chain [K + 1, B, D] (x_1 first), "mean": each step's kernel mean
            [K, B, D] (before the noise)}, from which `flow_trajectory_log_prob` scores the chain without calling
            the network again.
    """
    if ode not in FLOW_ODES:
        raise ValueError(f"flow ode must be one of {FLOW_ODES}, got {ode!r}")
    if cfg_weight is not None and cond is None:
        raise ValueError("cfg_weight needs a condition: pass cond [B, C]")
    if not 0.0 <= noise_std < 10.0:
        raise ValueError(f"flow noise_std must be in [0, 10), got {noise_std!r}")
    times = flow_times(steps)
    k_init, k_steps = jax.random.split(key) if noise_std > 0 else (key, key)
    x = jax.random.normal(k_init, shape, jnp.float32) if x_init is None else x_init
    vel = lambda x, t, i: _velocity(model_fn, x, t, cond, cfg_weight, guide_fn, guide_scale, clip_x0,
                                    cfg_normalize_steps, i)

    def body(x, inputs):
        t, t_next, i, k = inputs
        v = vel(x, t, i)
        x_next = x + (t_next - t) * v
        if ode == "heun":
            v_next = vel(x_next, t_next, i + 1)
            x_next = x + (t_next - t) * 0.5 * (v + v_next)
        mean = x_next
        if noise_std > 0:
            x_next = x_next + jnp.where(i < steps - 1, noise_std, 0.0) * jax.random.normal(k, x.shape, x.dtype)
        if clip_xt is not None:
            x_next = clip_box(x_next, clip_xt, straight_through)
        return x_next, (x_next, mean)

    inputs = (jnp.asarray(times[:-1]), jnp.asarray(times[1:]), jnp.arange(steps), jax.random.split(k_steps, steps))
    x_final, (xs, means) = jax.lax.scan(body, x, inputs, unroll=unroll)
    if return_trajectory:
        return x_final, {"x": jnp.concatenate([x[None], xs]), "mean": means}
    return x_final


def _kernel_log_prob(target: jax.Array, mean: jax.Array, noise_std: float, last_steps: int | None) -> jax.Array:
    """Sum of log N(target_k; mean_k, noise_std^2 I) over the stochastic steps k < K - 1 (with `last_steps` = L,
    only k >= K - L). target, mean [K, B, D] -> [B] (nats)."""
    if not noise_std > 0:
        raise ValueError("a flow chain likelihood needs a stochastic chain (noise_std > 0)")
    steps = target.shape[0]
    logp = jnp.sum(-0.5 * ((target - mean) / noise_std) ** 2 - np.log(noise_std) - 0.5 * np.log(2 * np.pi), -1)
    k = np.arange(steps)
    counted = k < steps - 1
    if last_steps is not None:
        counted = counted & (k >= steps - last_steps)
    return jnp.sum(jnp.where(jnp.asarray(counted)[:, None], logp, 0.0), axis=0)


def flow_trajectory_log_prob(trajectory: dict[str, jax.Array], noise_std: float,
                             last_steps: int | None = None) -> jax.Array:
    """`flow_chain_log_prob` of a chain just drawn by `flow_sample(..., noise_std, return_trajectory=True)`, from
    the kernel means the sampler recorded (no network evaluation; equal to `flow_chain_log_prob` under the
    sampling parameters, but not differentiable in them). {"x": [K + 1, B, D], "mean": [K, B, D]} -> [B]."""
    return _kernel_log_prob(trajectory["x"][1:], trajectory["mean"], noise_std, last_steps)


def flow_chain_log_prob(
    model_fn: Any,
    trajectory: jax.Array,
    cond: jax.Array | None,
    noise_std: float,
    clip_x0: tuple[float, float] | None = None,
    last_steps: int | None = None,
) -> jax.Array:
    """Exact log-likelihood of a stochastic Euler flow chain (`flow_sample(..., noise_std=sigma)`, no ODE guidance,
    no clip_xt): sum over the K - 1 Gaussian kernels of log N(x_{k+1}; x_k + dt v_theta(x_k, t_k), sigma^2 I)
    (the last step is deterministic). All K network evaluations run as one batched call, so the result is
    differentiable in the parameters. `last_steps` = L: only the last L - 1 stochastic kernels count (DPPO).

    trajectory: [K + 1, B, D] (x_1 .. x_0) -> [B] (nats)."""
    steps, batch, dim = trajectory.shape[0] - 1, trajectory.shape[1], trajectory.shape[2]
    times = flow_times(steps)
    t = jnp.repeat(jnp.asarray(times[:-1]), batch)  # [K * B], sampling order
    dt = jnp.repeat(jnp.asarray(times[1:] - times[:-1]), batch)[:, None]
    x = trajectory[:-1].reshape(steps * batch, dim)
    flat_cond = None if cond is None else jnp.tile(cond, (steps, 1))
    mean = x + dt * _velocity(model_fn, x, t, flat_cond, clip_x0=clip_x0)
    return _kernel_log_prob(trajectory[1:], mean.reshape(steps, batch, dim), noise_std, last_steps)
