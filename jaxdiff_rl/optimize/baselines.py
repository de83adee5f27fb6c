"""DiffSG's baselines (seed 002, Fig. 11) on the same data and the same feasibility map as the diffusion optimizer.

- `gradient_descent`: per instance, Adam on the penalty relaxation  sign * f(x, y) + lam ||y - repair(x, y)||^2
  (the distance to the feasible set as the Lagrangian-style penalty), from a random start; the final y is repaired.
  Integer parts (CO's offloading decisions) have no useful gradient, which is the point the paper makes.
- `MTFNN`: a multi-task feed-forward network regressing y* from x (MSE on min-max scaled data).
- `OneStepPPO`: PPO on one-step episodes: a Gaussian policy pi(y | x), reward sign * f(x, repair(x, y)),
  a learned value baseline, clipped surrogate.

All three are pure, jitted `lax.scan` loops. `sign` is +1 to maximise and -1 to minimise (`envs.datasets.SENSE`).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Callable

import distrax
import jax
import jax.numpy as jnp
import optax

from jaxdiff_rl.nets import MLP
from jaxdiff_rl.optimize.gdm import Normalizer

__all__ = ["gradient_descent", "MTFNN", "OneStepPPO", "PPOConfig"]

Fn = Callable[[jax.Array, jax.Array], jax.Array]


@partial(jax.jit, static_argnames=("objective", "repair", "steps", "sign"))
def gradient_descent(
    key: jax.Array,
    x: jax.Array,
    y_norm: Normalizer,
    objective: Fn,
    repair: Fn,
    sign: float = 1.0,
    steps: int = 500,
    lr: float = 0.05,
    penalty: float = 10.0,
) -> jax.Array:
    """Solutions [n, dy] for instances x [n, dx]. Optimises in the min-max scaled space of y (box [-1, 1])."""
    dy = y_norm.low.shape[-1]

    def solve_one(k, xi):
        def loss(z):
            y = y_norm.decode(z)
            feasible = repair(xi, y)
            scale = y_norm.high - y_norm.low
            return -sign * objective(xi, y) + penalty * jnp.sum(((y - feasible) / scale) ** 2)

        opt = optax.adam(lr)
        z0 = jax.random.uniform(k, (dy,), minval=-1.0, maxval=1.0)

        def step(carry, _):
            z, s = carry
            g = jax.grad(loss)(z)
            updates, s = opt.update(g, s)
            return (jnp.clip(optax.apply_updates(z, updates), -1.0, 1.0), s), None

        (z, _), _ = jax.lax.scan(step, (z0, opt.init(z0)), None, length=steps)
        return repair(xi, y_norm.decode(z))

    return jax.vmap(solve_one)(jax.random.split(key, x.shape[0]), x)


@dataclasses.dataclass(frozen=True)
class MTFNN:
    """Regression network y* = h(x), trained with Adam on MSE over min-max scaled data."""

    x_dim: int
    y_dim: int
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    epochs: int = 200
    batch_size: int = 512
    lr: float = 1e-3

    @property
    def net(self) -> MLP:
        return MLP(out_dim=self.y_dim, hidden_dims=self.hidden_dims, output_activation="tanh")

    @partial(jax.jit, static_argnums=0)
    def train(self, key: jax.Array, x: jax.Array, y: jax.Array):
        """Returns (params, x_norm, y_norm, per-epoch losses)."""
        xn, yn = Normalizer.fit(x), Normalizer.fit(y)
        xs, ys = xn.encode(x), yn.encode(y)
        n = x.shape[0]
        per_epoch = n // self.batch_size
        k_init, k_train = jax.random.split(key)
        params = self.net.init(k_init, xs[:1])
        opt = optax.adam(optax.cosine_decay_schedule(self.lr, self.epochs * per_epoch, alpha=0.05))

        def batch(carry, idx):
            p, s = carry
            loss, g = jax.value_and_grad(lambda p: jnp.mean((self.net.apply(p, xs[idx]) - ys[idx]) ** 2))(p)
            u, s = opt.update(g, s)
            return (optax.apply_updates(p, u), s), loss

        def epoch(carry, k):
            order = jax.random.permutation(k, n)[: per_epoch * self.batch_size].reshape(per_epoch, self.batch_size)
            carry, losses = jax.lax.scan(batch, carry, order)
            return carry, losses.mean()

        (params, _), losses = jax.lax.scan(epoch, (params, opt.init(params)), jax.random.split(k_train, self.epochs))
        return params, xn, yn, losses

    def predict(self, params: Any, x_norm: Normalizer, y_norm: Normalizer, x: jax.Array, repair: Fn) -> jax.Array:
        y = y_norm.decode(self.net.apply(params, x_norm.encode(x)))
        return jax.vmap(repair)(x, y)


@dataclasses.dataclass(frozen=True)
class PPOConfig:
    hidden_dims: tuple[int, ...] = (256, 256)
    iterations: int = 300
    batch_size: int = 1024  # instances (one-step episodes) per iteration
    update_epochs: int = 4
    clip: float = 0.2
    lr: float = 3e-4
    init_log_std: float = -0.5


@dataclasses.dataclass(frozen=True)
class OneStepPPO:
    """PPO with one-step episodes over the training instances (the problem as a contextual bandit)."""

    x_dim: int
    y_dim: int
    config: PPOConfig = PPOConfig()

    @property
    def actor(self) -> MLP:
        return MLP(out_dim=self.y_dim, hidden_dims=self.config.hidden_dims, activation="tanh")

    @property
    def critic(self) -> MLP:
        return MLP(out_dim=1, hidden_dims=self.config.hidden_dims, activation="tanh")

    @partial(jax.jit, static_argnums=(0, 4, 5, 6))
    def train(self, key: jax.Array, x: jax.Array, y: jax.Array, objective: Fn, repair: Fn, sign: float = 1.0):
        """Returns (params, x_norm, y_norm, per-iteration mean reward). `y` only fixes the action scaling."""
        c = self.config
        xn, yn = Normalizer.fit(x), Normalizer.fit(y)
        xs = xn.encode(x)
        k_a, k_c, k_train = jax.random.split(key, 3)
        params = {
            "actor": self.actor.init(k_a, xs[:1]),
            "critic": self.critic.init(k_c, xs[:1]),
            "log_std": jnp.full((self.y_dim,), c.init_log_std),
        }
        opt = optax.chain(optax.clip_by_global_norm(0.5), optax.adam(c.lr))

        def reward_fn(xi, zi):
            return sign * objective(xi, repair(xi, yn.decode(jnp.clip(zi, -1.0, 1.0))))

        def iteration(carry, k):
            params, s = carry
            k_idx, k_act = jax.random.split(k)
            idx = jax.random.randint(k_idx, (c.batch_size,), 0, x.shape[0])
            obs = xs[idx]
            dist = distrax.MultivariateNormalDiag(self.actor.apply(params["actor"], obs), jnp.exp(params["log_std"]))
            z = dist.sample(seed=k_act)
            logp_old = dist.log_prob(z)
            rewards = jax.vmap(reward_fn)(x[idx], z)
            rewards_n = (rewards - rewards.mean()) / (rewards.std() + 1e-8)  # per-batch reward normalisation

            def loss(p):
                d = distrax.MultivariateNormalDiag(self.actor.apply(p["actor"], obs), jnp.exp(p["log_std"]))
                value = self.critic.apply(p["critic"], obs)[:, 0]
                adv = jax.lax.stop_gradient(rewards_n - value)
                ratio = jnp.exp(d.log_prob(z) - logp_old)
                surrogate = jnp.minimum(ratio * adv, jnp.clip(ratio, 1 - c.clip, 1 + c.clip) * adv)
                return -surrogate.mean() + 0.5 * jnp.mean((value - rewards_n) ** 2)

            def update(carry, _):
                p, s = carry
                g = jax.grad(loss)(p)
                u, s = opt.update(g, s)
                return (optax.apply_updates(p, u), s), None

            (params, s), _ = jax.lax.scan(update, (params, s), None, length=c.update_epochs)
            return (params, s), rewards.mean()

        (params, _), curve = jax.lax.scan(iteration, (params, opt.init(params)), jax.random.split(k_train, c.iterations))
        return params, xn, yn, curve

    def predict(self, params: Any, x_norm: Normalizer, y_norm: Normalizer, x: jax.Array, repair: Fn) -> jax.Array:
        """Deterministic solution: the policy mean, repaired."""
        z = jnp.clip(self.actor.apply(params["actor"], x_norm.encode(x)), -1.0, 1.0)
        return jax.vmap(repair)(x, y_norm.decode(z))
