"""Actors and critics shared by every agent: one `ActorConfig`, one `actor_forward`, one double critic.

Actions live in the actor's space: continuous actions in [-1, 1]^A (the training loop maps them affinely to
the environment's Box), discrete actions as integers in [0, A). Actor kinds:

- "gaussian": tanh-squashed diagonal Gaussian (SAC), reparameterised sample and exact log-density (distrax);
- "deterministic": tanh(MLP(s)) (TD3, DDPG);
- "categorical": softmax policy over A actions (discrete SAC);
- "diffusion": the shared `Denoiser` conditioned on the state, run by the shared generator
  (`jaxdiff_rl.diffusion.generate`, fresh noise per call): a T-step DDPM chain (default), a K-step flow ODE
  (`generator="flow"`) or a 1-2 step consistency model (`generator="consistency"`). Continuous: the chain's x_0,
  clipped to [-1, 1] at every step (gradients pass the clip straight through by default,
  `ActorConfig.clip_gradient`). Discrete (D2SAC): x_0 are action logits, probabilities
  softmax(logit_scale x_0). Gradients flow through every step of the chain.
"""

from __future__ import annotations

import dataclasses
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxdiff_rl.diffusion import GENERATORS, GeneratorConfig, SamplerConfig, generate
from jaxdiff_rl.diffusion.schedules import check_schedule
from jaxdiff_rl.diffusion.flow import FLOW_ODES
from jaxdiff_rl.diffusion.samplers import CLIP_GRADIENTS
from jaxdiff_rl.nets import MATMUL_DTYPES, MLP, Denoiser

__all__ = ["ActorConfig", "ActorOutput", "ACTOR_KINDS", "actor_module", "actor_init", "actor_forward",
           "DoubleCritic", "critic_init"]

ACTOR_KINDS = ("gaussian", "deterministic", "categorical", "diffusion")
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0


@dataclasses.dataclass(frozen=True)
class ActorConfig:
    """Static actor settings (they change shapes or the compiled program).

    Attributes:
        kind: one of ACTOR_KINDS.
        hidden_dims: widths of the MLP trunk (denoiser trunk for "diffusion").
        activation: name from `jaxdiff_rl.nets.ACTIVATIONS`.
        diffusion_steps: network evaluations of the chain (diffusion only): T for "ddpm", K ODE steps for
            "flow" (2K evaluations with Heun), sampling steps for "consistency" (1 or 2).
        generator: "ddpm" (the papers' chain), "flow" (flow-matching ODE) or "consistency" (diffusion only).
        flow_ode: "euler" or "heun" (generator="flow").
        logit_scale: a discrete diffusion actor's logits are logit_scale x the chain's x_0 (an inverse softmax
            temperature). The T-step DDPM chain amplifies its x0 estimates by 1/sqrt(alpha_bar) and reaches sharp
            policies with small weights; a 1-2 step generator does not (experiments/few_step/README.md, aigc).
        schedule: "vp" | "linear" | "cosine" (generator="ddpm").
        time_dim: sinusoidal time-embedding width (diffusion only).
        output_tanh: tanh on the denoiser's output (D2SAC's reference architecture; "ddpm" only: a flow
            velocity and a consistency model's raw output are not bounded quantities, the action clip bounds
            the chain's output instead).
        clip_gradient: how the gradient of a continuous diffusion actor passes the [-1, 1] clip after every
            step: "straight_through" (default; identity backward) or "zero" (the clip's derivative, GDMOPT's
            `clamp`). With "zero" a DM-DDPG actor on FD-ISAC saturates at one corner of the box for every state
            (98% of entries at |a| > 0.97, action std across states 0.02) and stops learning; see
            `SamplerConfig.clip_gradient` and experiments/d2rl/README.md.
        matmul_dtype: "float32" or "bfloat16" (mixed precision on accelerators: bf16 matmuls accumulated in f32,
            f32 parameters; `jaxdiff_rl.nets.dense_layer`), for the actor and the off-policy agents' critics.
    """

    kind: str = "gaussian"
    hidden_dims: tuple[int, ...] = (256, 256)
    activation: str = "mish"
    diffusion_steps: int = 5
    schedule: str = "vp"
    time_dim: int = 16
    output_tanh: bool = True
    clip_gradient: str = "straight_through"
    generator: str = "ddpm"
    flow_ode: str = "euler"
    logit_scale: float = 1.0
    matmul_dtype: str = "float32"

    def __post_init__(self) -> None:
        if self.kind not in ACTOR_KINDS:
            raise ValueError(f"ActorConfig.kind must be one of {ACTOR_KINDS}, got {self.kind!r}")
        if not self.hidden_dims or any((not isinstance(w, int)) or w < 1 for w in self.hidden_dims):
            raise ValueError(f"ActorConfig.hidden_dims must be positive integers, got {self.hidden_dims!r}")
        if isinstance(self.diffusion_steps, bool) or not isinstance(self.diffusion_steps, int) or self.diffusion_steps < 1:
            raise ValueError(f"ActorConfig.diffusion_steps (T) must be an integer >= 1, got {self.diffusion_steps!r}")
        check_schedule(self.schedule)
        if self.matmul_dtype not in MATMUL_DTYPES:
            raise ValueError(f"ActorConfig.matmul_dtype must be one of {MATMUL_DTYPES}, got {self.matmul_dtype!r}")
        if self.generator not in GENERATORS:
            raise ValueError(f"ActorConfig.generator must be one of {GENERATORS}, got {self.generator!r}")
        if not isinstance(self.logit_scale, (int, float)) or not 0.0 < self.logit_scale <= 100.0:
            raise ValueError(f"ActorConfig.logit_scale must be in (0, 100], got {self.logit_scale!r}")
        if self.flow_ode not in FLOW_ODES:
            raise ValueError(f"ActorConfig.flow_ode must be one of {FLOW_ODES}, got {self.flow_ode!r}")
        if self.clip_gradient not in CLIP_GRADIENTS:
            raise ValueError(f"ActorConfig.clip_gradient must be one of {CLIP_GRADIENTS}, got {self.clip_gradient!r}")

    @property
    def generator_config(self) -> GeneratorConfig:
        """The diffusion actor's generator (`jaxdiff_rl.diffusion.GeneratorConfig`)."""
        return GeneratorConfig(kind=self.generator, steps=self.diffusion_steps, schedule=self.schedule,
                               ode=self.flow_ode)


class ActorOutput(NamedTuple):
    """action: [B, A] float in [-1, 1] or [B] int32; log_prob: [B] (gaussian) or None; probs: [B, A]
    (discrete kinds) or None; mean_action: [B, A] / [B] the greedy (evaluation) action."""

    action: jax.Array
    log_prob: jax.Array | None
    probs: jax.Array | None
    mean_action: jax.Array


def actor_module(config: ActorConfig, action_dim: int, obs_dim: int) -> nn.Module:
    if config.kind == "diffusion":
        return Denoiser(
            out_dim=action_dim,
            cond_dim=obs_dim,
            hidden_dims=config.hidden_dims,
            time_dim=config.time_dim,
            activation=config.activation,
            output_activation="tanh" if config.output_tanh and config.generator == "ddpm" else None,
            matmul_dtype=config.matmul_dtype,
        )
    out = 2 * action_dim if config.kind == "gaussian" else action_dim
    return MLP(out_dim=out, hidden_dims=config.hidden_dims, activation=config.activation,
               matmul_dtype=config.matmul_dtype)


def actor_init(key: jax.Array, config: ActorConfig, obs_dim: int, action_dim: int) -> Any:
    """Parameters of the actor for observations [B, obs_dim] and A = `action_dim`."""
    module = actor_module(config, action_dim, obs_dim)
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    if config.kind == "diffusion":
        return module.init(key, jnp.zeros((1, action_dim), jnp.float32), jnp.zeros((1,), jnp.int32), obs)
    return module.init(key, obs)


def actor_forward(
    config: ActorConfig, params: Any, key: jax.Array, obs: jax.Array, action_dim: int, discrete: bool,
    guide_fn: Any = None, guide_scale: Any = 0.0,
) -> ActorOutput:
    """Run the actor on observations [B, obs_dim]: a sampled action (with log-prob / probabilities).

    guide_fn(x [B, A], obs [B, obs_dim]) -> [B], guide_scale w: gradient guidance of a diffusion actor's chain
    (Q-gradient guided denoising, seed 000 eq. 11, with guide_fn = Q(s, .)); ignored by the other kinds."""
    module = actor_module(config, action_dim, obs.shape[-1])
    batch = obs.shape[0]
    if config.kind == "diffusion":
        sampler = SamplerConfig(method="ddpm", clip_xt=None if discrete else (-1.0, 1.0),
                                clip_gradient=config.clip_gradient)
        model_fn = lambda x, t, cond, use_cond: module.apply(params, x, t, cond, use_cond)
        x0 = generate(key, config.generator_config, model_fn, (batch, action_dim), obs, sampler,
                      guide_fn=guide_fn, guide_scale=guide_scale)
        if not discrete:
            return ActorOutput(x0, None, None, x0)
        logits = config.logit_scale * x0
    else:
        out = module.apply(params, obs)
        if config.kind == "deterministic":
            action = jnp.tanh(out)
            return ActorOutput(action, None, None, action)
        if config.kind == "gaussian":
            mean, log_std = jnp.split(out, 2, axis=-1)
            log_std = jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
            dist = distrax.Transformed(
                distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)), distrax.Block(distrax.Tanh(), 1)
            )
            action, log_prob = dist.sample_and_log_prob(seed=key)
            # keep the squashed sample strictly inside the box (log-density of the clipped point is unchanged)
            return ActorOutput(jnp.clip(action, -1.0 + 1e-6, 1.0 - 1e-6), log_prob, None, jnp.tanh(mean))
        logits = out
    probs = jax.nn.softmax(logits, axis=-1)
    action = jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)
    return ActorOutput(action, None, probs, jnp.argmax(logits, axis=-1).astype(jnp.int32))


class DoubleCritic(nn.Module):
    """Two independent Q networks (an ensemble axis of size 2, `nn.vmap`).

    Continuous: Q(s, a) for obs [B, S], action [B, A] -> [2, B]. Discrete: Q(s, .) for obs [B, S] -> [2, B, A].
    """

    out_dim: int = 1
    hidden_dims: tuple[int, ...] = (256, 256)
    activation: str = "mish"
    num_critics: int = 2
    matmul_dtype: str = "float32"

    @nn.compact
    def __call__(self, obs: jax.Array, action: jax.Array | None = None) -> jax.Array:
        h = obs if action is None else jnp.concatenate([obs, action], axis=-1)
        ensemble = nn.vmap(
            MLP,
            variable_axes={"params": 0},
            split_rngs={"params": True},
            in_axes=None,
            out_axes=0,
            axis_size=self.num_critics,
        )
        q = ensemble(out_dim=self.out_dim, hidden_dims=self.hidden_dims, activation=self.activation,
                     matmul_dtype=self.matmul_dtype)(h)
        return q[..., 0] if action is not None else q


def critic_init(key: jax.Array, critic: DoubleCritic, obs_dim: int, action_dim: int, discrete: bool) -> Any:
    obs = jnp.zeros((1, obs_dim), jnp.float32)
    return critic.init(key, obs) if discrete else critic.init(key, obs, jnp.zeros((1, action_dim), jnp.float32))
