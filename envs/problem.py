"""One-shot optimisation problems as environments (MSR, CO, NU): every step is a fresh i.i.d. problem instance.

A subclass provides `sample_instance(key, params) -> state` (with `time = 0`), `get_obs(state, params)` and
`evaluate(state, action, params) -> (reward, info)`. An episode is `params.max_steps_in_episode` instances and
ends with `terminated=True` (a fixed-horizon problem, not a time-limit truncation). Because instances are i.i.d.,
the auto-reset continues from the instance the step itself drew instead of drawing another one (halving the
random numbers per step under vmap, where both branches of the reset are computed).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from envs.environment import Environment

__all__ = ["ProblemEnvironment"]


class ProblemEnvironment(Environment):
    """Base of the one-shot problem environments; see the module docstring."""

    def sample_instance(self, key: jax.Array, params: Any) -> Any:
        raise NotImplementedError

    def evaluate(self, state: Any, action: jax.Array, params: Any) -> tuple[jax.Array, dict[str, Any]]:
        """Reward of `action` on the instance `state`, and the info dict of the step."""
        raise NotImplementedError

    def reset_env(self, key: jax.Array, params: Any) -> tuple[jax.Array, Any]:
        state = self.sample_instance(key, params)
        return self.get_obs(state, params), state

    def step_env(self, key: jax.Array, state: Any, action: jax.Array, params: Any):
        reward, info = self.evaluate(state, action, params)
        next_state = self.sample_instance(key, params).replace(time=state.time + 1)
        terminated = next_state.time >= params.max_steps_in_episode
        return self.get_obs(next_state, params), next_state, reward, terminated, info

    def auto_reset(self, key: jax.Array, obs_st: Any, state_st: Any, params: Any):
        """The instance `step_env` just drew is a valid episode start: restart the clock only."""
        del key
        return obs_st, state_st.replace(time=jnp.zeros_like(state_st.time))

    def is_truncated(self, state: Any, params: Any) -> jax.Array:
        return jnp.asarray(False)
