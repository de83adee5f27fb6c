"""The reference design of the on-policy speed claim: PPO laid out as PureJaxRL's `ppo.py` is (one `make_train`
whose `train(rng)` nests `_update_step` > `_env_step` / GAE / `_update_epoch` > `_update_minbatch` closures over a
config dict, a flax `TrainState`, an episode-return wrapper carried in the env state, `done = terminated or
truncated` with no bootstrap from the final observation, the GAE scan unrolled 16 times), re-written here for the
gymnax 1.x step signature because PureJaxRL itself is not a package and targets the older one.

Same network (separate 64 x 64 tanh actor and critic, orthogonal init), optimiser and hyperparameters as
`jaxdiff_rl.agents.ppo` defaults, so benchmarks/on_policy_speed.py can time the two designs on the same problem and
compare their returns. Discrete (categorical) actions only, as PureJaxRL's `ppo.py`."""

from __future__ import annotations

from typing import Any, NamedTuple

import distrax
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training.train_state import TrainState

PUREJAXRL_CARTPOLE = {"LR": 2.5e-4, "NUM_ENVS": 4, "NUM_STEPS": 128, "TOTAL_TIMESTEPS": 500_000, "UPDATE_EPOCHS": 4,
                      "NUM_MINIBATCHES": 4, "GAMMA": 0.99, "GAE_LAMBDA": 0.95, "CLIP_EPS": 0.2, "ENT_COEF": 0.01,
                      "VF_COEF": 0.5, "MAX_GRAD_NORM": 0.5, "ANNEAL_LR": True}


class _Net(nn.Module):
    num_actions: int

    @nn.compact
    def __call__(self, x):
        dense = lambda w, g: nn.Dense(w, kernel_init=nn.initializers.orthogonal(g), bias_init=nn.initializers.zeros)
        a = nn.tanh(dense(64, np.sqrt(2))(x))
        a = nn.tanh(dense(64, np.sqrt(2))(a))
        logits = dense(self.num_actions, 0.01)(a)
        c = nn.tanh(dense(64, np.sqrt(2))(x))
        c = nn.tanh(dense(64, np.sqrt(2))(c))
        return distrax.Categorical(logits=logits), dense(1, 1.0)(c)[..., 0]


class _Step(NamedTuple):
    done: jax.Array
    action: jax.Array
    value: jax.Array
    reward: jax.Array
    log_prob: jax.Array
    obs: jax.Array
    returned: jax.Array  # episode finished on this step
    episode_return: jax.Array  # its return (0 where none finished)


def make_train(config: dict, env: Any, env_params: Any):
    num_updates = config["TOTAL_TIMESTEPS"] // config["NUM_STEPS"] // config["NUM_ENVS"]
    batch = config["NUM_ENVS"] * config["NUM_STEPS"]

    def schedule(count):
        return config["LR"] * (1.0 - (count // (config["NUM_MINIBATCHES"] * config["UPDATE_EPOCHS"])) / num_updates)

    def train(rng):
        net = _Net(env.action_space(env_params).n)
        rng, k = jax.random.split(rng)
        obs_dim = env.observation_space(env_params).shape[0]
        lr = schedule if config["ANNEAL_LR"] else config["LR"]
        state = TrainState.create(apply_fn=net.apply, params=net.init(k, jnp.zeros(obs_dim)),
                                  tx=optax.chain(optax.clip_by_global_norm(config["MAX_GRAD_NORM"]),
                                                 optax.adam(lr, eps=1e-5)))
        rng, k = jax.random.split(rng)
        obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k, config["NUM_ENVS"]), env_params)
        running = jnp.zeros(config["NUM_ENVS"])

        def _update_step(carry, _):
            def _env_step(carry, _):
                state, env_state, obs, running, rng = carry
                rng, k_act, k_env = jax.random.split(rng, 3)
                pi, value = net.apply(state.params, obs)
                action = pi.sample(seed=k_act)
                obs2, env_state, reward, term, trunc, _ = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
                    jax.random.split(k_env, config["NUM_ENVS"]), env_state, action, env_params)
                done = jnp.logical_or(term, trunc)
                running = running + reward
                step = _Step(done, action, value, reward, pi.log_prob(action), obs, done, jnp.where(done, running, 0.0))
                return (state, env_state, obs2, jnp.where(done, 0.0, running), rng), step

            carry, traj = jax.lax.scan(_env_step, carry, None, config["NUM_STEPS"])
            state, env_state, last_obs, running, rng = carry
            _, last_val = net.apply(state.params, last_obs)

            def _gae(acc, t):
                gae, next_value = acc
                delta = t.reward + config["GAMMA"] * next_value * (1 - t.done) - t.value
                gae = delta + config["GAMMA"] * config["GAE_LAMBDA"] * (1 - t.done) * gae
                return (gae, t.value), gae

            _, adv = jax.lax.scan(_gae, (jnp.zeros_like(last_val), last_val), traj, reverse=True, unroll=16)
            targets = adv + traj.value

            def _update_epoch(carry, _):
                def _update_minbatch(state, mb):
                    t, gae, target = mb

                    def _loss(params):
                        pi, value = net.apply(params, t.obs)
                        log_prob = pi.log_prob(t.action)
                        v_clip = t.value + (value - t.value).clip(-config["CLIP_EPS"], config["CLIP_EPS"])
                        v_loss = 0.5 * jnp.maximum(jnp.square(value - target), jnp.square(v_clip - target)).mean()
                        ratio = jnp.exp(log_prob - t.log_prob)
                        g = (gae - gae.mean()) / (gae.std() + 1e-8)
                        a_loss = -jnp.minimum(ratio * g, jnp.clip(ratio, 1 - config["CLIP_EPS"],
                                                                   1 + config["CLIP_EPS"]) * g).mean()
                        return a_loss + config["VF_COEF"] * v_loss - config["ENT_COEF"] * pi.entropy().mean()

                    return state.apply_gradients(grads=jax.grad(_loss)(state.params)), None

                state, rng = carry
                rng, k = jax.random.split(rng)
                perm = jax.random.permutation(k, batch)
                flat = jax.tree_util.tree_map(lambda x: x.reshape((batch,) + x.shape[2:]), (traj, adv, targets))
                mbs = jax.tree_util.tree_map(
                    lambda x: jnp.take(x, perm, axis=0).reshape((config["NUM_MINIBATCHES"], -1) + x.shape[1:]), flat)
                state, _ = jax.lax.scan(_update_minbatch, state, mbs)
                return (state, rng), None

            (state, rng), _ = jax.lax.scan(_update_epoch, (state, rng), None, config["UPDATE_EPOCHS"])
            metric = {"episodes": traj.returned.sum(), "return_sum": traj.episode_return.sum()}
            return (state, env_state, last_obs, running, rng), metric

        rng, k = jax.random.split(rng)
        carry, metrics = jax.lax.scan(_update_step, (state, env_state, obs, running, k), None, num_updates)
        return {"runner_state": carry, "metrics": metrics}

    return train
