"""Multi-agent environment base with JaxMARL's conventions, and an adapter for JaxMARL's own environments.

    obs, state = env.reset(key, params)                      # obs: {agent: [obs_dim]}
    obs, state, rewards, dones, infos = env.step(key, state, actions, params)
    # actions / rewards: {agent: ...}; dones: {agent: bool, "__all__": bool}

As in JaxMARL (`jaxmarl.environments.MultiAgentEnv`): `env.agents` (names), `env.num_agents`,
`env.observation_space(agent)`, `env.action_space(agent)`, dict observations / actions / rewards / dones with
`"__all__"`, auto-reset inside `step` when `dones["__all__"]`, and an optional global `get_state(state)` for a
centralised critic. `params` is optional everywhere (JaxMARL's environments keep theirs as attributes), so JaxMARL
code can call `env.reset(key)` / `env.step(key, state, actions)` on ours unchanged.

Additions, in the spirit of our single-agent base (`envs.environment`): `EnvParams` is a frozen pytree (a sweep
over power budgets is a vmap); `infos` holds `"terminated"`, `"truncated"` (the time limit: bootstrap through it),
`"final_observation"` (the observations before the auto-reset) and `"final_state"` (the global state before it);
`step` checks the action dict in Python before anything compiles: a missing or unknown agent, a wrong
shape/dtype, and (when concrete) an action outside its space raise errors naming the agent.

The training loop (`jaxdiff_rl.train.multi_agent`) stacks the agents' arrays along an agent axis, so the agents of
one environment must share their observation and action spaces (`stacked_spaces` checks this).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from envs.environment import Environment, is_concrete
from envs.spaces import Box

__all__ = ["MultiAgentEnv", "JaxMARLAdapter", "from_jaxmarl", "stack", "unstack", "stacked_spaces"]


def stack(tree: dict[str, Any], agents: list[str]) -> jax.Array:
    """{agent: [...]} -> [num_agents, ...] in the order of `agents`."""
    return jnp.stack([jnp.asarray(tree[a]) for a in agents])


def unstack(array: jax.Array, agents: list[str]) -> dict[str, jax.Array]:
    """[num_agents, ...] -> {agent: [...]}."""
    return {a: array[i] for i, a in enumerate(agents)}


def stacked_spaces(env: Any, params: Any = None) -> tuple[Any, Any]:
    """(observation space, action space) shared by every agent of `env` (ours or JaxMARL's, duck-typed).

    Raises ValueError naming the first agent whose spaces differ from the first agent's."""
    def spaces(agent):
        if isinstance(env, MultiAgentEnv):
            return env.observation_space(agent, params), env.action_space(agent, params)
        return env.observation_space(agent), env.action_space(agent)

    first_obs, first_act = spaces(env.agents[0])
    for agent in env.agents[1:]:
        obs_space, act_space = spaces(agent)
        same_act = (hasattr(first_act, "n") == hasattr(act_space, "n")) and tuple(act_space.shape) == tuple(first_act.shape)
        if hasattr(first_act, "n") and same_act:
            same_act = act_space.n == first_act.n
        elif same_act:
            same_act = bool(np.all(np.asarray(act_space.low) == np.asarray(first_act.low))
                            and np.all(np.asarray(act_space.high) == np.asarray(first_act.high)))
        if tuple(obs_space.shape) != tuple(first_obs.shape) or not same_act:
            raise ValueError(f"{type(env).__name__}: agent {agent!r} has spaces ({obs_space.shape}, {act_space!r}) "
                             f"unlike agent {env.agents[0]!r} ({first_obs.shape}, {first_act!r}); the multi-agent "
                             "loop stacks agents and needs identical spaces (pad observations to one width)")
    return first_obs, first_act


class MultiAgentEnv:
    """Abstract pure-JAX multi-agent environment (JaxMARL conventions + frozen `EnvParams`).

    A subclass sets `params_type`, implements `reset_env(key, params) -> (obs dict, state)`,
    `step_env(key, state, actions dict, params) -> (obs, state, rewards dict, terminated, info)`,
    `get_obs(state, params)`, `observation_space(agent, params)`, `action_space(agent, params)` and
    `num_agents_of(params)`; `get_state` defaults to the concatenated observations.
    """

    params_type: type

    def __init__(self, default_params: Any = None):
        self._default_params = default_params

    # Instances of one class compare equal (static jit arguments; see `envs.environment.Environment`).
    def __hash__(self) -> int:
        return hash(type(self))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    @property
    def default_params(self) -> Any:
        return self.params_type() if self._default_params is None else self._default_params

    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def num_agents(self) -> int:
        return self.num_agents_of(self.default_params)

    @property
    def agents(self) -> list[str]:
        return [f"agent_{i}" for i in range(self.num_agents)]

    def num_agents_of(self, params: Any) -> int:
        raise NotImplementedError

    # --- public API -----------------------------------------------------------------------------------
    def reset(self, key: jax.Array, params: Any = None) -> tuple[dict[str, jax.Array], Any]:
        return self._reset(key, self.default_params if params is None else params)

    def step(self, key: jax.Array, state: Any, actions: dict[str, Any], params: Any = None):
        """One transition with auto-reset: (obs, state, rewards, dones, infos), all dicts keyed by agent
        (dones also by "__all__"). Raises ValueError/TypeError naming the agent for a bad action dict."""
        params = self.default_params if params is None else params
        actions = self.check_actions(actions, params)
        return self._step(key, state, actions, params)

    def check_actions(self, actions: Any, params: Any) -> dict[str, jax.Array]:
        if not isinstance(actions, dict):
            raise TypeError(f"{self.name}: actions must be a dict {{agent: action}}, got {type(actions).__name__}")
        agents = self.agents
        missing = [a for a in agents if a not in actions]
        if missing:
            raise ValueError(f"{self.name}: actions is missing agent(s) {missing}; agents are {agents}")
        unknown = [a for a in actions if a not in agents]
        if unknown:
            raise ValueError(f"{self.name}: actions has unknown agent(s) {unknown}; agents are {agents}")
        checked = {}
        for agent in agents:
            space = self.action_space(agent, params)
            checked[agent] = space.check_action(actions[agent], f"{self.name}: agent {agent!r}")
            if isinstance(space, Box) and is_concrete(actions[agent], space.low, space.high):
                value = np.asarray(actions[agent])
                if np.any(value < np.asarray(space.low)) or np.any(value > np.asarray(space.high)):
                    raise ValueError(f"{self.name}: agent {agent!r}: action {value} is outside its space {space!r}")
        return checked

    @partial(jax.jit, static_argnames=("self",))
    def _reset(self, key: jax.Array, params: Any):
        return self.reset_env(key, params)

    @partial(jax.jit, static_argnames=("self",))
    def _step(self, key: jax.Array, state: Any, actions: dict[str, jax.Array], params: Any):
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, rewards, terminated, info = self.step_env(key_step, state, actions, params)
        terminated = jnp.asarray(terminated, bool)
        truncated = jnp.asarray(self.is_truncated(state_st, params), bool)
        done = terminated | truncated
        obs_re, state_re = self.reset_env(key_reset, params)
        select = lambda r, s: jax.lax.select(done, r, s)
        state = jax.tree_util.tree_map(select, state_re, state_st)
        obs = jax.tree_util.tree_map(select, obs_re, obs_st)
        dones = {a: done for a in self.agents}
        dones["__all__"] = done
        infos = {**info, "terminated": terminated, "truncated": truncated, "final_observation": obs_st,
                 "final_state": self.get_state(state_st, params)}
        rewards = {a: jnp.asarray(r, jnp.float32) for a, r in rewards.items()}
        return obs, state, rewards, dones, infos

    # --- subclass hooks -------------------------------------------------------------------------------
    def reset_env(self, key: jax.Array, params: Any):
        raise NotImplementedError

    def step_env(self, key: jax.Array, state: Any, actions: dict[str, jax.Array], params: Any):
        raise NotImplementedError

    def get_obs(self, state: Any, params: Any = None) -> dict[str, jax.Array]:
        raise NotImplementedError

    def get_state(self, state: Any, params: Any = None) -> jax.Array:
        """Global state for a centralised critic [state_dim]; default: every agent's observation concatenated."""
        obs = self.get_obs(state, self.default_params if params is None else params)
        return jnp.concatenate([jnp.ravel(obs[a]) for a in self.agents])

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        return state.time >= params.max_steps_in_episode

    def observation_space(self, agent: str, params: Any = None):
        raise NotImplementedError

    def action_space(self, agent: str, params: Any = None):
        raise NotImplementedError

    def validate_params(self, params: Any) -> Any:
        return params

    def make_params(self, **overrides: Any) -> Any:
        """Class defaults with fields replaced (type-checked as in `envs.environment.Environment.make_params`)."""
        return Environment.make_params(self, **overrides)

    def policies(self) -> dict[str, Any]:
        """Named reference policies `policy(key, obs dict, state, params) -> actions dict`."""
        return {}

    def __repr__(self) -> str:
        return f"{self.name}()"


class JaxMARLAdapter(MultiAgentEnv):
    """A JaxMARL environment seen through our multi-agent API, so it trains with our agents unmodified.

    JaxMARL's `step` resets inside and drops the observations before the reset; the adapter calls its
    `step_env` and resets itself (the same logic as JaxMARL's `MultiAgentEnv.step`), so
    `infos["final_observation"]` and `infos["final_state"]` exist. JaxMARL signals only `dones`; with
    `dones_are_truncations=True` (MPE, whose episodes end only at `max_steps`) an ended episode counts as a
    time-limit truncation (the critic bootstraps through it), else as a termination."""

    params_type = type(None)

    def __init__(self, env: Any, dones_are_truncations: bool = False):
        super().__init__(None)
        self.env = env
        self.dones_are_truncations = bool(dones_are_truncations)

    def __hash__(self) -> int:
        return hash((type(self), id(self.env), self.dones_are_truncations))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, JaxMARLAdapter) and other.env is self.env and \
            other.dones_are_truncations == self.dones_are_truncations

    @property
    def name(self) -> str:
        return f"JaxMARL[{type(self.env).__name__}]"

    @property
    def default_params(self) -> Any:
        return None

    @property
    def agents(self) -> list[str]:
        return list(self.env.agents)

    def num_agents_of(self, params: Any) -> int:
        return len(self.env.agents)

    def reset(self, key: jax.Array, params: Any = None):
        return self.env.reset(key)

    def step(self, key: jax.Array, state: Any, actions: dict[str, Any], params: Any = None):
        missing = [a for a in self.agents if a not in actions]
        if missing:
            raise ValueError(f"{self.name}: actions is missing agent(s) {missing}; agents are {self.agents}")
        return self._adapter_step(key, state, actions)

    @partial(jax.jit, static_argnames=("self",))
    def _adapter_step(self, key: jax.Array, state: Any, actions: dict[str, jax.Array]):
        key, key_reset = jax.random.split(key)
        obs_st, state_st, rewards, dones, info = self.env.step_env(key, state, actions)
        obs_re, state_re = self.env.reset(key_reset)
        done = jnp.asarray(dones["__all__"], bool)
        select = lambda r, s: jax.lax.select(done, r, s)
        state = jax.tree_util.tree_map(select, state_re, state_st)
        obs = jax.tree_util.tree_map(select, obs_re, obs_st)
        terminated = jnp.logical_and(done, not self.dones_are_truncations)
        truncated = jnp.logical_and(done, self.dones_are_truncations)
        infos = {**dict(info), "terminated": terminated, "truncated": truncated, "final_observation": obs_st,
                 "final_state": self.get_state(state_st)}
        return obs, state, rewards, dones, infos

    def get_obs(self, state: Any, params: Any = None):
        return self.env.get_obs(state)

    def get_state(self, state: Any, params: Any = None) -> jax.Array:
        if hasattr(self.env, "get_state"):
            return jnp.ravel(self.env.get_state(state))
        obs = self.env.get_obs(state)
        return jnp.concatenate([jnp.ravel(obs[a]) for a in self.agents])

    def observation_space(self, agent: str, params: Any = None):
        return self.env.observation_space(agent)

    def action_space(self, agent: str, params: Any = None):
        return self.env.action_space(agent)


def from_jaxmarl(env: Any, dones_are_truncations: bool = False) -> JaxMARLAdapter:
    """Wrap a JaxMARL environment (`jaxmarl.make(...)`); see `JaxMARLAdapter`."""
    if not (hasattr(env, "agents") and hasattr(env, "step_env") and hasattr(env, "reset")):
        raise TypeError(f"from_jaxmarl needs a JaxMARL MultiAgentEnv (agents, reset, step_env), got "
                        f"{type(env).__name__}")
    return JaxMARLAdapter(env, dones_are_truncations)
