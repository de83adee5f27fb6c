"""What every offline agent shares (BC, TD3+BC, IQL, Diffusion-QL, FQL): the static `OfflineConfig`, the traced
`OfflineHparams`, the `OfflineState` pytree, parameter initialisation, the action conventions and greedy acting.

Actions in the actor's space: continuous actions are normalised to [-1, 1]^A (the loop maps the dataset's Box
actions there and back); a discrete action space of A actions is handled with the same vector actors: the actor
produces x in [-1, 1]^A, the environment gets argmax x, a dataset action i is cloned as the vector 2 onehot(i) - 1,
and a critic over all actions Q(s, .) [A] scores x by its soft choice sum_i softmax(kappa x)_i Q(s, i) (kappa =
`OfflineConfig.logit_scale`), so every algorithm (and its gradient through a diffusion chain) is the same code
for both kinds of space.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxdiff_rl.agents.base import adam_init, check_ranges
from jaxdiff_rl.agents.networks import ActorConfig, DoubleCritic, actor_forward, actor_init, actor_module, critic_init
from jaxdiff_rl.nets import MLP

__all__ = ["OFFLINE_ALGORITHMS", "OfflineConfig", "OfflineHparams", "OfflineState", "validate_offline_hparams",
           "init_offline", "make_critic", "make_value", "make_onestep", "bc_target", "q_dataset", "q_policy",
           "greedy_index", "actor_vectors", "clip_by_norm", "greedy_action", "td_target", "normalised_q_loss",
           "module_for", "policy_log_prob"]

OFFLINE_ALGORITHMS = ("bc", "td3_bc", "iql", "diffusion_ql", "fql")


@dataclasses.dataclass(frozen=True)
class OfflineConfig:
    """Static settings of an offline run (changing one recompiles).

    Schedule: `num_iterations` iterations; each runs `updates_per_iter` gradient updates on uniform minibatches of
    `batch_size` transitions from the dataset (on device), then a greedy evaluation of `eval_steps` steps in
    `num_envs` fresh environments (the periodic evaluation; its episodes give `return_mean`).

    Attributes:
        algo: one of OFFLINE_ALGORITHMS.
        actor: the policy network (BC: "deterministic" = MLP, "gaussian", or "diffusion" with generator "ddpm"
            / "flow"; TD3+BC: "deterministic"; IQL: "gaussian" (continuous) / "deterministic" (discrete logits);
            Diffusion-QL: "diffusion" (DDPM); FQL: "diffusion" with generator "flow", the behaviour flow model).
        critic_hidden_dims, critic_activation, num_critics: the Q ensemble (and IQL's V network's widths).
        action_candidates: N >= 1; greedy acting draws N actions per state and keeps the one the min-Q ranks
            highest (Diffusion-QL's best-of-N selection; needs a critic, so not BC).
        edp: Diffusion-QL only: the Q term is evaluated at the one-step estimate x0_hat of a noised dataset
            action (EDP's action approximation: the network runs once per update instead of T times).
        policy_delay: actor (and target) updates every k critic updates (TD3+BC: 2).
        ema_every, ema_start: Diffusion-QL's EMA actor (the one targets and evaluation use): updated every
            `ema_every` updates, a plain copy of the actor for the first `ema_start` updates.
        logit_scale: kappa of the discrete soft choice (see the module docstring), > 0.
        onestep_hidden_dims: FQL's one-step policy widths (None: the actor's).
        normalize_obs: standardise observations with the dataset's per-feature mean and std (TD3+BC's state
            normalisation; features constant in the data are only centred), for training and acting alike.
        action_range: what [-1, 1] means for a continuous action: "box" (the env's action Box) or "data" (the
            per-dimension min..max of the dataset's actions: the policy's clip then keeps it inside the data's
            support, and actions concentrated in a small part of the Box get the resolution of the whole range;
            msr-80's optimal allocation p*/P ~ 1/80 per channel in a [-1, 1] Box is the case in point).
    """

    algo: str = "diffusion_ql"
    actor: ActorConfig = ActorConfig(kind="diffusion", hidden_dims=(256, 256, 256), diffusion_steps=5,
                                     output_tanh=False)
    critic_hidden_dims: tuple[int, ...] = (256, 256, 256)
    critic_activation: str = "mish"
    num_critics: int = 2
    batch_size: int = 256
    updates_per_iter: int = 1000
    num_iterations: int = 10
    num_envs: int = 16
    eval_steps: int = 1
    action_candidates: int = 1
    edp: bool = False
    policy_delay: int = 1
    ema_every: int = 5
    ema_start: int = 1000
    logit_scale: float = 5.0
    onestep_hidden_dims: tuple[int, ...] | None = None
    normalize_obs: bool = True
    action_range: str = "data"

    def __post_init__(self) -> None:
        if self.algo not in OFFLINE_ALGORITHMS:
            raise ValueError(f"OfflineConfig.algo: unknown offline algorithm {self.algo!r}; valid: {OFFLINE_ALGORITHMS}")
        if not isinstance(self.actor, ActorConfig):
            raise TypeError(f"OfflineConfig.actor must be an ActorConfig, got {type(self.actor).__name__}")
        for name in ("batch_size", "updates_per_iter", "num_iterations", "num_envs", "eval_steps",
                     "action_candidates", "policy_delay", "ema_every", "num_critics"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"OfflineConfig.{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.ema_start, bool) or not isinstance(self.ema_start, int) or self.ema_start < 0:
            raise ValueError(f"OfflineConfig.ema_start must be an integer >= 0, got {self.ema_start!r}")
        if self.num_critics > 2:
            raise ValueError(f"OfflineConfig.num_critics must be 1 or 2, got {self.num_critics}")
        if not isinstance(self.logit_scale, (int, float)) or not 0.0 < self.logit_scale <= 100.0:
            raise ValueError(f"OfflineConfig.logit_scale must be in (0, 100], got {self.logit_scale!r}")
        kinds = {"bc": ("deterministic", "gaussian", "diffusion"), "td3_bc": ("deterministic",),
                 "iql": ("gaussian", "deterministic"), "diffusion_ql": ("diffusion",), "fql": ("diffusion",)}
        if self.actor.kind not in kinds[self.algo]:
            raise ValueError(f"OfflineConfig.actor.kind={self.actor.kind!r} does not fit {self.algo} (allowed: "
                             f"{kinds[self.algo]})")
        if self.algo == "diffusion_ql" and self.actor.generator != "ddpm":
            raise ValueError(f"diffusion_ql needs actor.generator='ddpm' (got {self.actor.generator!r}); the flow "
                             f"behaviour model with a one-step policy is algo='fql'")
        if self.algo == "fql" and self.actor.generator != "flow":
            raise ValueError(f"fql needs actor.generator='flow' (the behaviour flow model), got "
                             f"{self.actor.generator!r}")
        if self.edp and self.algo != "diffusion_ql":
            raise ValueError(f"OfflineConfig.edp is an option of diffusion_ql, not {self.algo}")
        if self.action_range not in ("box", "data"):
            raise ValueError(f"OfflineConfig.action_range must be 'box' or 'data', got {self.action_range!r}")
        if self.action_candidates > 1 and self.algo == "bc":
            raise ValueError("OfflineConfig.action_candidates > 1 ranks candidates by a critic; bc has none")
        if self.onestep_hidden_dims is not None and (
                not self.onestep_hidden_dims or any(not isinstance(w, int) or w < 1 for w in self.onestep_hidden_dims)):
            raise ValueError(f"OfflineConfig.onestep_hidden_dims must be positive integers, got "
                             f"{self.onestep_hidden_dims!r}")

    @property
    def family(self) -> str:
        return "offline"

    @property
    def steps_per_iter(self) -> int:
        """Environment steps per iteration per environment (the evaluation's): what the runner counts."""
        return self.eval_steps

    @property
    def uses_critic(self) -> bool:
        return self.algo != "bc"

    def replace(self, **changes: Any) -> "OfflineConfig":
        return dataclasses.replace(self, **changes)


@struct.dataclass
class OfflineHparams:
    """Traced (sweepable) hyperparameters of the offline algorithms; scalars here, a leading axis in a sweep.

    lr_actor, lr_critic, lr_value: Adam step sizes (>= 0). weight_decay: coupled L2 (>= 0). gamma: discount in
    [0, 1]. tau: Polyak rate of the target critics (and TD3+BC's target actor) in [0, 1]. max_grad_norm: global
    gradient-norm clip of the actor (0: off). td3_alpha: TD3+BC's alpha (lambda = alpha / mean |Q|), >= 0.
    target_noise, noise_clip: TD3+BC's target smoothing. expectile: IQL's tau in (0, 1). temperature: IQL's
    beta (advantage weights exp(beta A), clipped at 100), >= 0. eta: Diffusion-QL's weight of the normalised Q
    term, >= 0. ema_decay: Diffusion-QL's EMA actor, in [0, 1]. fql_alpha: FQL's distillation weight, >= 0.
    """

    lr_actor: Any = 3e-4
    lr_critic: Any = 3e-4
    lr_value: Any = 3e-4
    weight_decay: Any = 0.0
    gamma: Any = 0.99
    tau: Any = 0.005
    max_grad_norm: Any = 0.0
    td3_alpha: Any = 2.5
    target_noise: Any = 0.2
    noise_clip: Any = 0.5
    expectile: Any = 0.7
    temperature: Any = 3.0
    eta: Any = 1.0
    ema_decay: Any = 0.995
    fql_alpha: Any = 10.0


_RANGES = {
    "lr_actor": (0.0, math.inf), "lr_critic": (0.0, math.inf), "lr_value": (0.0, math.inf),
    "weight_decay": (0.0, math.inf), "gamma": (0.0, 1.0), "tau": (0.0, 1.0), "max_grad_norm": (0.0, math.inf),
    "td3_alpha": (0.0, math.inf), "target_noise": (0.0, math.inf), "noise_clip": (0.0, math.inf),
    "expectile": (1e-6, 1.0 - 1e-6), "temperature": (0.0, math.inf), "eta": (0.0, math.inf),
    "ema_decay": (0.0, 1.0), "fql_alpha": (0.0, math.inf),
}


def validate_offline_hparams(hparams: OfflineHparams) -> OfflineHparams:
    """Check every concrete field (any shape) is finite and in its range; ValueError names field and range."""
    if not isinstance(hparams, OfflineHparams):
        raise TypeError(f"hparams must be a jaxdiff_rl.agents.OfflineHparams, got {type(hparams).__name__}")
    return check_ranges(hparams, _RANGES)


@struct.dataclass
class OfflineState:
    """Learnable state of an offline agent (a pytree).

    actor: the policy (BC, TD3+BC, IQL), the diffusion policy (Diffusion-QL) or the behaviour flow model (FQL);
    target_actor: TD3+BC's Polyak copy / Diffusion-QL's EMA actor (else = actor); critic, target_critic: the Q
    ensemble and its Polyak copy (None for BC); value: IQL's V network (else None); onestep: FQL's one-step
    policy (else None); *_opt: Adam states; updates: int32 count."""

    actor: Any
    target_actor: Any
    critic: Any
    target_critic: Any
    value: Any
    onestep: Any
    actor_opt: Any
    critic_opt: Any
    value_opt: Any
    onestep_opt: Any
    updates: jax.Array


# --- networks ---------------------------------------------------------------------------------------------------
def make_critic(config: OfflineConfig, action_dim: int, discrete: bool) -> DoubleCritic:
    return DoubleCritic(out_dim=action_dim if discrete else 1, hidden_dims=tuple(config.critic_hidden_dims),
                        activation=config.critic_activation, num_critics=config.num_critics)


def make_value(config: OfflineConfig) -> MLP:
    return MLP(out_dim=1, hidden_dims=tuple(config.critic_hidden_dims), activation=config.critic_activation)


def make_onestep(config: OfflineConfig, action_dim: int) -> MLP:
    """FQL's one-step policy mu(s, z) -> [-1, 1]^A (tanh output) on [s, z]."""
    hidden = config.onestep_hidden_dims or config.actor.hidden_dims
    return MLP(out_dim=action_dim, hidden_dims=tuple(hidden), activation=config.actor.activation,
               output_activation="tanh")


def init_offline(key: jax.Array, config: OfflineConfig, obs_dim: int, action_dim: int, discrete: bool) -> OfflineState:
    """Fresh parameters and optimizer states for observations [obs_dim] and A = action_dim (A = number of actions
    for a discrete space)."""
    k_actor, k_critic, k_value, k_one = jax.random.split(key, 4)
    actor = actor_init(k_actor, config.actor, obs_dim, action_dim)
    critic = value = onestep = None
    if config.uses_critic:
        critic = critic_init(k_critic, make_critic(config, action_dim, discrete), obs_dim, action_dim, discrete)
    if config.algo == "iql":
        value = make_value(config).init(k_value, jnp.zeros((1, obs_dim), jnp.float32))
    if config.algo == "fql":
        onestep = make_onestep(config, action_dim).init(k_one, jnp.zeros((1, obs_dim + action_dim), jnp.float32))
    opt = lambda p: None if p is None else adam_init(p)
    return OfflineState(actor=actor, target_actor=actor, critic=critic, target_critic=critic, value=value,
                        onestep=onestep, actor_opt=adam_init(actor), critic_opt=opt(critic), value_opt=opt(value),
                        onestep_opt=opt(onestep), updates=jnp.int32(0))


# --- action conventions -------------------------------------------------------------------------------------------
def bc_target(action: jax.Array, action_dim: int, discrete: bool) -> jax.Array:
    """The vector a behaviour-cloning loss reproduces: the [-1, 1] action [B, A], or 2 onehot(i) - 1 for a
    discrete action i [B]."""
    if discrete:
        return 2.0 * jax.nn.one_hot(action, action_dim, dtype=jnp.float32) - 1.0
    return action


def q_dataset(critic: DoubleCritic, params: Any, obs: jax.Array, action: jax.Array, discrete: bool) -> jax.Array:
    """Q_i(s, a) [C, B] of dataset actions (continuous [B, A] or discrete [B] int)."""
    if discrete:
        q = critic.apply(params, obs)  # [C, B, A]
        return jnp.take_along_axis(q, action[None, :, None].astype(jnp.int32), axis=-1)[..., 0]
    return critic.apply(params, obs, action)


def q_policy(critic: DoubleCritic, params: Any, obs: jax.Array, x: jax.Array, discrete: bool,
             logit_scale: float) -> jax.Array:
    """Q_i of actor vectors x [B, A] -> [C, B]: Q(s, x) (continuous) or sum_j softmax(kappa x)_j Q_i(s, j)."""
    if discrete:
        probs = jax.nn.softmax(logit_scale * x, axis=-1)
        return jnp.sum(critic.apply(params, obs) * probs[None], axis=-1)
    return critic.apply(params, obs, x)


def greedy_index(x: jax.Array, discrete: bool) -> jax.Array:
    """The dataset-style action of an actor vector: x itself (continuous) or argmax x (discrete, int32 [B])."""
    return jnp.argmax(x, axis=-1).astype(jnp.int32) if discrete else x


def actor_vectors(key: jax.Array, config: OfflineConfig, state: OfflineState, actor_params: Any, obs: jax.Array,
                  action_dim: int) -> jax.Array:
    """One action vector per observation [B, obs_dim] -> [B, A] in [-1, 1]: the policy's noiseless output (MLP /
    Gaussian mean), one reverse chain of a diffusion policy, or FQL's one-step policy at fresh noise z."""
    if config.algo == "fql":
        z = jax.random.normal(key, (obs.shape[0], action_dim), jnp.float32)
        return make_onestep(config, action_dim).apply(state.onestep if actor_params is None else actor_params,
                                                      jnp.concatenate([obs, z], axis=-1))
    out = actor_forward(config.actor, actor_params, key, obs, action_dim, False)
    return out.mean_action if config.actor.kind == "gaussian" else out.action


def clip_by_norm(grads: Any, max_norm: jax.Array) -> tuple[Any, jax.Array]:
    """Scale `grads` to global norm <= max_norm (traced; 0 = no clipping). Returns (grads, the norm before)."""
    norm = optax.tree.norm(grads)
    scale = jnp.where(max_norm > 0, jnp.minimum(1.0, max_norm / (norm + 1e-6)), 1.0)
    return jax.tree_util.tree_map(lambda g: g * scale, grads), norm


def greedy_action(key: jax.Array, config: OfflineConfig, state: OfflineState, obs: jax.Array, action_dim: int,
                  discrete: bool) -> jax.Array:
    """The evaluation action for obs [B, obs_dim]: [B, A] in [-1, 1] or [B] int32. With `action_candidates` N > 1,
    N draws per state ranked by the critics' min-Q (Diffusion-QL's selection). Diffusion-QL acts with its EMA
    actor."""
    params = state.target_actor if config.algo == "diffusion_ql" else state.actor
    params = None if config.algo == "fql" else params
    n = config.action_candidates
    if n == 1:
        return greedy_index(actor_vectors(key, config, state, params, obs, action_dim), discrete)
    batch = obs.shape[0]
    repeated = jnp.repeat(obs, n, axis=0)  # row b * N + k = candidate k of state b
    x = actor_vectors(key, config, state, params, repeated, action_dim)
    a = greedy_index(x, discrete)
    q = q_dataset(make_critic(config, action_dim, discrete), state.critic, repeated, a, discrete).min(0)
    best = jnp.argmax(q.reshape(batch, n), axis=1)
    a = a.reshape(batch, n, *a.shape[1:])
    return jnp.take_along_axis(a, best.reshape(batch, 1, *([1] * (a.ndim - 2))), 1)[:, 0]


def module_for(config: OfflineConfig, action_dim: int, obs_dim: int) -> Callable:
    """The actor network's `model_fn(params)(x, t, cond, use_cond)` for the generator losses (diffusion actors)."""
    module = actor_module(config.actor, action_dim, obs_dim)
    return lambda params: (lambda x, t, cond, use_cond: module.apply(params, x, t, cond, use_cond))


def td_target(config: OfflineConfig, state: OfflineState, batch: Any, next_x: jax.Array, action_dim: int,
              discrete: bool) -> jax.Array:
    """y = r + discount min_i Q'_i(s', a') [B] (stop-gradient'ed) for next actor vectors next_x [B, A] (a discrete
    a' is argmax next_x)."""
    critic = make_critic(config, action_dim, discrete)
    q_next = q_dataset(critic, state.target_critic, batch.next_obs, greedy_index(next_x, discrete), discrete).min(0)
    return jax.lax.stop_gradient(batch.reward + batch.discount * q_next)


def normalised_q_loss(key: jax.Array, q: jax.Array) -> jax.Array:
    """Diffusion-QL's Q term for Q_i(s, a_pi) [C, B]: -mean Q_i / stop_grad(mean |Q_j|) with (i, j) = (0, 1) or
    (1, 0) at random (one critic: -mean Q_0 / mean |Q_0|); the normalisation makes eta scale-free across
    reward scales."""
    if q.shape[0] == 1:
        return -jnp.mean(q[0]) / jax.lax.stop_gradient(jnp.mean(jnp.abs(q[0])) + 1e-8)
    first = jax.random.bernoulli(key)
    num = jnp.where(first, q[0], q[1])
    den = jnp.where(first, q[1], q[0])
    return -jnp.mean(num) / jax.lax.stop_gradient(jnp.mean(jnp.abs(den)) + 1e-8)


def policy_log_prob(config: OfflineConfig, params: Any, obs: jax.Array, action: jax.Array, action_dim: int,
                    discrete: bool) -> jax.Array:
    """log pi(a | s) [B] of dataset actions for the explicit-density actors: the tanh-squashed Gaussian
    (continuous a [B, A] in [-1, 1], clipped to |a| <= 1 - 1e-4 so the inverse tanh stays finite) or the
    categorical softmax(kappa tanh(MLP(s))) of a deterministic head (discrete a [B])."""
    import distrax

    from jaxdiff_rl.agents.networks import LOG_STD_MAX, LOG_STD_MIN

    out = actor_module(config.actor, action_dim, obs.shape[-1]).apply(params, obs)
    if discrete:
        if config.actor.kind != "deterministic":
            raise ValueError("a discrete policy's log-density needs actor.kind='deterministic' (logits head)")
        logp = jax.nn.log_softmax(config.logit_scale * jnp.tanh(out), axis=-1)
        return jnp.take_along_axis(logp, action[:, None].astype(jnp.int32), axis=-1)[:, 0]
    if config.actor.kind != "gaussian":
        raise ValueError("a continuous policy's log-density needs actor.kind='gaussian'")
    mean, log_std = jnp.split(out, 2, axis=-1)
    log_std = jnp.clip(log_std, LOG_STD_MIN, LOG_STD_MAX)
    dist = distrax.Transformed(distrax.MultivariateNormalDiag(mean, jnp.exp(log_std)), distrax.Block(distrax.Tanh(), 1))
    return dist.log_prob(jnp.clip(action, -1.0 + 1e-4, 1.0 - 1e-4))
