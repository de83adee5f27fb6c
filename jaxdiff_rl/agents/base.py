"""What every off-policy agent shares: the static `AgentConfig`, the traced `Hparams`, the `AgentState` pytree,
the optimizer step and the soft target update.

Static vs traced: everything that changes shapes or the program (widths, T, number of environments, batch and
buffer sizes, which algorithm) is a field of the frozen `AgentConfig`; everything a user sweeps (learning
rates, gamma, tau, alpha, exploration noise, loss weights) is an array field of `Hparams`, so
`jax.vmap(train)(keys, hparams)` compiles once for a whole grid. Both validate concrete values before anything
is compiled and raise `ValueError` naming the field and the allowed range.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxdiff_rl.agents.networks import ActorConfig

__all__ = ["ALGORITHMS", "AgentConfig", "Hparams", "AgentState", "adam_step", "polyak", "layer_grad_norms",
           "layer_grad_means", "validate_hparams", "check_ranges", "q_taken", "critic_step"]

#: algorithm name -> family (the loss it uses); the diffusion versions differ from their parents only in the actor
ALGORITHMS = {
    "sac": "sac", "d2sac": "sac",
    "td3": "td3", "ddpg": "td3", "dm_td3": "td3", "dm_ddpg": "td3",
}
EXPLORATION = ("policy", "gaussian", "epsilon")


@dataclasses.dataclass(frozen=True)
class AgentConfig:
    """Static settings of an off-policy training run (changing one recompiles).

    Schedule: `num_iterations` iterations; each collects `steps_per_iter` vectorised steps from `num_envs`
    environments (so `num_envs * steps_per_iter` transitions), then runs `updates_per_iter` gradient updates
    on minibatches of `batch_size` (once the buffer holds `learning_starts` transitions; before that, actions
    are uniform random).

    Algorithm switches (set by each algorithm's `default_config`, documented there):
        auto_alpha: learn the SAC temperature towards `target_entropy` (else alpha = hparams.alpha, fixed).
        entropy_in_target: SAC's soft target (D2SAC's reference omits the entropy term there).
        target_actor: next actions from a Polyak-averaged actor copy (TD3/DDPG/D2SAC) instead of the online one.
        num_critics: 1 (DDPG) or 2 (clipped double Q).
        policy_delay: actor and target updates every k critic updates (TD3: 2).
        target_smoothing: TD3's clipped Gaussian noise on target actions.
        actor_q: "first" (TD3: Q1) or "min" (min over critics) in the deterministic actor loss.
        exploration: "policy" (sample the stochastic policy), "gaussian" (add N(0, explore_noise^2)),
            "epsilon" (uniform random action with probability epsilon).
        bc_loss: add bc_weight x the DDPM loss of replay actions to the actor loss (DM-TD3's regulariser;
            diffusion actors only).
        explore: D2RL's reward design and state exploration (`jaxdiff_rl.explore.ExploreConfig`), or None.
        q_guidance: Q-gradient guided denoising when acting (seed 000 eq. 11): every reverse step of a diffusion
            actor's chain is shifted along hparams.q_guide_scale x grad_a min_i Q_i(s, a) through the shared
            gradient-guidance path (DDPM: the eps-form shift, i.e. the step's mean moves by
            w beta_t / sqrt(alpha_t) grad_a Q(s, a_t); flow and consistency: see `jaxdiff_rl.diffusion.generators`).
            Training chains (targets, actor loss) stay unguided. Diffusion actors only.
        entropy_samples: N > 0 gives a continuous diffusion actor (D2SAC on a Box) SAC's entropy terms: N draws
            per state, a `entropy_components`-component Gaussian mixture fitted to them by EM (DACER), and its
            estimate H_hat(s) = -mean_n log q(a_n) in the soft target (V = Q'_min(s', a') + alpha H_hat(s'), with
            `entropy_in_target`) and in the actor loss (-mean_n Q_min(s, a_n) - alpha H_hat(s)); `auto_alpha`
            tunes alpha towards `target_entropy` (default -A). Costs N chains per state in the target and the
            actor loss. 0: no entropy for continuous diffusion actors (the GDMOPT / D2SAC reference).
        synthetic: diffusion-generated transitions mixed into every minibatch (seed 000 eq. 22; a
            `jaxdiff_rl.train.synthetic.MixConfig`: the generated fraction, pool size, refit period), or None.
            Needs n_step = 1 (a generated transition has no n-step context).
        action_candidates: N >= 1; with N > 1 a stochastic continuous actor acts (in training and greedily) by
            drawing N actions per state and taking the one the critic's min-Q ranks highest (`best_of_n`; the
            exploration noise is applied after the pick). Costs N actor forwards per environment step.
    """

    algo: str = "sac"
    actor: ActorConfig = ActorConfig()
    critic_hidden_dims: tuple[int, ...] = (256, 256)
    critic_activation: str = "mish"
    num_envs: int = 1
    steps_per_iter: int = 1
    updates_per_iter: int = 1
    num_iterations: int = 1000
    batch_size: int = 256
    buffer_size: int = 100_000
    n_step: int = 1
    learning_starts: int = 0
    auto_alpha: bool = False
    target_entropy: float | None = None
    entropy_in_target: bool = True
    target_actor: bool = False
    num_critics: int = 2
    policy_delay: int = 1
    target_smoothing: bool = False
    actor_q: str = "first"
    exploration: str = "policy"
    bc_loss: bool = False
    explore: Any = None
    action_candidates: int = 1
    q_guidance: bool = False
    entropy_samples: int = 0
    entropy_components: int = 3
    synthetic: Any = None

    def __post_init__(self) -> None:
        if self.algo not in ALGORITHMS:
            raise ValueError(f"AgentConfig.algo: unknown algorithm {self.algo!r}; valid: {sorted(ALGORITHMS)}")
        for name in ("num_envs", "steps_per_iter", "updates_per_iter", "num_iterations", "batch_size",
                     "buffer_size", "n_step", "num_critics", "policy_delay"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"AgentConfig.{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.action_candidates, bool) or not isinstance(self.action_candidates, int) or \
                self.action_candidates < 1:
            raise ValueError(f"AgentConfig.action_candidates must be an integer >= 1, got {self.action_candidates!r}")
        if self.action_candidates > 1 and self.actor.kind not in ("diffusion", "gaussian"):
            raise ValueError(f"AgentConfig.action_candidates > 1 needs a stochastic continuous actor (actor.kind "
                             f"'diffusion' or 'gaussian'), got actor.kind={self.actor.kind!r}")
        if self.num_critics > 2:
            raise ValueError(f"AgentConfig.num_critics must be 1 or 2, got {self.num_critics}")
        if isinstance(self.learning_starts, bool) or not isinstance(self.learning_starts, int) or self.learning_starts < 0:
            raise ValueError(f"AgentConfig.learning_starts must be an integer >= 0, got {self.learning_starts!r}")
        if self.batch_size > self.buffer_size:
            raise ValueError(
                f"AgentConfig.batch_size ({self.batch_size}) must be <= buffer_size ({self.buffer_size})"
            )
        if self.buffer_size < self.num_envs:
            raise ValueError(f"AgentConfig.buffer_size ({self.buffer_size}) must be >= num_envs ({self.num_envs})")
        if self.n_step > 20:
            raise ValueError(f"AgentConfig.n_step must be in [1, 20], got {self.n_step}")
        if self.exploration not in EXPLORATION:
            raise ValueError(f"AgentConfig.exploration must be one of {EXPLORATION}, got {self.exploration!r}")
        if self.actor_q not in ("first", "min"):
            raise ValueError(f"AgentConfig.actor_q must be 'first' or 'min', got {self.actor_q!r}")
        if ALGORITHMS[self.algo] == "td3" and self.actor.kind in ("gaussian", "categorical"):
            raise ValueError(
                f"AgentConfig.actor.kind={self.actor.kind!r} does not fit {self.algo} (needs 'deterministic' or 'diffusion')"
            )
        if ALGORITHMS[self.algo] == "sac" and self.actor.kind == "deterministic":
            raise ValueError(f"AgentConfig.actor.kind='deterministic' does not fit {self.algo} (a stochastic actor)")
        for name in ("entropy_samples", "entropy_components"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"AgentConfig.{name} must be an integer >= 0, got {value!r}")
        if self.entropy_samples:
            if self.actor.kind != "diffusion" or ALGORITHMS[self.algo] != "sac":
                raise ValueError(f"AgentConfig.entropy_samples > 0 needs a diffusion actor in a SAC-family algorithm "
                                 f"(d2sac), got algo={self.algo!r}, actor.kind={self.actor.kind!r}")
            if not 1 <= self.entropy_components <= self.entropy_samples:
                raise ValueError(f"AgentConfig.entropy_components must be in [1, entropy_samples="
                                 f"{self.entropy_samples}], got {self.entropy_components}")
        if self.q_guidance and self.actor.kind != "diffusion":
            raise ValueError(f"AgentConfig.q_guidance needs a diffusion actor (actor.kind='diffusion'), got "
                             f"{self.actor.kind!r}")
        if self.bc_loss and self.actor.kind != "diffusion":
            raise ValueError("AgentConfig.bc_loss needs a diffusion actor (actor.kind='diffusion')")
        if self.synthetic is not None:
            from jaxdiff_rl.train.synthetic import MixConfig  # late: train builds on this module

            if not isinstance(self.synthetic, MixConfig):
                raise TypeError(f"AgentConfig.synthetic must be a MixConfig or None, got "
                                f"{type(self.synthetic).__name__}")
            if self.n_step != 1:
                raise ValueError(f"AgentConfig.synthetic needs n_step=1 (generated transitions are single steps), "
                                 f"got n_step={self.n_step}")
            if self.explore is not None:
                raise ValueError("AgentConfig.synthetic and AgentConfig.explore cannot be combined")
            if self.synthetic.fake_rows(self.batch_size) < 1 or self.synthetic.fake_rows(self.batch_size) >= self.batch_size:
                raise ValueError(f"AgentConfig.synthetic.ratio={self.synthetic.ratio} leaves no generated or no real "
                                 f"rows in a batch of {self.batch_size}")
        if self.explore is not None:
            from jaxdiff_rl.explore.config import ExploreConfig  # late: explore builds on this module

            if not isinstance(self.explore, ExploreConfig):
                raise TypeError(f"AgentConfig.explore must be an ExploreConfig or None, got {type(self.explore).__name__}")
            if ALGORITHMS[self.algo] != "td3":
                raise ValueError(f"AgentConfig.explore needs a deterministic-actor algorithm (ddpg, td3, dm_ddpg, "
                                 f"dm_td3), got algo={self.algo!r}")

    @property
    def family(self) -> str:
        return ALGORITHMS[self.algo]

    @property
    def total_env_steps(self) -> int:
        return self.num_iterations * self.steps_per_iter * self.num_envs

    def replace(self, **changes: Any) -> "AgentConfig":
        return dataclasses.replace(self, **changes)


@struct.dataclass
class Hparams:
    """Traced (sweepable) hyperparameters; scalars here, a leading axis each in a sweep.

    lr_actor, lr_critic, lr_alpha: Adam step sizes (>= 0). weight_decay: coupled L2 added to the gradient
    before Adam (>= 0). gamma: discount in [0, 1]. tau: Polyak rate in [0, 1]. alpha: entropy temperature
    (fixed, or the initial value with `auto_alpha`), >= 0. explore_noise: std of Gaussian exploration in the
    [-1, 1] action space. target_noise, noise_clip: TD3 target smoothing. epsilon: epsilon-greedy probability
    in [0, 1]. bc_weight: weight of the DDPM regulariser. target_entropy_scale: discrete SAC's target entropy as
    a fraction of log(A). q_guide_scale: w of Q-gradient guided acting (`AgentConfig.q_guidance`), >= 0.
    D2RL exploration (used only with `AgentConfig.explore`): lr_reward, lr_state: Adam step sizes of the reward
    correction network and the SENPNN; state_threshold: the SENPNN loss threshold T (>= 0); chi_max: M, the
    maximum substitute probability in [0, 1]; chi_rate: eta, its growth per epoch in [0, 1]; reward_scale: bound
    of the learned reward correction (reward units, >= 0).
    """

    lr_actor: Any = 3e-4
    lr_critic: Any = 3e-4
    lr_alpha: Any = 3e-4
    weight_decay: Any = 0.0
    gamma: Any = 0.99
    tau: Any = 0.005
    alpha: Any = 0.2
    explore_noise: Any = 0.1
    target_noise: Any = 0.2
    noise_clip: Any = 0.5
    epsilon: Any = 0.1
    bc_weight: Any = 0.0
    target_entropy_scale: Any = 0.5
    lr_reward: Any = 5e-5
    lr_state: Any = 1e-4
    state_threshold: Any = 5e-4
    chi_max: Any = 0.9
    chi_rate: Any = 1e-3
    reward_scale: Any = 1.0
    q_guide_scale: Any = 0.0


_RANGES = {
    "lr_actor": (0.0, math.inf), "lr_critic": (0.0, math.inf), "lr_alpha": (0.0, math.inf),
    "weight_decay": (0.0, math.inf), "gamma": (0.0, 1.0), "tau": (0.0, 1.0), "alpha": (0.0, math.inf),
    "explore_noise": (0.0, math.inf), "target_noise": (0.0, math.inf), "noise_clip": (0.0, math.inf),
    "epsilon": (0.0, 1.0), "bc_weight": (0.0, math.inf), "target_entropy_scale": (0.0, 1.0),
    "lr_reward": (0.0, math.inf), "lr_state": (0.0, math.inf), "state_threshold": (0.0, math.inf),
    "chi_max": (0.0, 1.0), "chi_rate": (0.0, 1.0), "reward_scale": (0.0, math.inf),
    "q_guide_scale": (0.0, math.inf),
}


def validate_hparams(hparams: Hparams) -> Hparams:
    """Check every concrete field (any shape: a sweep's stacked values) is finite and in its range.

    Raises ValueError naming the field and the allowed range. Traced values are passed through."""
    if not isinstance(hparams, Hparams):
        raise TypeError(f"hparams must be a jaxdiff_rl.agents.Hparams, got {type(hparams).__name__}")
    return check_ranges(hparams, _RANGES)


def check_ranges(hparams: Any, ranges: dict[str, tuple[float, float]]) -> Any:
    """ValueError unless every concrete field named in `ranges` is finite and within its [low, high] (any shape;
    traced values pass through); the message names `<class>.<field>` and the range."""
    for name, (low, high) in ranges.items():
        value = getattr(hparams, name)
        if isinstance(value, jax.core.Tracer):
            continue
        arr = np.asarray(value, dtype=np.float64)
        if not np.all(np.isfinite(arr)) or np.any(arr < low) or np.any(arr > high):
            raise ValueError(f"{type(hparams).__name__}.{name} must be in [{low}, {high}], got {value!r}")
    return hparams


@struct.dataclass
class AgentState:
    """All learnable state of an agent (a pytree; vmapped over seeds/sweeps like any array).

    actor/critic: online parameters; target_actor/target_critic: Polyak copies; *_opt: Adam states;
    log_alpha: SAC temperature (log); updates: number of gradient updates done (int32)."""

    actor: Any
    critic: Any
    target_actor: Any
    target_critic: Any
    actor_opt: Any
    critic_opt: Any
    log_alpha: jax.Array
    alpha_opt: Any
    updates: jax.Array


_ADAM = optax.scale_by_adam()


def adam_init(params: Any) -> Any:
    return _ADAM.init(params)


def adam_step(params: Any, grads: Any, opt_state: Any, lr: jax.Array, weight_decay: jax.Array | float = 0.0):
    """One Adam step with coupled L2 (weight decay added to the gradient before Adam, as PyTorch's
    `Adam(weight_decay=...)`; not AdamW) and a traced learning rate. Returns (params, opt_state)."""
    grads = jax.tree_util.tree_map(lambda g, p: g + weight_decay * p, grads, params)
    updates, opt_state = _ADAM.update(grads, opt_state, params)
    params = jax.tree_util.tree_map(lambda p, u: p - lr * u, params, updates)
    return params, opt_state


def polyak(target: Any, online: Any, tau: jax.Array) -> Any:
    """target <- tau * online + (1 - tau) * target (tau may be traced)."""
    return optax.incremental_update(online, target, tau)


def fresh_state(actor: Any, critic: Any) -> AgentState:
    """An AgentState for new parameters: targets = copies, fresh Adam states, no temperature (log alpha 0)."""
    return AgentState(actor=actor, critic=critic, target_actor=actor, target_critic=critic, actor_opt=adam_init(actor),
                      critic_opt=adam_init(critic), log_alpha=jnp.float32(0.0), alpha_opt=adam_init(jnp.float32(0.0)),
                      updates=jnp.int32(0))


def commit_update(state: AgentState, actor: tuple[Any, Any], critic: tuple[Any, Any], tau: jax.Array) -> AgentState:
    """The state after one update: new (params, Adam state) of actor and critic, Polyak targets, updates + 1."""
    (actor, actor_opt), (critic, critic_opt) = actor, critic
    return state.replace(actor=actor, critic=critic, actor_opt=actor_opt, critic_opt=critic_opt,
                         target_actor=polyak(state.target_actor, actor, tau),
                         target_critic=polyak(state.target_critic, critic, tau), updates=state.updates + 1)


def _layer_leaves(grads: Any):
    """(layer path, leaf name, leaf) for every leaf of a Flax params pytree ("params" dropped from the path)."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(grads)[0]:
        names = [str(getattr(p, "key", getattr(p, "idx", p))) for p in path]
        yield "/".join(n for n in names[:-1] if n != "params") or names[-1], names[-1], leaf


def layer_grad_norms(grads: Any, prefix: str) -> dict[str, jax.Array]:
    """L2 norm of the gradient of every layer (kernel and bias together): {"<prefix>/<layer path>": scalar}."""
    norms: dict[str, jax.Array] = {}
    for layer, _, leaf in _layer_leaves(grads):
        norms[f"{prefix}/{layer}"] = norms.get(f"{prefix}/{layer}", 0.0) + jnp.sum(jnp.square(leaf))
    return {k: jnp.sqrt(v) for k, v in norms.items()}


def layer_grad_means(grads: Any, prefix: str) -> dict[str, jax.Array]:
    """Mean absolute gradient of every layer's weights and biases (seed 003's "gradient weight / bias", Figs. 5
    and 7): {"<prefix>/weight/<layer path>": scalar, "<prefix>/bias/<layer path>": scalar}."""
    kinds = {"kernel": "weight", "bias": "bias"}
    return {f"{prefix}/{kinds[name]}/{layer}": jnp.mean(jnp.abs(leaf))
            for layer, name, leaf in _layer_leaves(grads) if name in kinds}


def q_taken(q: jax.Array, action: jax.Array, discrete: bool) -> jax.Array:
    """Q of the taken action: q [C, B, A] with action [B] int -> [C, B]; continuous q is already [C, B]."""
    if not discrete:
        return q
    return jnp.take_along_axis(q, action[None, :, None].astype(jnp.int32), axis=-1)[..., 0]


def critic_step(critic_net: Any, state: "AgentState", batch: Any, y: jax.Array, hparams: Hparams, discrete: bool):
    """One Adam step of the critics on sum_i MSE(Q_i(s, a), y) (y [B], already stop-gradient'ed), shared by every
    algorithm. Returns (critic params, critic opt state, loss, Q of the taken actions [C, B], gradients)."""

    def loss_fn(params):
        q_all = critic_net.apply(params, batch.obs) if discrete else critic_net.apply(params, batch.obs, batch.action)
        q = q_taken(q_all, batch.action, discrete)
        return jnp.sum(jnp.mean((q - y[None]) ** 2, axis=-1)), q

    (loss, q), grads = jax.value_and_grad(loss_fn, has_aux=True)(state.critic)
    critic, critic_opt = adam_step(state.critic, grads, state.critic_opt, hparams.lr_critic, hparams.weight_decay)
    return critic, critic_opt, loss, q, grads


# --- shared init / act ----------------------------------------------------------------------------------------
def make_critic(config: AgentConfig, action_dim: int, discrete: bool):
    from jaxdiff_rl.agents.networks import DoubleCritic

    return DoubleCritic(
        out_dim=action_dim if discrete else 1,
        hidden_dims=tuple(config.critic_hidden_dims),
        activation=config.critic_activation,
        num_critics=config.num_critics,
        matmul_dtype=config.actor.matmul_dtype,
    )


def init_agent(
    key: jax.Array, config: AgentConfig, hparams: Hparams, obs_dim: int, action_dim: int, discrete: bool
) -> AgentState:
    """Fresh parameters, target copies and optimizer states. [obs_dim], A = action_dim."""
    from jaxdiff_rl.agents.networks import actor_init, critic_init

    k_actor, k_critic = jax.random.split(key)
    actor = actor_init(k_actor, config.actor, obs_dim, action_dim)
    critic = critic_init(k_critic, make_critic(config, action_dim, discrete), obs_dim, action_dim, discrete)
    log_alpha = jnp.log(jnp.maximum(jnp.asarray(hparams.alpha, jnp.float32), 1e-8))
    return AgentState(
        actor=actor,
        critic=critic,
        target_actor=actor,
        target_critic=critic,
        actor_opt=adam_init(actor),
        critic_opt=adam_init(critic),
        log_alpha=log_alpha,
        alpha_opt=adam_init(log_alpha),
        updates=jnp.int32(0),
    )


def act(
    key: jax.Array,
    config: AgentConfig,
    state: AgentState,
    obs: jax.Array,
    hparams: Hparams,
    action_dim: int,
    discrete: bool,
    explore: bool,
) -> jax.Array:
    """Actions for observations [B, obs_dim] in the actor's space ([B, A] in [-1, 1], or [B] int32).

    explore=False: the greedy action (argmax for discrete actors, the noiseless output for Gaussian/
    deterministic actors, one reverse-diffusion chain for continuous diffusion actors; with
    `config.action_candidates` = N > 1, the best of N draws by min-Q for continuous stochastic actors).
    explore=True: the behaviour policy of `config.exploration`."""
    from jaxdiff_rl.agents.networks import actor_forward

    k_pi, k_noise, k_eps, k_rand = jax.random.split(key, 4)
    guide_fn, guide_scale = q_guide(config, state, action_dim, discrete), hparams.q_guide_scale
    if config.action_candidates > 1 and not discrete:
        action = best_of_n(k_pi, config, state, obs, action_dim, config.action_candidates, guide_fn, guide_scale)[0]
        if not explore:
            return action
    else:
        out = actor_forward(config.actor, state.actor, k_pi, obs, action_dim, discrete, guide_fn, guide_scale)
        if not explore:
            return out.mean_action
        action = out.action
    if config.exploration == "gaussian" and not discrete:
        noise = hparams.explore_noise * jax.random.normal(k_noise, action.shape)
        action = jnp.clip(action + noise, -1.0, 1.0)
    elif config.exploration == "epsilon":
        batch = obs.shape[0]
        if discrete:
            random = jax.random.randint(k_rand, (batch,), 0, action_dim, jnp.int32)
        else:
            random = jax.random.uniform(k_rand, (batch, action_dim), minval=-1.0, maxval=1.0)
        pick = jax.random.uniform(k_eps, (batch,)) < hparams.epsilon
        action = jnp.where(pick if discrete else pick[:, None], random, action)
    return action


def q_guide(config: AgentConfig, state: AgentState, action_dim: int, discrete: bool) -> Any:
    """g(a [B, A], obs [B, S]) = min_i Q_i(s, a) [B] for Q-gradient guided acting, or None (`q_guidance` off or a
    discrete actor, whose chain produces logits rather than actions)."""
    if not config.q_guidance or discrete:
        return None
    critic = make_critic(config, action_dim, False)
    return lambda a, obs: critic.apply(state.critic, obs, a).min(0)


def best_of_n(
    key: jax.Array, config: AgentConfig, state: AgentState, obs: jax.Array, action_dim: int, candidates: int,
    guide_fn: Any = None, guide_scale: Any = 0.0,
) -> tuple[jax.Array, jax.Array]:
    """Greedy action of a stochastic continuous actor read out through its critic (Diffusion-QL's selection).

    Draws `candidates` actions per observation from the actor (for a diffusion actor, that many independent
    reverse chains), scores each by the minimum over the critic ensemble, and keeps the best.
    obs [B, obs_dim] -> (actions [B, A] in [-1, 1], their min-Q [B]). `candidates` = 1 is one plain draw.
    Deterministic actors give `candidates` identical actions (no gain, only cost)."""
    from jaxdiff_rl.agents.networks import actor_forward

    if isinstance(candidates, bool) or not isinstance(candidates, int) or candidates < 1:
        raise ValueError(f"candidates must be an int >= 1, got {candidates!r}")
    if config.actor.kind == "categorical":
        raise ValueError("best_of_n needs a continuous actor (a discrete critic already ranks every action)")
    if obs.ndim != 2:
        raise ValueError(f"obs must be [batch, obs_dim], got shape {obs.shape}")
    batch = obs.shape[0]
    repeated = jnp.repeat(obs, candidates, axis=0)  # [B * N, obs_dim], row b * N + n = candidate n of obs b
    actions = actor_forward(config.actor, state.actor, key, repeated, action_dim, False, guide_fn, guide_scale).action
    q = make_critic(config, action_dim, False).apply(state.critic, repeated, actions).min(0)
    actions, q = actions.reshape(batch, candidates, action_dim), q.reshape(batch, candidates)
    best = jnp.argmax(q, axis=1)
    return jnp.take_along_axis(actions, best[:, None, None], 1)[:, 0], jnp.take_along_axis(q, best[:, None], 1)[:, 0]
