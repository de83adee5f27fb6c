"""The multi-agent off-policy loop (MADDPG, DM-MADDPG, mean-field MFAC and DM-MFAC; QMIX and DM-QMIX for discrete
actions): `make_trainer(config, env, env_params) -> Trainer`.

The same shape as `train.off_policy`: one jitted `lax.scan` over iterations; each collects `steps_per_iter`
vectorised joint steps of `num_envs` environments (`vmap`) into the device replay buffer, then runs
`updates_per_iter` updates. It returns the same `Trainer` (init / run / train / evaluate), so the runner, sweeps,
checkpoints and plots need no special case.

Environments: ours (`envs.multi_agent.MultiAgentEnv`) or JaxMARL's through `envs.multi_agent.from_jaxmarl`; every
agent must have the same spaces (MADDPG: continuous Box actions, the loop maps [-1, 1] affinely onto the Box; QMIX:
Discrete actions, joint actions [N, K] int32).
The buffer stores {"local": [N, K, o], "global": [N, S]} observations (the global state from `env.get_state`, the
one the centralised critic sees), joint actions [N, K, A] and per-agent rewards [N, K]. Mean-field algorithms
(`agents/mean_field.py`) store the local observations with the previous slot's mean action appended,
[N, K, o + A] (`mean_field.augment`), and a [N, 1] placeholder instead of the global state, so no stored or
computed array grows faster than K.

Per-iteration metrics: `episodes`, `return_mean` (finished episodes' return, averaged over agents), `reward_mean`
(per step and agent; `infos["team_reward"]` where the env gives one, e.g. ic-power with difference rewards, else
the agents' mean reward), `reference_fraction` = sum of the team reward / sum of `env.reference_value` (WMMSE on
ic-power; NaN where the env has none), `env_steps`, `updates`, `updating` and the losses.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from envs.multi_agent import stack, stacked_spaces, unstack
from jaxdiff_rl.agents import maddpg, mean_field, qmix
from jaxdiff_rl.agents.base import AgentState, Hparams, validate_hparams
from jaxdiff_rl.train.buffer import BufferState, Transition, buffer_add, buffer_init, buffer_sample
from jaxdiff_rl.train.off_policy import ActionSpec, Trainer

__all__ = ["MARunnerState", "make_trainer", "make_train", "multi_agent_spec", "evaluate_policy", "evaluate_reference",
           "team_reward"]


@struct.dataclass
class MARunnerState:
    """agent: AgentState; buffer; env_state [N]; obs [N, K, o]; episode_return [N] (team return, agent mean);
    mean_action [N, A]: the last slot's mean action over agents in [-1, 1] (zero after a reset; mean-field
    algorithms condition on it, the others ignore it); key: raw PRNG key; iteration, env_steps: int32."""

    agent: AgentState
    buffer: BufferState
    env_state: Any
    obs: jax.Array
    episode_return: jax.Array
    mean_action: jax.Array
    key: jax.Array
    iteration: jax.Array
    env_steps: jax.Array


def multi_agent_spec(env: Any, env_params: Any) -> tuple[ActionSpec, int]:
    """(ActionSpec of one agent, number of agents); ValueError for unbounded action boxes."""
    obs_space, act_space = stacked_spaces(env, env_params)
    obs_dim = int(np.prod(obs_space.shape)) if tuple(obs_space.shape) else 1
    if hasattr(act_space, "n"):
        return ActionSpec(True, int(act_space.n), obs_dim), len(env.agents)
    shape = tuple(act_space.shape)
    dim = int(np.prod(shape)) if shape else 1
    low = np.broadcast_to(np.asarray(act_space.low, np.float32), shape).reshape(-1)
    high = np.broadcast_to(np.asarray(act_space.high, np.float32), shape).reshape(-1)
    if not (np.all(np.isfinite(low)) and np.all(np.isfinite(high))):
        raise ValueError(f"continuous agents need a bounded action Box, got low={low}, high={high}")
    return ActionSpec(False, dim, obs_dim, tuple(low.tolist()), tuple(high.tolist())), len(env.agents)


def _act(config: maddpg.MAConfig, spec: ActionSpec, actor: Any, key: jax.Array, local: jax.Array, hparams: Hparams,
         explore: bool) -> jax.Array:
    """Joint actions of every algorithm: [B, K, A] in [-1, 1] (MADDPG family, Gaussian noise when exploring) or
    [B, K] int32 (QMIX: epsilon-greedy; DM-QMIX: a sample of the diffusion policy, its argmax when greedy)."""
    if config.algo == "qmix":
        return qmix.policy(config, actor, key, local, spec.dim, hparams.epsilon if explore else 0.0)
    if config.algo == "dm_qmix":
        return qmix.dm_policy(config, actor, key, local, spec.dim, greedy=not explore)
    k_act, k_noise = jax.random.split(key)
    forward = mean_field.policy if config.algo in maddpg.MEAN_FIELD_ALGORITHMS else maddpg.policy
    action = forward(config, actor, k_act, local, spec.dim, greedy=not explore)
    if not explore:
        return action
    return jnp.clip(action + hparams.explore_noise * jax.random.normal(k_noise, action.shape), -1.0, 1.0)


_INIT = {"maddpg": maddpg.init, "dm_maddpg": maddpg.init, "qmix": qmix.init, "dm_qmix": qmix.dm_init,
         "mfac": mean_field.init, "dm_mfac": mean_field.init}
_UPDATE = {"maddpg": maddpg.update, "dm_maddpg": maddpg.update, "qmix": qmix.update, "dm_qmix": qmix.dm_update,
           "mfac": mean_field.update, "dm_mfac": mean_field.update}


class _Ctx(NamedTuple):
    config: maddpg.MAConfig
    env: Any
    spec: ActionSpec
    num_agents: int


def _to_env(spec: ActionSpec, action: jax.Array) -> jax.Array:
    low, high = jnp.asarray(spec.low), jnp.asarray(spec.high)
    return low + 0.5 * (action + 1.0) * (high - low)


def _env_actions(ctx: _Ctx, action: jax.Array) -> dict[str, jax.Array]:
    """[K, A] in [-1, 1] -> {agent: action in its Box, in the Box's shape}; discrete: [K] int -> {agent: int}."""
    if ctx.spec.discrete:
        return unstack(action.astype(jnp.int32), list(ctx.env.agents))
    space_shape = ctx.env.action_space(ctx.env.agents[0]).shape
    return unstack(_to_env(ctx.spec, action).reshape((ctx.num_agents,) + tuple(space_shape)), list(ctx.env.agents))


def _vector_step(ctx: _Ctx, env_params: Any, keys: jax.Array, env_state: Any, action: jax.Array):
    """Step N environments with joint actions [N, K, A]: (local obs [N, K, o], state, rewards [N, K], terminated [N],
    done [N], final local obs [N, K, o], final global state [N, S], reference value [N], team reward [N])."""
    agents = list(ctx.env.agents)

    def one(key, state, act):
        reference = ctx.env.reference_value(state, env_params) if hasattr(ctx.env, "reference_value") else jnp.nan
        obs, state, rewards, dones, infos = ctx.env.step(key, state, _env_actions(ctx, act), env_params)
        flat = lambda tree: stack(tree, agents).reshape(len(agents), -1).astype(jnp.float32)
        rewards = stack(rewards, agents).astype(jnp.float32)
        return (flat(obs), state, rewards, jnp.asarray(infos["terminated"], bool),
                jnp.asarray(dones["__all__"], bool), flat(infos["final_observation"]),
                jnp.asarray(infos["final_state"], jnp.float32), jnp.asarray(reference, jnp.float32),
                team_reward(rewards, infos))

    return jax.vmap(one)(keys, env_state, action)


def _mean_field(ctx: _Ctx) -> bool:
    return ctx.config.algo in maddpg.MEAN_FIELD_ALGORITHMS


def team_reward(rewards: jax.Array, infos: dict[str, Any], axis: int = -1) -> jax.Array:
    """The team's reward: `infos["team_reward"]` if the env reports it, else the mean of `rewards` over the agent
    `axis`."""
    return jnp.asarray(infos["team_reward"], jnp.float32) if "team_reward" in infos else jnp.mean(rewards, axis=axis)


def _global(ctx: _Ctx, env_params: Any, env_state: Any) -> jax.Array:
    """[N, S] global states; a [N, 1] placeholder for mean-field algorithms (their critics never read it)."""
    if _mean_field(ctx):
        return jnp.zeros((jax.tree_util.tree_leaves(env_state)[0].shape[0], 1), jnp.float32)
    return jax.vmap(lambda s: jnp.asarray(ctx.env.get_state(s, env_params), jnp.float32))(env_state)


def _agent_obs(ctx: _Ctx, local: jax.Array, mean_action: jax.Array) -> jax.Array:
    """What the agents see: [N, K, o], or [N, K, o + A] with the mean action appended (mean-field algorithms)."""
    return mean_field.augment(local, mean_action) if _mean_field(ctx) else local


def _env_step(ctx: _Ctx, hparams: Hparams, env_params: Any, carry: tuple, key: jax.Array):
    rs, buffer = carry
    config, spec, n = ctx.config, ctx.spec, ctx.config.num_envs
    k_act, k_rand, k_env = jax.random.split(key, 3)
    seen = _agent_obs(ctx, rs.obs, rs.mean_action)
    policy_action = _act(config, spec, rs.agent.actor, k_act, seen, hparams, explore=True)
    if spec.discrete:
        random_action = jax.random.randint(k_rand, policy_action.shape, 0, spec.dim, jnp.int32)
    else:
        random_action = jax.random.uniform(k_rand, policy_action.shape, minval=-1.0, maxval=1.0)
    action = jnp.where(rs.env_steps < config.learning_starts, random_action, policy_action)
    global_state = _global(ctx, env_params, rs.env_state)
    obs, env_state, rewards, terminated, done, final_obs, final_state, reference, team = _vector_step(
        ctx, env_params, jax.random.split(k_env, n), rs.env_state, action)
    mean_action = jnp.zeros((n, 1)) if spec.discrete else jnp.mean(action, axis=1)
    if _mean_field(ctx):
        final_state = jnp.zeros_like(global_state)
    transition = Transition(obs={"local": seen, "global": global_state}, action=action, reward=rewards,
                            next_obs={"local": _agent_obs(ctx, final_obs, mean_action), "global": final_state},
                            terminated=terminated, done=done)
    running = rs.episode_return + team
    stats = {"episodes": jnp.sum(done.astype(jnp.float32)), "return_sum": jnp.sum(jnp.where(done, running, 0.0)),
             "reward_sum": jnp.sum(team), "reference_sum": jnp.sum(reference)}
    rs = rs.replace(env_state=env_state, obs=obs, episode_return=jnp.where(done, 0.0, running),
                    mean_action=jnp.where(done[:, None], 0.0, mean_action), env_steps=rs.env_steps + n)
    return (rs, buffer_add(buffer, transition)), stats


def _iteration(ctx: _Ctx, hparams: Hparams, env_params: Any, rs: MARunnerState, _: Any):
    config = ctx.config
    key, k_collect, k_update = jax.random.split(rs.key, 3)
    (rs, buffer), stats = jax.lax.scan(partial(_env_step, ctx, hparams, env_params), (rs, rs.buffer),
                                       jax.random.split(k_collect, config.steps_per_iter))
    ready = (buffer.size * config.num_envs >= config.batch_size) & (rs.env_steps >= config.learning_starts)

    def gradient_step(agent, kk):
        k_sample, k_up = jax.random.split(kk)
        batch = buffer_sample(buffer, k_sample, config.batch_size, 1, hparams.gamma)
        return _UPDATE[config.algo](k_up, config, agent, batch, hparams, ctx.spec.dim)

    def updates(agent):
        agent, metrics = jax.lax.scan(gradient_step, agent, jax.random.split(k_update, config.updates_per_iter))
        return agent, jax.tree_util.tree_map(jnp.mean, metrics)

    def no_updates(agent):
        shapes = jax.eval_shape(updates, agent)[1]
        return agent, jax.tree_util.tree_map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

    agent, loss_metrics = jax.lax.cond(ready, updates, no_updates, rs.agent)
    totals = jax.tree_util.tree_map(jnp.sum, stats)
    steps = config.steps_per_iter * config.num_envs
    metrics = {
        "episodes": totals["episodes"],
        "return_mean": jnp.where(totals["episodes"] > 0, totals["return_sum"] / jnp.maximum(totals["episodes"], 1),
                                 jnp.nan),
        "reward_mean": totals["reward_sum"] / steps,
        "reference_fraction": totals["reward_sum"] / totals["reference_sum"],
        "optimum_fraction": jnp.float32(jnp.nan),
        "env_steps": rs.env_steps, "updates": agent.updates, "updating": ready.astype(jnp.float32),
        **loss_metrics,
    }
    return rs.replace(agent=agent, buffer=buffer, key=key, iteration=rs.iteration + 1), metrics


def evaluate_policy(env: Any, env_params: Any, policy: Callable, key: jax.Array, num_steps: int,
                    num_envs: int, memory: jax.Array | None = None) -> dict[str, jax.Array]:
    """Roll `policy(key, local obs [N, K, o], env_state [N]) -> env actions {agent: [N, ...]}` in `num_envs` fresh
    environments for `num_steps` steps: {"episodes", "return_mean" (finished episodes' team return), "reward_mean"
    (team reward per step, agent mean), "reference_fraction" (vs `env.reference_value`; NaN without it),
    "optimum_fraction" (NaN: no exact in-loop optimum; the key keeps the runner's tables uniform)}. Trained agents and reference policies share it.

    With `memory` (an initial per-environment array [N, ...]) the policy is recurrent:
    `policy(key, local, env_state, memory) -> (actions, next memory)`, and the memory returns to its initial value
    where an episode ended (the mean-field agents keep the last mean action in it)."""
    for name, value in (("num_steps", num_steps), ("num_envs", num_envs)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"evaluate: {name} must be a (static) integer >= 1, got {value!r}")
    agents = list(env.agents)
    k_reset, k_scan = jax.random.split(key)
    obs, env_state = jax.vmap(lambda kk: env.reset(kk, env_params))(jax.random.split(k_reset, num_envs))
    flat = lambda tree: stack(tree, agents).reshape(len(agents), -1).astype(jnp.float32)
    local = jax.vmap(flat)(obs)

    def body(carry, kk):
        local, env_state, running, mem = carry
        k_act, k_env = jax.random.split(kk)
        if memory is None:
            actions = policy(k_act, local, env_state)
        else:
            actions, mem = policy(k_act, local, env_state, mem)
        reference = jax.vmap(lambda s: env.reference_value(s, env_params))(env_state) \
            if hasattr(env, "reference_value") else jnp.full((num_envs,), jnp.nan)
        obs, env_state, rewards, dones, infos = jax.vmap(lambda k2, s, a: env.step(k2, s, a, env_params))(
            jax.random.split(k_env, num_envs), env_state, actions)
        team = team_reward(stack(rewards, agents), infos, axis=0)
        done = dones["__all__"]
        running = running + team
        out = (jnp.sum(team), jnp.sum(reference), jnp.sum(done.astype(jnp.float32)), jnp.sum(jnp.where(done, running, 0.0)))
        if memory is not None:
            mem = jnp.where(done.reshape((-1,) + (1,) * (mem.ndim - 1)), memory, mem)
        return (jax.vmap(flat)(obs), env_state, jnp.where(done, 0.0, running), mem), out

    _, (reward, reference, episodes, returns) = jax.lax.scan(
        body, (local, env_state, jnp.zeros(num_envs), memory), jax.random.split(k_scan, num_steps))
    episodes = jnp.sum(episodes)
    return {"episodes": episodes,
            "return_mean": jnp.where(episodes > 0, jnp.sum(returns) / jnp.maximum(episodes, 1), jnp.nan),
            "reward_mean": jnp.sum(reward) / (num_steps * num_envs),
            "optimum_fraction": jnp.float32(jnp.nan),
            "reference_fraction": jnp.sum(reward) / jnp.sum(reference)}


def evaluate_reference(env: Any, env_params: Any, name: str, key: jax.Array, num_steps: int,
                       num_envs: int) -> dict[str, jax.Array]:
    """`evaluate_policy` for the env's named reference policy (`env.policies()[name]`, e.g. "wmmse",
    "max_power", "random" on ic-power), jitted. ValueError naming the valid policies for an unknown name."""
    policies = env.policies()
    if name not in policies:
        raise ValueError(f"{getattr(env, 'name', type(env).__name__)} has no reference policy {name!r}; valid: "
                         f"{sorted(policies)}")
    policy = lambda k, local, env_state: jax.vmap(lambda kk, s: policies[name](kk, None, s, env_params))(
        jax.random.split(k, local.shape[0]), env_state)
    return jax.jit(lambda: evaluate_policy(env, env_params, policy, key, num_steps, num_envs))()


def make_trainer(config: maddpg.MAConfig, env: Any, env_params: Any) -> Trainer:
    """The pure functions of a multi-agent run; validates config and env before anything compiles."""
    if not isinstance(config, maddpg.MAConfig):
        raise TypeError(f"config must be a jaxdiff_rl.agents.maddpg.MAConfig, got {type(config).__name__}")
    spec, num_agents = multi_agent_spec(env, env_params)
    if spec.discrete != (config.algo in maddpg.DISCRETE_MA_ALGORITHMS):
        need = "discrete (Discrete)" if config.algo in maddpg.DISCRETE_MA_ALGORITHMS else "continuous (Box)"
        raise ValueError(f"{config.algo} needs {need} actions; {getattr(env, 'name', type(env).__name__)} has "
                         f"{'discrete' if spec.discrete else 'continuous'} ones (JaxMARL MPE: "
                         "make(..., action_type='Continuous') for MADDPG)")
    ctx = _Ctx(config, env, spec, num_agents)
    default_env_params = env_params
    agents = list(env.agents)

    def init(key: jax.Array, hparams: Hparams, env_params: Any = None) -> MARunnerState:
        env_params = default_env_params if env_params is None else env_params
        validate_hparams(hparams)
        key = jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key
        k_agent, k_env, k_run = jax.random.split(key, 3)
        obs, env_state = jax.vmap(lambda kk: env.reset(kk, env_params))(jax.random.split(k_env, config.num_envs))
        local = jax.vmap(lambda o: stack(o, agents).reshape(num_agents, -1).astype(jnp.float32))(obs)
        global_state = _global(ctx, env_params, env_state)
        agent = _INIT[config.algo](k_agent, config, hparams, num_agents, spec.obs_dim, global_state.shape[-1], spec.dim)
        n = config.num_envs
        action = jnp.zeros((n, num_agents), jnp.int32) if spec.discrete else jnp.zeros((n, num_agents, spec.dim))
        mean_action = jnp.zeros((n, 1 if spec.discrete else spec.dim), jnp.float32)
        seen = _agent_obs(ctx, local, mean_action)
        example = Transition(obs={"local": seen, "global": global_state}, action=action,
                             reward=jnp.zeros((n, num_agents)), next_obs={"local": seen, "global": global_state},
                             terminated=jnp.zeros(n, bool), done=jnp.zeros(n, bool))
        return MARunnerState(agent=agent, buffer=buffer_init(example, config.buffer_size), env_state=env_state,
                             obs=local, episode_return=jnp.zeros(n, jnp.float32), mean_action=mean_action, key=k_run,
                             iteration=jnp.int32(0), env_steps=jnp.int32(0))

    def run(state: MARunnerState, hparams: Hparams, num_iterations: int, env_params: Any = None):
        env_params = default_env_params if env_params is None else env_params
        validate_hparams(hparams)
        return jax.lax.scan(partial(_iteration, ctx, hparams, env_params), state, None, length=num_iterations)

    def train(key: jax.Array, hparams: Hparams, env_params: Any = None):
        return run(init(key, hparams, env_params), hparams, config.num_iterations, env_params)

    def evaluate(state: MARunnerState, key: jax.Array, hparams: Hparams, num_steps: int, env_params: Any = None,
                 num_envs: int | None = None):
        """Greedy joint policy (no exploration noise) in fresh environments; see `evaluate_policy`."""
        n = config.num_envs if num_envs is None else num_envs
        env_params = default_env_params if env_params is None else env_params
        if _mean_field(ctx):
            def recurrent(k, local, env_state, mean_action):
                action = _act(config, spec, state.agent.actor, k, _agent_obs(ctx, local, mean_action), hparams,
                              explore=False)
                return jax.vmap(partial(_env_actions, ctx))(action), jnp.mean(action, axis=1)

            return evaluate_policy(env, env_params, recurrent, key, num_steps, n, memory=jnp.zeros((n, spec.dim)))

        def policy(k, local, env_state):
            action = _act(config, spec, state.agent.actor, k, local, hparams, explore=False)
            return jax.vmap(partial(_env_actions, ctx))(action)

        return evaluate_policy(env, env_params, policy, key, num_steps, n)

    return Trainer(config, spec, init, run, train, evaluate)


def make_train(config: maddpg.MAConfig, env: Any, env_params: Any) -> Callable:
    """`train(key, hparams, env_params=None) -> (MARunnerState, metrics)`: a whole run, jittable end to end."""
    return make_trainer(config, env, env_params).train
