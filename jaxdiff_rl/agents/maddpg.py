"""MADDPG (Lowe et al. 2017) and DM-MADDPG (seed 000 sec. II-B6, eq. 20): decentralised actors, centralised critics.

Each agent i acts on its local observation o_i; its critic Q_i(x, a_1, ..., a_K) sees the global state x (the
environment's `get_state`) and every agent's action. DM-MADDPG replaces each deterministic actor mu_i(o_i) by the
shared diffusion actor (a reverse chain conditioned on o_i, `jaxdiff_rl.agents.networks.actor_forward`); the loss
is the same, with the gradient through every denoising step:

    y_i    = r_i + discount * min_c Q'_{c,i}(x', mu'_1(o'_1), ..., mu'_K(o'_K))
    critic = sum_c mean_{b,i} (Q_{c,i}(x, a) - y_i)^2
    actor  = -mean_{b,i} Q_{1,i}(x, a_1, ..., mu_i(o_i), ..., a_K)        (other agents' actions from the buffer)

Shapes: local observations [B, K, o], global state [B, S], actions [B, K, A] in [-1, 1], rewards [B, K].
The critics are one network with K heads (`DoubleCritic(out_dim=K)` on [x, a_1..a_K]); with
`MAConfig.share_parameters` one actor serves every agent with a one-hot agent id appended to o_i (the usual
parameter sharing; vmapped over agents as one batch), else each agent has its own parameters (stacked [K, ...],
vmapped over the agent axis).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_rl.agents.base import AgentState, Hparams, adam_step, commit_update, fresh_state
from jaxdiff_rl.agents.networks import ActorConfig, DoubleCritic, actor_forward, actor_init

__all__ = ["MA_ALGORITHMS", "DISCRETE_MA_ALGORITHMS", "MEAN_FIELD_ALGORITHMS", "MAConfig", "default_config", "default_hparams", "init", "policy", "update",
           "with_agent_ids", "make_critic"]

MA_ALGORITHMS = ("maddpg", "dm_maddpg", "qmix", "dm_qmix", "mfac", "dm_mfac")
DISCRETE_MA_ALGORITHMS = ("qmix", "dm_qmix")
MEAN_FIELD_ALGORITHMS = ("mfac", "dm_mfac")
_ACTOR_KIND = {"maddpg": "deterministic", "dm_maddpg": "diffusion", "qmix": "categorical", "dm_qmix": "diffusion",
               "mfac": "deterministic", "dm_mfac": "diffusion"}


@dataclasses.dataclass(frozen=True)
class MAConfig:
    """Static settings of a multi-agent off-policy run (changing one recompiles).

    Schedule as `AgentConfig`'s: `num_iterations` iterations of `steps_per_iter` vectorised steps in `num_envs`
    environments, then `updates_per_iter` updates on minibatches of `batch_size` joint transitions once the buffer
    holds `learning_starts` (uniform random actions before that). `num_critics`: 1 (MADDPG) or 2 (clipped double
    Q); `target_smoothing`: TD3's clipped noise on the target actions; `share_parameters`: one actor for all
    agents with agent-id inputs (see the module docstring). Exploration: Gaussian noise of std
    `Hparams.explore_noise` on the [-1, 1] actions. QMIX (`algo="qmix"`, `agents/qmix.py`): `actor` describes the
    per-agent utility MLP (kind "categorical": discrete actions), `mixer_embed` the mixer's width, exploration is
    epsilon-greedy with `Hparams.epsilon`. DM-QMIX (`algo="dm_qmix"`): `actor` is the diffusion policy (shared over
    agents), the utilities use `actor.hidden_dims` too. Mean-field actor-critic (`algo="mfac"`, tanh actor, or
    `"dm_mfac"`, diffusion actor; `agents/mean_field.py`): one actor and one critic shared by all agents, no agent
    ids (`share_parameters` must stay True), the critic on the agent's observation, action and the others' mean
    action; `num_critics` and `target_smoothing` as for MADDPG.
    """

    algo: str = "maddpg"
    actor: ActorConfig = ActorConfig(kind="deterministic")
    critic_hidden_dims: tuple[int, ...] = (256, 256)
    critic_activation: str = "mish"
    num_critics: int = 1
    target_smoothing: bool = False
    share_parameters: bool = True
    num_envs: int = 1
    steps_per_iter: int = 1
    updates_per_iter: int = 1
    num_iterations: int = 1000
    batch_size: int = 256
    buffer_size: int = 100_000
    learning_starts: int = 0
    mixer_embed: int = 32

    def __post_init__(self) -> None:
        if self.algo not in MA_ALGORITHMS:
            raise ValueError(f"MAConfig.algo must be one of {MA_ALGORITHMS}, got {self.algo!r}")
        expected = _ACTOR_KIND[self.algo]
        if self.actor.kind != expected:
            raise ValueError(f"MAConfig.actor.kind must be {expected!r} for algo={self.algo!r}, got {self.actor.kind!r}")
        for name in ("num_envs", "steps_per_iter", "updates_per_iter", "num_iterations", "batch_size",
                     "buffer_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"MAConfig.{name} must be an integer >= 1, got {value!r}")
        if self.algo in MEAN_FIELD_ALGORITHMS and not self.share_parameters:
            raise ValueError(f"MAConfig.share_parameters must be True for algo={self.algo!r}: mean-field agents are "
                             "exchangeable and share one actor and one critic")
        if self.num_critics not in (1, 2):
            raise ValueError(f"MAConfig.num_critics must be 1 or 2, got {self.num_critics!r}")
        if isinstance(self.learning_starts, bool) or not isinstance(self.learning_starts, int) or self.learning_starts < 0:
            raise ValueError(f"MAConfig.learning_starts must be an integer >= 0, got {self.learning_starts!r}")
        if self.batch_size > self.buffer_size:
            raise ValueError(f"MAConfig.batch_size ({self.batch_size}) must be <= buffer_size ({self.buffer_size})")
        if self.buffer_size < self.num_envs:
            raise ValueError(f"MAConfig.buffer_size ({self.buffer_size}) must be >= num_envs ({self.num_envs})")

    @property
    def family(self) -> str:
        return "maddpg"

    @property
    def total_env_steps(self) -> int:
        return self.num_iterations * self.steps_per_iter * self.num_envs

    def replace(self, **changes: Any) -> "MAConfig":
        return dataclasses.replace(self, **changes)


def default_config(algo: str = "maddpg", **overrides: Any) -> MAConfig:
    """MADDPG: tanh actors, one critic per agent (K heads). DM-MADDPG: the diffusion actor (T = 5, VP schedule).
    QMIX: utility MLPs (64, 64) and a mixer of width 32. Mean-field (mfac, dm_mfac): actors (64, 64), diffusion T = 5."""
    actor = {"dm_maddpg": ActorConfig(kind="diffusion", diffusion_steps=5),
             "mfac": ActorConfig(kind="deterministic", hidden_dims=(64, 64)),
             "dm_mfac": ActorConfig(kind="diffusion", hidden_dims=(64, 64), diffusion_steps=5),
             "qmix": ActorConfig(kind="categorical", hidden_dims=(64, 64)),
             "dm_qmix": ActorConfig(kind="diffusion", hidden_dims=(64, 64), diffusion_steps=5)}.get(algo, ActorConfig(kind="deterministic"))
    return MAConfig(**{"algo": algo, "actor": actor, **overrides})


def default_hparams(**overrides: Any) -> Hparams:
    base = dict(lr_actor=3e-4, lr_critic=1e-3, gamma=0.95, tau=0.01, explore_noise=0.1, target_noise=0.2,
                noise_clip=0.5)
    return Hparams(**{**base, **overrides})


def smooth_target(key: jax.Array, action: jax.Array, hparams: Hparams) -> jax.Array:
    """TD3's target smoothing: clipped Gaussian noise (std target_noise, clip noise_clip) on actions in [-1, 1]."""
    noise = jnp.clip(hparams.target_noise * jax.random.normal(key, action.shape), -hparams.noise_clip,
                     hparams.noise_clip)
    return jnp.clip(action + noise, -1.0, 1.0)


def with_agent_ids(config: MAConfig, local_obs: jax.Array) -> jax.Array:
    """[..., K, o] -> [..., K, o + K] (a one-hot agent id appended) with parameter sharing, else unchanged."""
    if not config.share_parameters:
        return local_obs
    k = local_obs.shape[-2]
    ids = jnp.broadcast_to(jnp.eye(k, dtype=local_obs.dtype), local_obs.shape[:-1] + (k,))
    return jnp.concatenate([local_obs, ids], axis=-1)


def make_critic(config: MAConfig, num_agents: int) -> DoubleCritic:
    """Q_{c,i}(x, a): input [.., S + K A] (state and joint action concatenated) -> [C, .., K]."""
    return DoubleCritic(out_dim=num_agents, hidden_dims=tuple(config.critic_hidden_dims),
                        activation=config.critic_activation, num_critics=config.num_critics,
                        matmul_dtype=config.actor.matmul_dtype)


def _critic_input(state_x: jax.Array, joint: jax.Array) -> jax.Array:
    return jnp.concatenate([state_x, joint.reshape(joint.shape[:-2] + (-1,))], axis=-1)


def policy(config: MAConfig, params: Any, key: jax.Array, local_obs: jax.Array, action_dim: int,
           greedy: bool = False) -> jax.Array:
    """Every agent's action: local observations [B, K, o] -> [B, K, A] in [-1, 1] (no exploration noise)."""
    obs = with_agent_ids(config, local_obs)
    batch, k, width = obs.shape
    pick = (lambda out: out.mean_action) if greedy else (lambda out: out.action)
    if config.share_parameters:
        out = actor_forward(config.actor, params, key, obs.reshape(batch * k, width), action_dim, False)
        return pick(out).reshape(batch, k, action_dim)
    forward = lambda p, kk, o: pick(actor_forward(config.actor, p, kk, o, action_dim, False))
    return jax.vmap(forward, in_axes=(0, 0, 1), out_axes=1)(params, jax.random.split(key, k), obs)


def init(key: jax.Array, config: MAConfig, hparams: Hparams, num_agents: int, obs_dim: int, state_dim: int,
         action_dim: int) -> AgentState:
    """Fresh actors (shared or stacked [K]), K-head critics, target copies and Adam states."""
    k_actor, k_critic = jax.random.split(key)
    width = obs_dim + (num_agents if config.share_parameters else 0)
    if config.share_parameters:
        actor = actor_init(k_actor, config.actor, width, action_dim)
    else:
        actor = jax.vmap(lambda kk: actor_init(kk, config.actor, width, action_dim))(jax.random.split(k_actor, num_agents))
    critic = make_critic(config, num_agents).init(k_critic, jnp.zeros((1, state_dim + num_agents * action_dim)))
    return fresh_state(actor, critic)


def update(key: jax.Array, config: MAConfig, state: AgentState, batch: Any, hparams: Hparams,
           action_dim: int) -> tuple[AgentState, dict[str, jax.Array]]:
    """One critic and one actor update (module docstring). batch.obs / next_obs: {"local": [B, K, o],
    "global": [B, S]}; batch.action [B, K, A]; batch.reward [B, K]; batch.discount [B]. Pure."""
    local, x = batch.obs["local"], batch.obs["global"]
    next_local, next_x = batch.next_obs["local"], batch.next_obs["global"]
    k = local.shape[1]
    critic_net = make_critic(config, k)
    k_next, k_smooth, k_pi = jax.random.split(key, 3)

    next_action = policy(config, state.target_actor, k_next, next_local, action_dim)
    if config.target_smoothing:
        next_action = smooth_target(k_smooth, next_action, hparams)
    q_next = jnp.min(critic_net.apply(state.target_critic, _critic_input(next_x, next_action)), axis=0)  # [B, K]
    y = jax.lax.stop_gradient(batch.reward + batch.discount[:, None] * q_next)

    def critic_loss_fn(params):
        q = critic_net.apply(params, _critic_input(x, batch.action))  # [C, B, K]
        return jnp.sum(jnp.mean((q - y[None]) ** 2, axis=(1, 2))), q

    (critic_loss, q), critic_grads = jax.value_and_grad(critic_loss_fn, has_aux=True)(state.critic)
    critic, critic_opt = adam_step(state.critic, critic_grads, state.critic_opt, hparams.lr_critic, hparams.weight_decay)

    own = jnp.eye(k, dtype=bool)[:, None, :, None]  # [K (whose action is replaced), 1, K, 1]

    def actor_loss_fn(params):
        mu = policy(config, params, k_pi, local, action_dim)  # [B, K, A]
        joint = jnp.where(own, mu[None], batch.action[None])  # [K, B, K, A]: agent i's mu, the others' buffer actions
        q_i = critic_net.apply(critic, _critic_input(jnp.broadcast_to(x, (k,) + x.shape), joint))[0]  # [K, B, K]
        return -jnp.mean(jnp.diagonal(q_i, axis1=0, axis2=2)), mu

    (actor_loss, mu), actor_grads = jax.value_and_grad(actor_loss_fn, has_aux=True)(state.actor)
    actor = adam_step(state.actor, actor_grads, state.actor_opt, hparams.lr_actor, hparams.weight_decay)
    new_state = commit_update(state, actor, (critic, critic_opt), hparams.tau)
    metrics = {"critic_loss": critic_loss, "actor_loss": actor_loss, "q_mean": jnp.mean(q), "target_mean": jnp.mean(y),
               "action_abs_mean": jnp.mean(jnp.abs(mu))}
    return new_state, metrics
