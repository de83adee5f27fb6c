"""Reward exploration (seed 003 section IV-C4, "Mode I" on rewards): the five reward designs and the RENPNN.

Every design is  R = base + c(s, a)  with base = C (raw objective) or C - R' (expert-designed, R' the upper bound
`env.optimal_value`), and c a bounded learned correction, absent, an MLP, or the RENPNN: a GDM whose reverse chain
runs P steps from R^P ~ N(0, 1) conditioned on [s, a] (Mode I: reverse process only, no dataset), giving
c = scale * tanh(x_0) [B]. The reward is generated when the transition is collected and stored in the replay
buffer with it (Algorithm 2).

Objective (our reading of eq. 21). Seed 003 trains every Mode-I network by arg min -E[Q]. For the action that is
DDPG's actor loss. For a reward it is ill-posed as written: the critic is fitted to the generated reward, so -E[Q]
is minimised by inflating every reward, which is a constant shift that changes no policy. We keep "maximise Q" but
make it about actions: the correction is pushed up where the critic rates the stored action above the policy's
own action and down where below,
    L_c = -E_B[ A_hat(s, a) * tanh(x_0(s, a)) ],   A_hat = stop_grad(A / std_B(A)),
    A(s, a) = min_i Q_i(s, a) - min_i Q_i(s, mu(s)),
so that c makes the reward discriminative ("rewards that better evaluate action quality", section I-A), it is
bounded by `Hparams.reward_scale` (the same units as C, bit/s/Hz), and the scale of Q does not set its step size.
"GDM R." ("the designed reward directly explored by the GDM") needs an anchor, since a free-standing generated
reward carries no information about C: we anchor it at the raw objective C, so that GDM R. vs Designed + GDM R.
isolates the value of the expert bound R' (documented deviation; see experiments/d2rl/README.md).
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdiff_rl.diffusion import SamplerConfig, make_schedule, sample
from jaxdiff_rl.explore.config import ExploreConfig
from jaxdiff_rl.nets import MLP, Denoiser

__all__ = ["base_reward", "reward_module", "reward_init", "reward_correction", "reward_loss", "advantage"]


def base_reward(config: ExploreConfig, objective: jax.Array, upper_bound: jax.Array) -> jax.Array:
    """C [B] or C - R' [B] (bit/s/Hz for FD-ISAC) depending on the design."""
    return objective - upper_bound if config.uses_upper_bound else objective


def reward_module(config: ExploreConfig, obs_dim: int, action_dim: int) -> nn.Module:
    """The correction network: RENPNN (Denoiser of a scalar conditioned on [s, a]) or a plain MLP."""
    if config.reward_net == "gdm":
        return Denoiser(out_dim=1, cond_dim=obs_dim + action_dim, hidden_dims=config.reward_hidden_dims,
                        time_dim=config.time_dim, activation=config.activation)
    return MLP(out_dim=1, hidden_dims=config.reward_hidden_dims, activation=config.activation)


def reward_init(key: jax.Array, config: ExploreConfig, obs_dim: int, action_dim: int) -> Any:
    """Parameters of the correction network, or None when the design has none."""
    if config.reward_net is None:
        return None
    module = reward_module(config, obs_dim, action_dim)
    cond = jnp.zeros((1, obs_dim + action_dim), jnp.float32)
    if config.reward_net == "gdm":
        return module.init(key, jnp.zeros((1, 1), jnp.float32), jnp.zeros((1,), jnp.int32), cond)
    return module.init(key, cond)


def _raw_correction(config: ExploreConfig, params: Any, key: jax.Array, obs: jax.Array, action: jax.Array) -> jax.Array:
    """tanh(x_0) [B] in (-1, 1): the network's output before the scale."""
    cond = jnp.concatenate([obs, action], axis=-1)
    module = reward_module(config, obs.shape[-1], action.shape[-1])
    if config.reward_net == "gdm":
        schedule = make_schedule(config.schedule, config.diffusion_steps)
        model_fn = lambda x, t, c, use_cond: module.apply(params, x, t, c, use_cond)
        x0 = sample(key, model_fn, schedule, (obs.shape[0], 1), cond=cond, config=SamplerConfig(method="ddpm"))
    else:
        x0 = module.apply(params, cond)
    return jnp.tanh(x0[:, 0])


def reward_correction(
    config: ExploreConfig, params: Any, key: jax.Array, obs: jax.Array, action: jax.Array, scale: jax.Array
) -> jax.Array:
    """c(s, a) [B] for obs [B, S], action [B, A] in [-1, 1]; zeros when the design has no correction network."""
    if config.reward_net is None:
        return jnp.zeros(obs.shape[:1], jnp.float32)
    return scale * _raw_correction(config, params, key, obs, action)


def advantage(critic_net: Any, critic: Any, obs: jax.Array, action: jax.Array, policy_action: jax.Array) -> jax.Array:
    """A(s, a) = min_i Q_i(s, a) - min_i Q_i(s, mu(s)) [B] (the critic's ranking of the stored action)."""
    q = jnp.min(critic_net.apply(critic, obs, action), axis=0)
    q_pi = jnp.min(critic_net.apply(critic, obs, policy_action), axis=0)
    return q - q_pi


def reward_loss(
    config: ExploreConfig, params: Any, key: jax.Array, obs: jax.Array, action: jax.Array, adv: jax.Array
) -> jax.Array:
    """L_c = -E[A / std(A) * tanh(x_0(s, a))] (scalar); `adv` [B] is treated as a constant."""
    adv = jax.lax.stop_gradient(adv / (jnp.std(adv) + 1e-6))
    return -jnp.mean(adv * _raw_correction(config, params, key, obs, action))
