"""IPPO and MAPPO: the on-policy loop (`train.on_policy`) on a multi-agent environment, each agent a lane.

`num_envs` multi-agent environments of K agents give N K lanes: one shared actor-critic (parameter sharing, a one-hot
agent id appended, as in MAPPO's reference implementation) acts for every lane, and the PPO iteration of
`train.on_policy` (rollout scan, GAE per lane, epochs of shuffled minibatches over the N K T transitions) runs
unchanged on them; only the environment step (`_lane_step`) differs. An episode ends for all K lanes of an
environment at once.

Lane observation, [o + K] for IPPO: (o_i, id_i). For MAPPO, [o + K + S + K]: (o_i, id_i | s, id_i), where s is the
environment's global state (`get_state`); the actor reads the part before the bar and the critic the part after it
(`ActorCritic.actor_width`), so the critic is centralised and execution stays decentralised.

Rewards are per agent (lane). The metrics are the on-policy loop's, with `reward_mean` the team reward per step
(`infos["team_reward"]` where the env gives it, else the agents' mean) and `reference_fraction` as in
`train.multi_agent` (vs `env.reference_value`, e.g. WMMSE on ic-power; NaN without it).
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from envs.multi_agent import stack, unstack
from jaxdiff_rl.agents.ppo import MULTI_AGENT_ON_POLICY, ActorCritic, PPOConfig, PPOHparams, validate_ppo_hparams
from jaxdiff_rl.train import on_policy
from jaxdiff_rl.train.multi_agent import evaluate_policy, multi_agent_spec, team_reward
from jaxdiff_rl.train.off_policy import ActionSpec, Trainer, _to_env_action

__all__ = ["make_trainer", "lane_observations"]


def lane_observations(local: jax.Array, global_state: jax.Array | None) -> jax.Array:
    """Lane inputs [N K, width]: local [N, K, o] (and, for MAPPO, global states [N, S]) -> IPPO [N K, o + K],
    MAPPO [N K, o + K + S + K] (see the module docstring)."""
    n, k, _ = local.shape
    ids = jnp.broadcast_to(jnp.eye(k, dtype=jnp.float32), (n, k, k))
    parts = [local, ids]
    if global_state is not None:
        parts += [jnp.broadcast_to(global_state[:, None, :], (n, k, global_state.shape[-1])), ids]
    return jnp.concatenate(parts, axis=-1).reshape(n * k, -1)


class _Env:
    """What `_lane_step` needs besides the on-policy context: the env, its agents and the action mapping."""

    def __init__(self, env: Any, spec: ActionSpec, num_envs: int, centralised: bool):
        self.env, self.spec, self.num_envs, self.centralised = env, spec, num_envs, centralised
        self.agents = list(env.agents)
        self.k = len(self.agents)

    def flat(self, tree: dict) -> jax.Array:  # one env's {agent: obs} -> [K, o]
        return stack(tree, self.agents).reshape(self.k, -1).astype(jnp.float32)

    def lanes(self, obs: dict, env_state: Any, env_params: Any) -> jax.Array:
        glob = jax.vmap(lambda s: jnp.asarray(self.env.get_state(s, env_params), jnp.float32))(env_state) \
            if self.centralised else None
        return lane_observations(jax.vmap(self.flat)(obs), glob)

    def actions(self, action: jax.Array) -> dict[str, jax.Array]:
        """Lane actions [N K] (int) or [N K, A] in the actor's space -> {agent: [N, ...]} in the env's spaces."""
        if self.spec.discrete:
            return unstack(jnp.swapaxes(action.reshape(self.num_envs, self.k), 0, 1).astype(jnp.int32), self.agents)
        shape = tuple(self.env.action_space(self.agents[0]).shape)
        env_action = _to_env_action(self.spec, jnp.clip(action, -1.0, 1.0)).reshape(self.num_envs, self.k, *shape)
        return unstack(jnp.swapaxes(env_action, 0, 1), self.agents)


def _lane_step(menv: _Env, ctx: Any, env_params: Any, rs: on_policy.OnPolicyState, key: jax.Array):
    """One step of the N environments for all N K lanes (the drop-in for `on_policy._env_step`)."""
    n, k = menv.num_envs, menv.k
    k_act, k_env = jax.random.split(key)
    stored, action, log_prob, value = on_policy._policy_act(ctx, rs.params, k_act, rs.obs)
    reference = jax.vmap(lambda s: menv.env.reference_value(s, env_params))(rs.env_state) \
        if hasattr(menv.env, "reference_value") else jnp.full((n,), jnp.nan)
    actions = menv.actions(action)
    obs, env_state, rewards, dones, infos = jax.vmap(lambda kk, s, a: menv.env.step(kk, s, a, env_params))(
        jax.random.split(k_env, n), rs.env_state, actions)
    per_agent = stack(rewards, menv.agents).T.astype(jnp.float32)  # [N, K]
    team = team_reward(per_agent, infos)
    done = jnp.repeat(jnp.asarray(dones["__all__"], bool), k)
    terminated = jnp.repeat(jnp.asarray(infos["terminated"], bool), k)
    final_local = jax.vmap(menv.flat)(infos["final_observation"])
    final = lane_observations(final_local, jnp.asarray(infos["final_state"], jnp.float32) if menv.centralised else None)
    reward = per_agent.reshape(n * k)
    running = rs.episode_return + reward
    step = on_policy.RolloutBatch(rs.obs, stored, log_prob, value, final, reward, terminated.astype(jnp.float32),
                                  done.astype(jnp.float32))
    stats = {"finished_return": jnp.where(done, running, 0.0), "optimum": jnp.full((n * k,), jnp.nan),
             "team_reward": team, "reference": reference}
    rs = rs.replace(env_state=env_state, obs=menv.lanes(obs, env_state, env_params),
                    episode_return=jnp.where(done, 0.0, running), env_steps=rs.env_steps + n)
    return rs, (step, stats)


def make_trainer(config: PPOConfig, env: Any, env_params: Any) -> Trainer:
    """IPPO / MAPPO on a multi-agent env (ours or JaxMARL's through `envs.multi_agent.from_jaxmarl`); validated
    before anything compiles. The returned Trainer's config is `config` (num_envs = environments, not lanes)."""
    if config.algo not in MULTI_AGENT_ON_POLICY:
        raise ValueError(f"{config.algo} is single-agent; on a multi-agent environment use {MULTI_AGENT_ON_POLICY}")
    if not hasattr(env, "agents"):
        raise ValueError(f"{config.algo} needs a multi-agent environment (envs.multi_agent_names(), or JaxMARL's through "
                         f"from_jaxmarl); got {getattr(env, 'name', type(env).__name__)}: use algo='ppo'")
    spec, k = multi_agent_spec(env, env_params)
    on_policy._check_env(config, spec)
    centralised = config.algo == "mappo"
    menv = _Env(env, spec, config.num_envs, centralised)
    lanes = config.num_envs * k
    try:
        lane_config = config.replace(num_envs=lanes, total_timesteps=config.num_iterations * lanes * config.num_steps)
    except ValueError as exc:
        raise ValueError(f"{config.algo} with {k} agents x {config.num_envs} envs = {lanes} lanes: {exc}") from None
    local_dim = spec.obs_dim + k
    example_state = jax.eval_shape(lambda kk: env.reset(kk, env_params), jax.random.PRNGKey(0))[1]
    state_dim = int(np.prod(jax.eval_shape(lambda s: env.get_state(s, env_params), example_state).shape)) \
        if centralised else 0
    width = local_dim + (state_dim + k if centralised else 0)
    lane_spec = spec._replace(obs_dim=width)
    net = ActorCritic(spec.dim, spec.discrete, tuple(config.hidden_dims), config.activation,
                      actor_width=local_dim if centralised else None)
    ctx = on_policy._Ctx(lane_config, env, lane_spec, net, step_fn=partial(_lane_step, menv))
    default_env_params = env_params

    def init(key: jax.Array, hparams: PPOHparams, env_params: Any = None) -> on_policy.OnPolicyState:
        env_params = default_env_params if env_params is None else env_params
        validate_ppo_hparams(hparams)
        key = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        k_net, k_env, k_run = jax.random.split(key, 3)
        params = on_policy._policy_init(ctx, k_net)
        obs, env_state = jax.vmap(lambda kk: env.reset(kk, env_params))(jax.random.split(k_env, config.num_envs))
        return on_policy.OnPolicyState(
            params=params, opt_state=on_policy._optimizer(lane_config, hparams).init(params), env_state=env_state,
            obs=menv.lanes(obs, env_state, env_params), episode_return=jnp.zeros(lanes), key=k_run,
            iteration=jnp.int32(0), env_steps=jnp.int32(0), updates=jnp.int32(0))

    def run(state: on_policy.OnPolicyState, hparams: PPOHparams, num_iterations: int, env_params: Any = None):
        env_params = default_env_params if env_params is None else env_params
        validate_ppo_hparams(hparams)
        return jax.lax.scan(partial(on_policy._iteration, ctx, hparams, env_params), state, None,
                            length=num_iterations)

    def train(key: jax.Array, hparams: PPOHparams, env_params: Any = None):
        return run(init(key, hparams, env_params), hparams, config.num_iterations, env_params)

    def evaluate(state: on_policy.OnPolicyState, key: jax.Array, hparams: PPOHparams, num_steps: int,
                 env_params: Any = None, num_envs: int | None = None):
        """Greedy joint policy (argmax / the Gaussian's mean) in fresh environments; see
        `train.multi_agent.evaluate_policy`."""
        env_params = default_env_params if env_params is None else env_params
        n = config.num_envs if num_envs is None else num_envs
        eval_env = _Env(env, spec, n, centralised)

        def policy(k_act, local, env_state):
            glob = jax.vmap(lambda s: jnp.asarray(env.get_state(s, env_params), jnp.float32))(env_state) \
                if centralised else None
            action = on_policy._policy_greedy(ctx, state.params, k_act, lane_observations(local, glob))
            return eval_env.actions(action)

        return evaluate_policy(env, env_params, policy, key, num_steps, n)

    return Trainer(config, spec, init, run, train, evaluate)


def make_train(config: PPOConfig, env: Any, env_params: Any) -> Callable:
    """`train(key, hparams, env_params=None) -> (OnPolicyState, metrics)`: a whole run, jittable end to end."""
    return make_trainer(config, env, env_params).train
