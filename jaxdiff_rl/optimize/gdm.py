"""Generative diffusion optimizer (DiffSG, seed 002; GDMOPT, seed 001): a conditional DDPM learns p(y* | x), the
distribution of optimal solutions y* of problem instances x, and solves a new instance by denoising with
classifier-free guidance.

    opt = GenerativeOptimizer(GDMConfig(x_dim=4, y_dim=3))
    state, losses = opt.train(key, x_train, y_train, GDMHparams())       # one jit, lax.scan over minibatches
    y = opt.solve(state, key, x_test, GDMHparams(), objective=f, repair=r, num_samples=8)   # best of 8

Everything is a pure function of (key, arrays, hyperparameters): `train` vmaps over seeds and over the traced
hyperparameters (learning rate, decay factor, p_uncond, guidance weight w, EMA decay); settings that change shapes
or the compiled program (widths, T, schedule, batch size, epochs) live in the static `GDMConfig`.

Data are min-max scaled to [-1, 1] per dimension (x and y, fitted on the training set; DiffSG scales its
condition the same way), samples are clipped to that box at every step and mapped back. Any problem plugs in
through a dataset (x, y*) and, for scoring and best-of-K, an `objective(x, y)` and an optional `repair(x, y)` that
makes a raw sample feasible (see `envs.datasets.objective_fn` / `repair_fn`).
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from jaxdiff_rl.diffusion import (
    GENERATORS,
    GeneratorConfig,
    SamplerConfig,
    ema_decay_warmup,
    ema_update,
    flow_teacher,
    generate,
    generator_loss,
    make_schedule,
)
from jaxdiff_rl.nets import Denoiser

__all__ = ["GDMConfig", "GDMHparams", "GDMState", "Normalizer", "GenerativeOptimizer"]


@dataclasses.dataclass(frozen=True)
class GDMConfig:
    """Static settings. Defaults are DiffSG's (T = 20, cosine schedule, 200 epochs, normalisation in the first 5
    denoising steps); the network width is not given in the paper (3 x 256 Mish here)."""

    x_dim: int
    y_dim: int
    num_steps: int = 20
    schedule: str = "cosine"
    hidden_dims: tuple[int, ...] = (256, 256, 256)
    activation: str = "mish"
    epochs: int = 200
    batch_size: int = 512
    milestones: tuple[float, ...] = (0.5, 0.75)  # fractions of training where lr *= gamma
    cfg_normalize_steps: int = 5
    sampler: str = "ddpm"  # DiffSG: DDPM ancestral sampling; "ddim" (eta = 0) is deterministic given x_T
    log_x: bool = False  # condition on log1p(x) (x >= 0) before min-max scaling: for heavy-tailed instances (CO)
    prediction: str = "eps"  # what the network predicts: "eps" (DiffSG) or "x0" (y* directly; sharp maps, see NU)
    num_terms: int = 0  # width of `condition_terms(x, y_t)` appended to the condition (DiffSG Fig. 3); 0 = none
    # "ddpm" (DiffSG / GDMOPT), "flow" (flow matching, num_steps = K Euler steps) or "consistency" (consistency
    # training, num_steps = 1 or 2 sampling steps): see `jaxdiff_rl.diffusion.generators`
    generator: str = "ddpm"

    def __post_init__(self) -> None:
        for name in ("x_dim", "y_dim", "num_steps", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"GDMConfig.{name} must be an integer >= 1, got {value!r}")
        if isinstance(self.num_terms, bool) or not isinstance(self.num_terms, (int, np.integer)) or self.num_terms < 0:
            raise ValueError(f"GDMConfig.num_terms must be an integer >= 0, got {self.num_terms!r}")
        if not all(0.0 < m < 1.0 for m in self.milestones):
            raise ValueError(f"GDMConfig.milestones must be fractions in (0, 1), got {self.milestones}")
        make_schedule(self.schedule, self.num_steps)  # validates the name
        if self.generator not in GENERATORS:
            raise ValueError(f"GDMConfig.generator must be one of {GENERATORS}, got {self.generator!r}")
        if self.sampler not in ("ddpm", "ddim"):
            raise ValueError(f"GDMConfig.sampler must be 'ddpm' or 'ddim', got {self.sampler!r}")
        SamplerConfig(cfg_normalize_steps=self.cfg_normalize_steps, prediction=self.prediction)

    @property
    def generator_config(self) -> GeneratorConfig:
        return GeneratorConfig(kind=self.generator, steps=self.num_steps, schedule=self.schedule)


@struct.dataclass
class GDMHparams:
    """Traced hyperparameters (sweepable with vmap). DiffSG: lr 0.005, gamma 0.1, p_uncond 0.1, w = 500."""

    lr: Any = 5e-3
    gamma: Any = 0.1
    p_uncond: Any = 0.1
    cfg_weight: Any = 500.0
    ema_decay: Any = 0.995


@struct.dataclass
class Normalizer:
    """Per-dimension min-max scaling to [-1, 1]."""

    low: jax.Array
    high: jax.Array

    @classmethod
    def fit(cls, data: jax.Array) -> "Normalizer":
        low, high = jnp.min(data, axis=0), jnp.max(data, axis=0)
        return cls(low=low, high=jnp.where(high > low, high, low + 1.0))

    def encode(self, v: jax.Array) -> jax.Array:
        return 2.0 * (v - self.low) / (self.high - self.low) - 1.0

    def decode(self, z: jax.Array) -> jax.Array:
        return self.low + (z + 1.0) * 0.5 * (self.high - self.low)


@struct.dataclass
class GDMState:
    params: Any
    ema_params: Any
    x_norm: Normalizer
    y_norm: Normalizer
    terms_norm: Normalizer | None = None  # scaling of the signed-log condition terms (None without terms)


def _signed_log(v: jax.Array) -> jax.Array:
    return jnp.sign(v) * jnp.log1p(jnp.abs(v))


def _check_data(config: GDMConfig, x: Any, y: Any) -> None:
    x, y = np.shape(x), np.shape(y)
    if len(x) != 2 or x[1] != config.x_dim:
        raise ValueError(f"x must have shape [n, x_dim={config.x_dim}], got {x}")
    if len(y) != 2 or y[1] != config.y_dim or y[0] != x[0]:
        raise ValueError(f"y must have shape [n={x[0]}, y_dim={config.y_dim}], got {y}")
    if x[0] < config.batch_size:
        raise ValueError(f"the dataset ({x[0]} pairs) is smaller than GDMConfig.batch_size={config.batch_size}")


class GenerativeOptimizer:
    """See the module docstring. Stateless: all state is in `GDMState`.

    `condition_terms(x [x_dim], y [y_dim]) -> [num_terms]` (optional, needs `GDMConfig.num_terms`): features of the
    current noisy solution appended to the condition at every denoising step, in training and in sampling alike
    (DiffSG Fig. 3 puts the objective value and the Lagrangian constraint value of the solution in the condition).
    They are computed on y_t mapped back to data units, passed through sign(v) log(1 + |v|) (objective values span
    decades), scaled by their range on the training pairs (x, y*) and clipped to [-3, 3]. The null condition of
    classifier-free guidance drops them together with x."""

    def __init__(self, config: GDMConfig, condition_terms: Callable[[jax.Array, jax.Array], jax.Array] | None = None):
        if (condition_terms is None) != (config.num_terms == 0):
            raise ValueError(
                f"condition_terms and GDMConfig.num_terms go together: got num_terms={config.num_terms} and "
                f"condition_terms={'a function' if condition_terms is not None else None}"
            )
        self.config = config
        self.condition_terms = condition_terms
        self.net = Denoiser(
            out_dim=config.y_dim, cond_dim=config.x_dim + config.num_terms, hidden_dims=config.hidden_dims,
            activation=config.activation,
        )
        self.schedule = make_schedule(config.schedule, config.num_steps)

    def _x_transform(self, x: jax.Array) -> jax.Array:
        return jnp.log1p(jnp.maximum(x, 0.0)) if self.config.log_x else x

    def _x_untransform(self, x: jax.Array) -> jax.Array:
        return jnp.expm1(x) if self.config.log_x else x

    def _raw_terms(self, x: jax.Array, y: jax.Array) -> jax.Array:
        """Signed-log condition terms [B, num_terms] of raw instances x [B, x_dim] and solutions y [B, y_dim]."""
        terms = jax.vmap(self.condition_terms)(x, y).reshape(x.shape[0], self.config.num_terms)
        return _signed_log(terms)

    def _model_fn(self, params: Any, state: GDMState) -> Callable:
        """The network as the samplers' `model_fn(x_t, t, cond, use_cond)`; cond is the scaled x [B, x_dim], to which
        the condition terms of y_t are appended when the optimizer has them."""
        if self.condition_terms is None:
            return partial(self.net.apply, params)

        def model_fn(x_t, t, cond, use_cond=None):
            x_raw = self._x_untransform(state.x_norm.decode(cond))
            y_raw = state.y_norm.decode(jnp.clip(x_t, -1.0, 1.0))
            terms = jnp.clip(state.terms_norm.encode(self._raw_terms(x_raw, y_raw)), -3.0, 3.0)
            return self.net.apply(params, x_t, t, jnp.concatenate([cond, terms], axis=-1), use_cond)

        return model_fn

    # --- training ----------------------------------------------------------------------------------------------------
    def _optimizer(self, hp: GDMHparams, steps_per_epoch: int) -> optax.GradientTransformation:
        total = self.config.epochs * steps_per_epoch
        bounds = jnp.asarray([int(m * total) for m in self.config.milestones])
        lr = lambda step: hp.lr * hp.gamma ** jnp.sum(step >= bounds)  # multi-step decay
        return optax.chain(optax.scale_by_adam(), optax.scale_by_learning_rate(lr))

    def init(self, key: jax.Array, x: jax.Array, y: jax.Array) -> GDMState:
        c = self.config
        cond = jnp.zeros((1, c.x_dim + c.num_terms))
        params = self.net.init(key, jnp.zeros((1, c.y_dim)), jnp.zeros(1, jnp.int32), cond)
        terms_norm = None
        if self.condition_terms is not None:
            terms_norm = Normalizer.fit(self._raw_terms(self._x_untransform(x), y))
        return GDMState(params=params, ema_params=params, x_norm=Normalizer.fit(x), y_norm=Normalizer.fit(y),
                        terms_norm=terms_norm)

    def train(self, key: jax.Array, x: jax.Array, y: jax.Array, hparams: GDMHparams,
              teacher: tuple["GenerativeOptimizer", GDMState] | None = None) -> tuple[GDMState, jax.Array]:
        """Train on pairs (x [n, x_dim], y* [n, y_dim]); returns (state, per-epoch mean loss [epochs]).
        Validates shapes in Python, then runs one compiled program (vmap this over keys / hparams).

        teacher: (optimizer, state) of a trained flow-matching optimizer on the same data: a consistency
        optimizer is then trained by consistency distillation from its probability-flow ODE (its EMA weights,
        conditional velocity) instead of consistency training."""
        _check_data(self.config, x, y)
        x, y = jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32)
        if teacher is None:
            return self._train(key, x, y, hparams)
        teacher_opt, teacher_state = teacher
        if self.config.generator != "consistency" or teacher_opt.config.generator != "flow":
            raise ValueError(f"distillation needs a consistency student and a flow teacher, got "
                             f"{self.config.generator!r} <- {teacher_opt.config.generator!r}")
        if (teacher_opt.config.x_dim, teacher_opt.config.y_dim) != (self.config.x_dim, self.config.y_dim):
            raise ValueError("the teacher must solve the same problem (x_dim, y_dim)")
        return self._distill(key, x, y, hparams, teacher_opt, teacher_state)

    @partial(jax.jit, static_argnums=0)
    def _train(self, key, x, y, hparams):
        return self._train_impl(key, x, y, hparams, None)

    @partial(jax.jit, static_argnums=(0, 5))
    def _distill(self, key, x, y, hparams, teacher_opt, teacher_state):
        velocity = teacher_opt._model_fn(teacher_state.ema_params, teacher_state)
        return self._train_impl(key, x, y, hparams, flow_teacher(velocity))

    def _train_impl(self, key, x, y, hparams, teacher):
        c = self.config
        n = x.shape[0]
        steps_per_epoch = n // c.batch_size
        k_init, k_train = jax.random.split(key)
        x = self._x_transform(x)
        state = self.init(k_init, x, y)
        xs, ys = state.x_norm.encode(x), state.y_norm.encode(y)
        opt = self._optimizer(hparams, steps_per_epoch)

        def minibatch(carry, inputs):
            params, ema, opt_state = carry
            idx, k, step = inputs
            loss, grads = jax.value_and_grad(
                lambda p: generator_loss(k, c.generator_config, self._model_fn(p, state), ys[idx], xs[idx],
                                         hparams.p_uncond, prediction=c.prediction, teacher=teacher)
            )(params)
            updates, opt_state = opt.update(grads, opt_state, params)
            params = optax.apply_updates(params, updates)
            return (params, ema_update(ema, params, ema_decay_warmup(hparams.ema_decay, step)), opt_state), loss

        def epoch(carry, inputs):
            k, e = inputs
            k_perm, k_steps = jax.random.split(k)
            order = jax.random.permutation(k_perm, n)[: steps_per_epoch * c.batch_size]
            batches = order.reshape(steps_per_epoch, c.batch_size)
            steps = e * steps_per_epoch + jnp.arange(steps_per_epoch)
            carry, losses = jax.lax.scan(
                minibatch, carry, (batches, jax.random.split(k_steps, steps_per_epoch), steps)
            )
            return carry, jnp.mean(losses)

        init = (state.params, state.params, opt.init(state.params))
        epochs = (jax.random.split(k_train, c.epochs), jnp.arange(c.epochs))
        (params, ema, _), losses = jax.lax.scan(epoch, init, epochs)
        return state.replace(params=params, ema_params=ema), losses

    # --- solving -----------------------------------------------------------------------------------------------------
    def sample(
        self,
        state: GDMState,
        key: jax.Array,
        x: jax.Array,
        hparams: GDMHparams,
        num_samples: int = 1,
        use_ema: bool = True,
        return_trajectory: bool = False,
        objective: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
        guide_scale: jax.Array | float | None = None,
    ):
        """Raw samples y [n, K, y_dim] (K = num_samples) for instances x [n, x_dim], in the data's units.
        With `return_trajectory`, also the denoising trajectory of x_t mapped back to data units,
        [T+1, n, K, y_dim] (x_T first; DDPM generator only).

        Objective-gradient guided denoising (seed 000 eq. 11 with the objective in place of Q): with an
        `objective(x [x_dim], y [y_dim]) -> scalar` (maximised) and guide_scale w (None: no guidance), every step is shifted along
        w grad_y objective, the gradient taken in the scaled [-1, 1] coordinates the generator works in."""
        c = self.config
        x = jnp.asarray(x, jnp.float32)
        if x.ndim != 2 or x.shape[1] != c.x_dim:
            raise ValueError(f"x must have shape [n, x_dim={c.x_dim}], got {x.shape}")
        n = x.shape[0]
        params = state.ema_params if use_ema else state.params
        cond = jnp.repeat(state.x_norm.encode(self._x_transform(x)), num_samples, axis=0)
        guide_fn = None
        if guide_scale is not None:
            if objective is None:
                raise ValueError("guide_scale needs the objective to differentiate")
            x_rep = jnp.repeat(x, num_samples, axis=0)
            guide_fn = lambda z, _: jax.vmap(objective)(x_rep, state.y_norm.decode(z))
        config = SamplerConfig(
            method=c.sampler, clip_x0=(-1.0, 1.0), clip_xt=(-1.0, 1.0), cfg_normalize_steps=c.cfg_normalize_steps,
            prediction=c.prediction,
            return_trajectory=return_trajectory,
        )
        out = generate(key, c.generator_config, self._model_fn(params, state), (n * num_samples, c.y_dim), cond,
                       config, cfg_weight=hparams.cfg_weight, guide_fn=guide_fn,
                       guide_scale=0.0 if guide_scale is None else guide_scale)
        if not return_trajectory:
            return state.y_norm.decode(out).reshape(n, num_samples, c.y_dim)
        y, traj = out
        xs = state.y_norm.decode(traj["x"]).reshape(-1, n, num_samples, c.y_dim)
        return state.y_norm.decode(y).reshape(n, num_samples, c.y_dim), xs

    def solve(
        self,
        state: GDMState,
        key: jax.Array,
        x: jax.Array,
        hparams: GDMHparams,
        objective: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
        repair: Callable[[jax.Array, jax.Array], jax.Array] | None = None,
        num_samples: int = 1,
        maximize: bool = True,
        guide_scale: jax.Array | float | None = None,
    ) -> tuple[jax.Array, jax.Array | None]:
        """Solutions y [n, y_dim] (repaired if `repair` is given) and their objective values [n] (or None).
        With num_samples = K > 1, the best of K samples by `objective` (needs it). K = 1 is DiffSG's setting.
        guide_scale w: objective-gradient guided denoising (see `sample`; the sign follows `maximize`)."""
        if num_samples > 1 and objective is None:
            raise ValueError("best-of-K (num_samples > 1) needs an objective to rank the samples")
        guide = objective if maximize or objective is None else (lambda a, b: -objective(a, b))
        ys = self.sample(state, key, x, hparams, num_samples, objective=guide, guide_scale=guide_scale)
        if repair is not None:
            ys = jax.vmap(jax.vmap(repair, in_axes=(None, 0)))(jnp.asarray(x, jnp.float32), ys)
        if objective is None:
            return ys[:, 0], None
        values = jax.vmap(jax.vmap(objective, in_axes=(None, 0)))(jnp.asarray(x, jnp.float32), ys)
        best = jnp.argmax(values, axis=1) if maximize else jnp.argmin(values, axis=1)
        pick = lambda a: jnp.take_along_axis(a, best[:, None, None] if a.ndim == 3 else best[:, None], axis=1)[:, 0]
        return pick(ys), pick(values)
