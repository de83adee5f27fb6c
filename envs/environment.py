"""Environment base class with the gymnax 1.x API.

A subclass implements `reset_env` and `step_env` (pure functions of key, state, action and `EnvParams`)
and the spaces; the base class provides the public, jitted `reset` and `step` with auto-reset:

    obs, state = env.reset(key, params)
    obs, state, reward, terminated, truncated, info = env.step(key, state, action, params)

`step` resets an episode that just ended (terminated or truncated) *inside* the same call (through the
`auto_reset` hook, `reset_env` by default), so a `lax.scan`
over steps never has to branch; the observation before the reset is in `info["final_observation"]`
(needed to bootstrap correctly through a time-limit truncation). This is exactly gymnax >= 1.0's contract,
so a gymnax environment and ours are interchangeable in rollout code and in gymnax wrappers.

Differences from gymnax, all additive:
- `step` validates the action's dtype and shape in Python (at trace time, before compilation) and, when the
  action is concrete, rejects NaN/inf with a ValueError. Inside `jit` a non-finite action cannot raise;
  it is flagged in `info["invalid_action"]` instead of being silently turned into a number.
- `validate_params(params)` checks concrete `EnvParams` values and raises ValueError naming the field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any, Generic, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.spaces import Box, Discrete, Space

__all__ = [
    "Environment", "EnvState", "EnvParams", "Box", "Discrete", "Space", "Policy", "is_concrete", "require_scalars",
    "require_episode_steps",
]

# A policy maps (key, obs, state, params) to an action; heuristics and exact references share this signature.
Policy = Callable[[jax.Array, Any, Any, Any], jax.Array]


@struct.dataclass
class EnvState:
    """Minimal state: the step counter within the episode."""

    time: jax.Array


@struct.dataclass
class EnvParams:
    """Minimal params: the time limit (truncation) in steps."""

    max_steps_in_episode: int = 1


TEnvState = TypeVar("TEnvState", bound=EnvState)
TEnvParams = TypeVar("TEnvParams")


def is_concrete(*xs: Any) -> bool:
    """True iff no leaf of `xs` is a JAX tracer (i.e. values can be checked in Python)."""
    return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(xs))


def require_scalars(env_name: str, params: Any, fields: tuple[str, ...], minimum: float = 0.0,
                    inclusive: bool = False) -> None:
    """Raise ValueError unless each named field of `params` is a finite scalar above (or at) `minimum`."""
    for field in fields:
        value = np.asarray(getattr(params, field), np.float64)
        ok = value.ndim == 0 and np.isfinite(value) and (value >= minimum if inclusive else value > minimum)
        if not ok:
            bound = ">=" if inclusive else ">"
            raise ValueError(f"{env_name}: {field} must be a finite scalar {bound} {minimum:g}, got {getattr(params, field)!r}")


def require_episode_steps(env_name: str, params: Any) -> None:
    """Raise ValueError unless params.max_steps_in_episode is an integer >= 1."""
    steps = np.asarray(params.max_steps_in_episode)
    if steps.ndim != 0 or not np.isfinite(steps) or steps < 1 or steps != np.floor(steps):
        raise ValueError(f"{env_name}: max_steps_in_episode must be an integer >= 1, got {params.max_steps_in_episode}")


class Environment(Generic[TEnvState, TEnvParams]):
    """Abstract pure-JAX environment (gymnax 1.x API)."""

    #: the `EnvParams` dataclass of this environment; `params_type()` gives the class defaults
    params_type: type

    def __init__(self, default_params: TEnvParams | None = None):
        """`default_params`: the params used when `reset`/`step` get `params=None` (set by `envs.make`)."""
        self._default_params = default_params

    # Environments are static arguments of jitted functions. Two instances of the same class compare equal so
    # that `envs.make` called twice reuses compiled programs: all behaviour that reaches traced code comes from
    # the class and from the params, which are always passed in explicitly (the default params are
    # substituted in Python before the jitted call, as an argument, never baked into a trace).
    def __hash__(self) -> int:
        return hash(type(self))

    def __eq__(self, other: object) -> bool:
        return type(self) is type(other)

    @property
    def default_params(self) -> TEnvParams:
        """The params this instance was made with (`envs.make`), else the class defaults."""
        return self.params_type() if self._default_params is None else self._default_params

    # --- public API -----------------------------------------------------------------------------------
    def step(
        self,
        key: jax.Array,
        state: TEnvState,
        action: Any,
        params: TEnvParams | None = None,
    ) -> tuple[Any, TEnvState, jax.Array, jax.Array, jax.Array, dict[str, Any]]:
        """One transition with auto-reset.

        Returns:
            obs: next observation (the reset observation if the episode ended),
            state: next state (reset if the episode ended),
            reward: float32 scalar,
            terminated: bool scalar, natural end of the episode (do not bootstrap),
            truncated: bool scalar, time limit reached (bootstrap from `info["final_observation"]`),
            info: dict with at least "terminated", "truncated", "final_observation", "invalid_action".
        """
        if params is None:
            params = self.default_params
        action = self.action_space(params).check_action(action, self.name)
        return self._step(key, state, action, params)

    def reset(self, key: jax.Array, params: TEnvParams | None = None) -> tuple[Any, TEnvState]:
        """Start an episode. Returns (obs, state)."""
        if params is None:
            params = self.default_params
        return self._reset(key, params)

    # --- jitted implementations -------------------------------------------------------------------------
    @partial(jax.jit, static_argnames=("self",))
    def _step(self, key: jax.Array, state: TEnvState, action: jax.Array, params: TEnvParams):
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, terminated, info = self.step_env(key_step, state, action, params)
        terminated = jnp.asarray(terminated, dtype=bool)
        truncated = jnp.asarray(self.is_truncated(state_st, params), dtype=bool)
        done = jnp.logical_or(terminated, truncated)
        obs_re, state_re = self.auto_reset(key_reset, obs_st, state_st, params)
        state = jax.tree_util.tree_map(lambda r, s: jax.lax.select(done, r, s), state_re, state_st)
        obs = jax.tree_util.tree_map(lambda r, s: jax.lax.select(done, r, s), obs_re, obs_st)
        if jnp.issubdtype(action.dtype, jnp.floating):
            invalid = jnp.logical_not(jnp.all(jnp.isfinite(action)))
        else:
            invalid = jnp.asarray(False)
        info = {
            **info,
            "terminated": terminated,
            "truncated": truncated,
            "final_observation": obs_st,
            "invalid_action": invalid,
        }
        return obs, state, jnp.asarray(reward, jnp.float32), terminated, truncated, info

    @partial(jax.jit, static_argnames=("self",))
    def _reset(self, key: jax.Array, params: TEnvParams):
        return self.reset_env(key, params)

    # --- subclass hooks -----------------------------------------------------------------------------------
    def step_env(
        self, key: jax.Array, state: TEnvState, action: jax.Array, params: TEnvParams
    ) -> tuple[Any, TEnvState, jax.Array, jax.Array, dict[str, Any]]:
        """Environment-specific transition: (obs, state, reward, terminated, info). No reset here."""
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params: TEnvParams) -> tuple[Any, TEnvState]:
        """Environment-specific reset: (obs, state)."""
        raise NotImplementedError

    def auto_reset(
        self, key: jax.Array, obs_st: Any, state_st: TEnvState, params: TEnvParams
    ) -> tuple[Any, TEnvState]:
        """The (obs, state) that `step` continues from when an episode ends; `reset_env(key)` by default.

        Under `vmap` both branches of the auto-reset are computed every step, so an environment whose
        post-step state already has the law of a reset (i.i.d. instances) may override this to reuse it.
        """
        del obs_st, state_st
        return self.reset_env(key, params)

    def get_obs(self, state: TEnvState, params: TEnvParams) -> jax.Array:
        raise NotImplementedError

    def is_truncated(self, state: TEnvState, params: TEnvParams) -> jax.Array:
        """Time limit: `state.time >= params.max_steps_in_episode`."""
        return state.time >= params.max_steps_in_episode

    def expected_episode_length(self, params: TEnvParams) -> float:
        """Mean number of steps in an episode (sizes rollouts so that they contain whole episodes)."""
        return float(params.max_steps_in_episode)

    def validate_params(self, params: TEnvParams) -> TEnvParams:
        """Check concrete parameter values; raise ValueError naming the field. Returns `params`."""
        return params

    def make_params(self, **overrides: Any) -> TEnvParams:
        """The class defaults with fields replaced, each type-checked, then `validate_params`.

        Raises:
            ValueError: unknown field (the message lists the valid ones) or a value out of range.
            TypeError: a value of the wrong type for its field (e.g. a float for an integer field).
        """
        defaults = self.params_type()
        fields = {f.name for f in dataclasses.fields(defaults)}
        converted = {}
        for field, value in overrides.items():
            if field not in fields:
                raise ValueError(f"{self.name}: unknown parameter {field!r}; valid parameters: {sorted(fields)}")
            converted[field] = _coerce_field(self.name, field, value, getattr(defaults, field))
        return self.validate_params(defaults.replace(**converted))

    # --- policies -----------------------------------------------------------------------------------------
    #: name of the policy in `policies()` that is optimal or an upper bound (scores are reported against it)
    reference_policy: str | None = None

    def policies(self) -> dict[str, Policy]:
        """Named baseline policies `policy(key, obs, state, params) -> action`; always includes "random"."""
        return {"random": lambda key, obs, state, params: self.action_space(params).sample(key)}

    # --- description ----------------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return type(self).__name__

    @property
    def num_actions(self) -> int:
        """Number of discrete actions, or the action dimension of a Box."""
        space = self.action_space(self.default_params)
        if isinstance(space, Discrete):
            return space.n
        return int(jnp.prod(jnp.asarray(space.shape)))

    def action_space(self, params: TEnvParams | None = None) -> Space:
        raise NotImplementedError

    def observation_space(self, params: TEnvParams | None = None) -> Space:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{self.name}()"


def _coerce_field(env_name: str, field: str, value: Any, default: Any) -> Any:
    """Type-check one override against the type of its default value."""
    kind = type(default)
    where = f"{env_name}: parameter {field!r}"
    if isinstance(default, str):
        if not isinstance(value, str):
            raise TypeError(f"{where} must be a str, got {type(value).__name__}")
        return value
    if isinstance(value, (bool, np.bool_)) and kind is not bool:
        raise TypeError(f"{where} must be a number, got bool {value!r}")
    if isinstance(default, bool):
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError(f"{where} must be a bool, got {type(value).__name__}")
        return bool(value)
    if isinstance(default, (int, np.integer)):
        if not isinstance(value, (int, np.integer)):
            raise TypeError(f"{where} must be an int, got {type(value).__name__} {value!r}")
        return int(value)
    if isinstance(value, (str, bytes)) or value is None:
        raise TypeError(f"{where} must be a number or an array of numbers, got {type(value).__name__}")
    if isinstance(default, (float, np.floating)) and isinstance(value, (int, float, np.integer, np.floating)):
        return float(value)
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError) as err:
        raise TypeError(f"{where} must be a number or an array of numbers, got {value!r}") from err
    return jnp.asarray(array)
