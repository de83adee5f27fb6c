"""PPO (clipped surrogate, GAE(lambda)), A2C as its one-epoch, no-clip special case, and DM-PPO (PPO with the
shared diffusion actor and the chain's Gaussian-kernel likelihood, `actor="diffusion"`): the configs, the
actor-critic networks and the losses; the one-jit loop is `jaxdiff_rl.train.on_policy`.

Defaults are PureJaxRL's CartPole configuration (4 envs x 128 steps, 5e5 env steps, 4 epochs x 4 minibatches,
lr 2.5e-4 linearly annealed to 0, gamma 0.99, lambda 0.95, clip 0.2, entropy 0.01, value 0.5, grad norm 0.5,
separate 64 x 64 tanh actor and critic, orthogonal init).

Actors (`PPOConfig.actor`): "categorical" for `Discrete` spaces (softmax over logits); "gaussian" for `Box`
spaces: a diagonal Gaussian with a state-independent learned log-std in the actor's [-1, 1] space, whose samples
are *clipped* to [-1, 1] before they go to the environment (the stored action and its log-probability are the
unclipped sample's, as in PureJaxRL and CleanRL; clipping rather than tanh keeps the density exact without a
change-of-variables term and keeps the greedy action, the mean, inside the box where it matters).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

__all__ = ["PPOConfig", "PPOHparams", "ActorCritic", "ValueMLP", "gae", "ppo_loss", "LossTerms", "default_config",
           "default_hparams", "validate_ppo_hparams", "ON_POLICY_ALGORITHMS"]

ON_POLICY_ALGORITHMS = ("ppo", "a2c", "dm_ppo", "ippo", "mappo")
#: multi-agent PPO (`train/multi_agent_on_policy.py`): IPPO (each agent's critic on its own observation) and MAPPO
#: (a centralised critic on the global state)
MULTI_AGENT_ON_POLICY = ("ippo", "mappo")
ACTORS = ("gaussian", "categorical", "diffusion")
#: AgentConfig fields that only an off-policy run has: refused by PPOConfig with a clear message
OFF_POLICY_ONLY = ("buffer_size", "n_step", "batch_size", "updates_per_iter", "steps_per_iter", "learning_starts",
                   "action_candidates", "num_iterations")
#: PPOConfig fields that an off-policy AgentConfig does not have
ON_POLICY_ONLY = ("num_steps", "total_timesteps", "update_epochs", "num_minibatches", "anneal_lr", "clip_value_loss",
                  "normalize_advantages", "min_std", "finetune_steps")


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    """Static settings of an on-policy run (changing one recompiles).

    Each iteration collects `num_steps` vectorised steps from `num_envs` environments, then runs `update_epochs`
    passes over the batch of num_envs x num_steps transitions in `num_minibatches` shuffled minibatches;
    `num_iterations = total_timesteps // (num_envs * num_steps)`.

    Attributes:
        algo: "ppo" or "a2c" (A2C: no clipping, i.e. PPO with clip_eps = inf, one epoch, one minibatch); "dm_ppo";
            "ippo" / "mappo": PPO on a multi-agent environment, every agent a lane of one shared actor (with a
            one-hot agent id), `num_envs` environments x K agents lanes; IPPO's critic reads the agent's
            observation, MAPPO's the global state (`get_state`) and the agent id (`train/multi_agent_on_policy.py`).
        actor: "gaussian" (Box actions, see the module docstring) or "categorical" (Discrete).
        hidden_dims, activation: widths and activation of both the actor and the critic MLP.
        clip_value_loss: PPO's clipped value loss (max of the clipped and unclipped squared errors).
        anneal_lr: learning rate annealed linearly to 0 over the run (an optax schedule).
        normalize_advantages: advantages standardised per minibatch.
        bootstrap_truncated: a time-limit truncation bootstraps from V(final observation) (one batched critic
            pass over the rollout's pre-reset observations, about 4% of an iteration at PureJaxRL's CartPole
            settings). False: PureJaxRL's convention, truncation treated as termination (V(s') = the next
            step's value, the rollout's last step bootstrapping from V of the observation after the rollout).
        DM-PPO (actor="diffusion", seed 000 eqs. 18-19): the shared `Denoiser` + DDPM sampler draws the chain
        x_T .. x_0 conditioned on the state (x_0 = the action, clipped to [-1, 1] for the environment; predicted x0
        clipped to [-1, 1] at every step), the rollout stores the chain, and log pi(a|s) = sum_t log N(x_{t-1};
        mu_theta(x_t, t, s), sigma_t^2 I) is re-evaluated under the current parameters (`ddpm_log_prob`).
        diffusion_steps: T (default 5: as the off-policy diffusion actors; each step costs a denoiser pass in the
            rollout and in every minibatch). schedule: "vp" | "linear" | "cosine".
        min_std: floor on each stochastic kernel's std (default 0.1 in the [-1, 1] action space; DPPO's knob).
            Kernels with a tiny std make the density ratio explode after small parameter changes and stop
            exploring. It does not bind for the default VP schedule at T = 5 (kernel stds 0.40-0.90) and binds
            for long chains (VP, T = 20: 0.11 at the last steps) and the linear / cosine schedules.
        finetune_steps: K, only the last K kernels enter the ratio and the gradient (DPPO); None = all T (exact).
        The chain has no closed-form entropy: `entropy` reports the kernels' Gaussian entropy, a constant of
        (T, min_std), so `ent_coef` has no effect on a diffusion actor.
        generator: "ddpm" (above) or "flow": a stochastic flow-matching policy, diffusion_steps = K Euler steps
            of the velocity network with Gaussian noise of std `min_std` (> 0) after every step but the last
            (ReinFlow-style), so the chain again has an exact likelihood (`diffusion.flow_chain_log_prob`); the
            greedy action runs the noiseless ODE. Consistency models are not offered here: their one or two
            deterministic maps have no kernel likelihood for the ratio.
    """

    algo: str = "ppo"
    actor: str = "categorical"
    hidden_dims: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    num_envs: int = 4
    num_steps: int = 128
    total_timesteps: int = 500_000
    update_epochs: int = 4
    num_minibatches: int = 4
    clip_value_loss: bool = True
    anneal_lr: bool = True
    normalize_advantages: bool = True
    bootstrap_truncated: bool = True
    diffusion_steps: int = 5
    schedule: str = "vp"
    time_dim: int = 16
    min_std: float = 0.1
    finetune_steps: int | None = None
    generator: str = "ddpm"

    def __post_init__(self) -> None:
        if self.algo not in ON_POLICY_ALGORITHMS:
            raise ValueError(f"PPOConfig.algo must be one of {ON_POLICY_ALGORITHMS}, got {self.algo!r}")
        if self.actor not in ACTORS:
            raise ValueError(f"PPOConfig.actor must be one of {ACTORS}, got {self.actor!r}")
        for name in ("num_envs", "num_steps", "total_timesteps", "update_epochs", "num_minibatches"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"PPOConfig.{name} must be an integer >= 1, got {value!r}")
        if not self.hidden_dims or any(not isinstance(w, int) or w < 1 for w in self.hidden_dims):
            raise ValueError(f"PPOConfig.hidden_dims must be positive integers, got {self.hidden_dims!r}")
        if isinstance(self.diffusion_steps, bool) or not isinstance(self.diffusion_steps, int) or self.diffusion_steps < 2:
            raise ValueError(f"PPOConfig.diffusion_steps must be an integer >= 2 (the last step is deterministic), "
                             f"got {self.diffusion_steps!r}")
        if not isinstance(self.min_std, (int, float)) or not 0.0 <= self.min_std < 10.0:
            raise ValueError(f"PPOConfig.min_std must be in [0, 10), got {self.min_std!r}")
        if self.finetune_steps is not None and (not isinstance(self.finetune_steps, int) or
                                                not 2 <= self.finetune_steps <= self.diffusion_steps):
            raise ValueError(f"PPOConfig.finetune_steps must be None or an integer in [2, diffusion_steps="
                             f"{self.diffusion_steps}], got {self.finetune_steps!r}")
        if self.generator not in ("ddpm", "flow"):
            raise ValueError(f"PPOConfig.generator must be 'ddpm' or 'flow' (a consistency map has no chain "
                             f"likelihood for the PPO ratio), got {self.generator!r}")
        if self.generator == "flow" and not self.min_std > 0:
            raise ValueError(f"PPOConfig.min_std must be > 0 with generator='flow' (the kernels' noise), got "
                             f"{self.min_std!r}")
        if self.algo in MULTI_AGENT_ON_POLICY and self.actor == "diffusion":
            raise ValueError(f"PPOConfig: algo={self.algo!r} takes actor='gaussian' or 'categorical', got 'diffusion'")
        if self.algo == "dm_ppo" and self.actor != "diffusion":
            raise ValueError(f"PPOConfig: algo='dm_ppo' needs actor='diffusion', got {self.actor!r}")
        batch = self.num_envs * self.num_steps
        if batch % self.num_minibatches:
            raise ValueError(f"PPOConfig.num_minibatches ({self.num_minibatches}) must divide num_envs x num_steps "
                             f"= {self.num_envs} x {self.num_steps} = {batch}")
        if self.total_timesteps < batch:
            raise ValueError(f"PPOConfig.total_timesteps ({self.total_timesteps}) must be >= num_envs x num_steps "
                             f"({batch}): one iteration")
        if self.algo == "a2c" and (self.update_epochs != 1 or self.num_minibatches != 1):
            raise ValueError("PPOConfig: algo='a2c' is one gradient step per rollout: set update_epochs=1 and "
                             f"num_minibatches=1 (got {self.update_epochs} and {self.num_minibatches})")

    @property
    def num_iterations(self) -> int:
        return self.total_timesteps // (self.num_envs * self.num_steps)

    @property
    def steps_per_iter(self) -> int:  # the runner's progress counts num_envs x steps_per_iter per iteration
        return self.num_steps

    @property
    def minibatch_size(self) -> int:
        return self.num_envs * self.num_steps // self.num_minibatches

    @property
    def total_env_steps(self) -> int:
        return self.num_iterations * self.num_envs * self.num_steps

    def replace(self, **changes: Any) -> "PPOConfig":
        return dataclasses.replace(self, **changes)


@struct.dataclass
class PPOHparams:
    """Traced (sweepable) PPO hyperparameters; scalars, or a leading axis each in a sweep.

    lr: Adam step size (> 0; the start of the annealed schedule). gamma: discount in [0, 1]. gae_lambda: GAE's
    lambda in [0, 1]. clip_eps: surrogate clip range (> 0; ignored by A2C). vf_clip: value clip range (> 0).
    ent_coef, vf_coef: loss weights (>= 0). max_grad_norm: global-norm gradient clip (> 0)."""

    lr: Any = 2.5e-4
    gamma: Any = 0.99
    gae_lambda: Any = 0.95
    clip_eps: Any = 0.2
    vf_clip: Any = 0.2
    ent_coef: Any = 0.01
    vf_coef: Any = 0.5
    max_grad_norm: Any = 0.5


_RANGES = {"lr": (0.0, math.inf, False), "gamma": (0.0, 1.0, True), "gae_lambda": (0.0, 1.0, True),
           "clip_eps": (0.0, math.inf, False), "vf_clip": (0.0, math.inf, False), "ent_coef": (0.0, math.inf, True),
           "vf_coef": (0.0, math.inf, True), "max_grad_norm": (0.0, math.inf, False)}


def validate_ppo_hparams(hparams: PPOHparams) -> PPOHparams:
    """Every concrete field finite and in range (low inclusive only where marked); ValueError names the field."""
    if not isinstance(hparams, PPOHparams):
        raise TypeError(f"hparams must be a PPOHparams (agents.default_hparams('ppo')), got {type(hparams).__name__}")
    for name, (low, high, closed) in _RANGES.items():
        value = getattr(hparams, name)
        if isinstance(value, jax.core.Tracer):
            continue
        v = np.asarray(value, np.float64)
        ok = np.all(np.isfinite(v)) & np.all(v <= high) & (np.all(v >= low) if closed else np.all(v > low))
        if not ok:
            bracket = "[" if closed else "("
            raise ValueError(f"PPOHparams.{name} must be in {bracket}{low}, {high}], got {v.tolist()}")
    return hparams


def default_config(algo: str = "ppo", /, **overrides: Any) -> PPOConfig:
    """PureJaxRL's CartPole settings with `overrides` (validated). Off-policy-only fields raise ValueError."""
    bad = sorted(set(overrides) & set(OFF_POLICY_ONLY))
    if bad:
        raise ValueError(f"{algo} is on-policy: {bad} are off-policy settings (use num_envs, num_steps, "
                         f"total_timesteps, update_epochs, num_minibatches)")
    base: dict[str, Any] = {"algo": algo}
    if algo == "a2c":
        base.update(update_epochs=1, num_minibatches=1, num_steps=5, num_envs=16, anneal_lr=False)
    if algo == "dm_ppo":
        base.update(actor="diffusion")
    return PPOConfig(**{**base, **overrides})


def default_hparams(algo: str = "ppo", /, **overrides: Any) -> PPOHparams:
    base: dict[str, Any] = {}
    if algo == "a2c":
        base.update(lr=7e-4, clip_eps=1e9, vf_clip=1e9, gae_lambda=1.0)
    return validate_ppo_hparams(PPOHparams(**{**base, **overrides}))


class ActorCritic(nn.Module):
    """Separate actor and critic MLPs (orthogonal init, PureJaxRL's gains: sqrt(2) hidden, 0.01 policy head, 1 value
    head). obs [B, obs_dim] -> (distribution over [B] actions or [B, A] actions, value [B]).

    `actor_width` (MAPPO): the actor reads only obs[..., :actor_width] (the agent's local view) and the critic only
    obs[..., actor_width:] (the centralised view); None: both read all of obs."""

    action_dim: int
    discrete: bool
    hidden_dims: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    actor_width: int | None = None

    @nn.compact
    def __call__(self, obs: jax.Array):
        from jaxdiff_rl.nets import activation

        act = activation(self.activation)
        hidden = lambda: nn.initializers.orthogonal(np.sqrt(2.0))
        split = self.actor_width
        h = obs if split is None else obs[..., :split]
        for w in self.hidden_dims:
            h = act(nn.Dense(w, kernel_init=hidden(), bias_init=nn.initializers.zeros)(h))
        head = nn.Dense(self.action_dim, kernel_init=nn.initializers.orthogonal(0.01), bias_init=nn.initializers.zeros)(h)
        if self.discrete:
            pi = distrax.Categorical(logits=head)
        else:
            log_std = self.param("log_std", nn.initializers.zeros, (self.action_dim,))
            pi = distrax.MultivariateNormalDiag(head, jnp.exp(log_std))
        v = obs if split is None else obs[..., split:]
        for w in self.hidden_dims:
            v = act(nn.Dense(w, kernel_init=hidden(), bias_init=nn.initializers.zeros)(v))
        value = nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), bias_init=nn.initializers.zeros)(v)
        return pi, value[..., 0]


def gae(rewards: jax.Array, values: jax.Array, next_values: jax.Array, terminated: jax.Array, done: jax.Array,
        gamma: Any, lam: Any) -> tuple[jax.Array, jax.Array]:
    """Generalised advantage estimation over a rollout, time-major [T, N] arrays.

    values[t] = V(s_t); next_values[t] = V(s'_t) of the step's own next state (the pre-reset final observation,
    so a time-limit truncation bootstraps from it); terminated[t] cuts the bootstrap; done[t] (terminated or
    truncated) cuts the recursion. delta_t = r_t + gamma (1 - term_t) V(s'_t) - V(s_t),
    A_t = delta_t + gamma lambda (1 - done_t) A_{t+1}. Returns (advantages, returns = advantages + values)."""
    deltas = rewards + gamma * (1.0 - terminated) * next_values - values

    def back(carry, x):
        delta, d = x
        adv = delta + gamma * lam * (1.0 - d) * carry
        return adv, adv

    _, adv = jax.lax.scan(back, jnp.zeros_like(values[0]), (deltas, done.astype(values.dtype)), reverse=True,
                          unroll=16)
    return adv, adv + values


class LossTerms(NamedTuple):
    total: jax.Array
    actor_loss: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    approx_kl: jax.Array
    clip_fraction: jax.Array
    ratio_mean: jax.Array


def ppo_loss(log_prob: jax.Array, old_log_prob: jax.Array, advantages: jax.Array, value: jax.Array,
             old_value: jax.Array, returns: jax.Array, entropy: jax.Array, hparams: PPOHparams,
             config: PPOConfig) -> LossTerms:
    """PPO's loss on a minibatch ([B] arrays): clipped surrogate - ent_coef x entropy + vf_coef x value loss.

    ratio = exp(log_prob - old_log_prob); actor loss = -mean(min(ratio A, clip(ratio, 1 +- eps) A)) with A
    standardised over the minibatch (`config.normalize_advantages`); value loss = 0.5 mean(max((v - R)^2,
    (old_v + clip(v - old_v, +- vf_clip) - R)^2)) when `clip_value_loss`, else 0.5 mean((v - R)^2)."""
    if config.normalize_advantages:
        advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
    ratio = jnp.exp(log_prob - old_log_prob)
    clipped = jnp.clip(ratio, 1.0 - hparams.clip_eps, 1.0 + hparams.clip_eps)
    actor_loss = -jnp.mean(jnp.minimum(ratio * advantages, clipped * advantages))
    unclipped_v = jnp.square(value - returns)
    if config.clip_value_loss:
        v_clipped = old_value + jnp.clip(value - old_value, -hparams.vf_clip, hparams.vf_clip)
        value_loss = 0.5 * jnp.mean(jnp.maximum(unclipped_v, jnp.square(v_clipped - returns)))
    else:
        value_loss = 0.5 * jnp.mean(unclipped_v)
    ent = jnp.mean(entropy)
    total = actor_loss + hparams.vf_coef * value_loss - hparams.ent_coef * ent
    approx_kl = jnp.mean((ratio - 1.0) - (log_prob - old_log_prob))  # the k3 estimator, >= 0
    clip_fraction = jnp.mean((jnp.abs(ratio - 1.0) > hparams.clip_eps).astype(jnp.float32))
    return LossTerms(total, actor_loss, value_loss, ent, approx_kl, clip_fraction, jnp.mean(ratio))


class ValueMLP(nn.Module):
    """The critic alone (DM-PPO's actor is the shared Denoiser): obs [B, obs_dim] -> value [B]."""

    hidden_dims: tuple[int, ...] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: jax.Array) -> jax.Array:
        from jaxdiff_rl.nets import activation

        act = activation(self.activation)
        v = obs
        for w in self.hidden_dims:
            v = act(nn.Dense(w, kernel_init=nn.initializers.orthogonal(np.sqrt(2.0)), bias_init=nn.initializers.zeros)(v))
        return nn.Dense(1, kernel_init=nn.initializers.orthogonal(1.0), bias_init=nn.initializers.zeros)(v)[..., 0]
