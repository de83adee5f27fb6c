"""mc-access: discrete multi-user channel access (multi-agent, JaxMARL API; the QMIX setting).

N users share C orthogonal subchannels. Every slot user n picks an action in {0, 1, ..., C}: 0 = stay idle,
c = transmit on subchannel c. A subchannel chosen by exactly one user carries that user's rate
log2(1 + snr g_nc) (bit/s/Hz); a subchannel chosen by two or more users is a collision and carries nothing for any
of them. The power gains g_nc ~ Exp(1) (Rayleigh) are redrawn i.i.d. every slot; `snr_db` is the mean SNR.
Every agent receives the team reward (the sum rate), so the game is cooperative.

Local observation of user n, shape [C + 2]: [log2(1 + snr g_n1) / 5, ..., log2(1 + snr g_nC) / 5 (its own rates
on each subchannel this slot), whether its last transmission succeeded, whether it collided]. Global state
(`get_state`): every user's rates [N C] / 5 and the last success / collision flags [2N].

Reference: `best_assignment` enumerates all (C + 1)^N joint actions (small N, C), the exact optimum of the slot
(no collisions in it: each subchannel to at most one user, i.e. a maximum-weight matching); `optimal_value` gives
its sum rate. Episodes of `max_steps_in_episode` slots end by truncation.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.channels import db_to_linear
from envs.environment import require_episode_steps, require_scalars
from envs.multi_agent import MultiAgentEnv, stack, unstack
from envs.spaces import Discrete

__all__ = ["MCAccess", "MCAccessParams", "MCAccessState", "access_rates", "best_assignment", "MAX_ENUMERATION"]

MAX_ENUMERATION = 200_000  # (C + 1)^N joint actions enumerated by the exact reference


@struct.dataclass
class MCAccessParams:
    """mc-access parameters: snr_db (mean SNR, dB), max_steps_in_episode, num_users N >= 2 and num_channels C >= 1
    (static)."""

    snr_db: Any = 10.0
    max_steps_in_episode: Any = 16
    num_users: int = struct.field(pytree_node=False, default=4)
    num_channels: int = struct.field(pytree_node=False, default=3)


@struct.dataclass
class MCAccessState:
    rates: jax.Array  # [N, C] achievable rate of user n alone on subchannel c (bit/s/Hz)
    success: jax.Array  # [N] last slot's transmission went through
    collided: jax.Array  # [N] last slot's transmission collided
    time: jax.Array


def access_rates(choice: jax.Array, rates: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-user rates [.., N] and collision flags [.., N] for choices [.., N] in {0..C} and rates [.., N, C]."""
    c = rates.shape[-1]
    onehot = jax.nn.one_hot(choice - 1, c, dtype=jnp.float32)  # idle (0) -> all zeros
    load = jnp.sum(onehot, axis=-2, keepdims=True)  # [.., 1, C] users per subchannel
    alone = jnp.sum(onehot * (load == 1), axis=-1)
    collided = (choice > 0) & (alone == 0)
    return jnp.sum(onehot * rates, axis=-1) * alone, collided


def best_assignment(rates: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Exact optimum by enumeration: rates [N, C] -> (choices [N] int32 in {0..C}, sum rate)."""
    n, c = rates.shape
    if (c + 1) ** n > MAX_ENUMERATION:
        raise ValueError(f"best_assignment: (C + 1)^N = {(c + 1) ** n} joint actions exceed {MAX_ENUMERATION}")
    joint = jnp.asarray(np.array(np.unravel_index(np.arange((c + 1) ** n), (c + 1,) * n)).T, jnp.int32)
    values = jnp.sum(access_rates(joint, rates[None])[0], axis=-1)
    best = jnp.argmax(values)
    return joint[best], values[best]


class MCAccess(MultiAgentEnv):
    """Multi-user channel access; see the module docstring."""

    params_type = MCAccessParams

    @property
    def name(self) -> str:
        return "MCAccess"

    def num_agents_of(self, params: MCAccessParams) -> int:
        return int(params.num_users)

    @property
    def agents(self) -> list[str]:
        return [f"user_{i}" for i in range(self.num_agents)]

    def validate_params(self, params: MCAccessParams) -> MCAccessParams:
        for field, low in (("num_users", 2), ("num_channels", 1)):
            value = getattr(params, field)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= 256:
                raise ValueError(f"MCAccess: {field} must be an integer in [{low}, 256], got {value!r}")
        require_scalars("MCAccess", params, ("snr_db",), minimum=-np.inf)
        require_episode_steps("MCAccess", params)
        return params

    def sample_rates(self, key: jax.Array, params: MCAccessParams) -> jax.Array:
        gains = jax.random.exponential(key, (params.num_users, params.num_channels))
        return jnp.log2(1.0 + db_to_linear(params.snr_db) * gains)

    def get_obs(self, state: MCAccessState, params: MCAccessParams | None = None) -> dict[str, jax.Array]:
        local = jnp.concatenate([state.rates / 5.0, state.success[:, None].astype(jnp.float32),
                                 state.collided[:, None].astype(jnp.float32)], axis=-1)
        return unstack(local, self.agents)

    def get_state(self, state: MCAccessState, params: MCAccessParams | None = None) -> jax.Array:
        return jnp.concatenate([state.rates.reshape(-1) / 5.0, state.success.astype(jnp.float32),
                                state.collided.astype(jnp.float32)])

    def reset_env(self, key: jax.Array, params: MCAccessParams):
        n = params.num_users
        state = MCAccessState(rates=self.sample_rates(key, params), success=jnp.zeros(n, bool),
                              collided=jnp.zeros(n, bool), time=jnp.int32(0))
        return self.get_obs(state, params), state

    def step_env(self, key: jax.Array, state: MCAccessState, actions: dict[str, jax.Array], params: MCAccessParams):
        choice = jnp.clip(stack(actions, self.agents).astype(jnp.int32), 0, params.num_channels)
        user_rates, collided = access_rates(choice, state.rates)
        reward = jnp.sum(user_rates)
        next_state = MCAccessState(rates=self.sample_rates(key, params), success=user_rates > 0, collided=collided,
                                   time=state.time + 1)
        info = {"user_rates": user_rates, "collisions": jnp.sum(collided), "sum_rate": reward}
        return self.get_obs(next_state, params), next_state, {a: reward for a in self.agents}, False, info

    def optimal_value(self, state: MCAccessState, params: MCAccessParams) -> jax.Array:
        return best_assignment(state.rates)[1]

    def reference_value(self, state: MCAccessState, params: MCAccessParams) -> jax.Array:
        """The enumerated optimum (the loop's `reference_fraction` divides by it)."""
        return self.optimal_value(state, params)

    def policies(self) -> dict[str, Any]:
        def best_channel(key, obs, state, params):  # every user on its own best subchannel (collides often)
            return unstack(1 + jnp.argmax(state.rates, axis=-1).astype(jnp.int32), self.agents)

        return {
            "optimal": lambda key, obs, state, params: unstack(best_assignment(state.rates)[0], self.agents),
            "best_channel": best_channel,
            "random": lambda key, obs, state, params: unstack(
                jax.random.randint(key, (params.num_users,), 0, params.num_channels + 1, jnp.int32), self.agents),
        }

    def observation_space(self, agent: str, params: MCAccessParams | None = None):
        from envs.spaces import Box

        params = self.default_params if params is None else params
        return Box(0.0, jnp.inf, (params.num_channels + 2,))

    def action_space(self, agent: str, params: MCAccessParams | None = None) -> Discrete:
        params = self.default_params if params is None else params
        return Discrete(params.num_channels + 1)
