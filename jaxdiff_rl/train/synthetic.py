"""Diffusion-synthesised transitions (seed 000 sec. II-B8, eq. 22; SynthER): an unconditional generative model over
whole transitions (s, a, r, s', terminal), trained on the available data with the shared denoiser and generator,
then sampled to upsample a small offline dataset or to mix generated transitions into an agent's minibatches.

    codec = TransitionCodec.fit(dataset, spec)           # per-feature standardisation of the flat vectors
    gen = fit_transition_model(key, SynthConfig(), dataset, spec)
    fake = sample_transitions(key, gen, 90_000)           # an OfflineDataset in the env's units
    big = dataset.concatenate(fake)

Vector layout (width D = 2 obs_dim + A + 2): [s, a, r, s', terminal]; a continuous action is its [-1, 1] value,
a discrete one the vector 2 onehot - 1 (decoded by argmax); terminal is decoded by thresholding at 0.5. All
features are standardised with the data's mean and std (constant features get std 1), so the generator sees
unit-scale data whatever the units (W, bit/s/Hz, rad).

`fidelity(...)` scores generated data: reward consistency with the environment's reward function on the generated
(s, a) (when one is given), the fraction of physically valid states (a user predicate), and the per-feature
standardised mean / std gaps to the real data.
"""

from __future__ import annotations

import dataclasses
from functools import partial
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxdiff_rl.diffusion import GeneratorConfig, SamplerConfig, generate, generator_loss
from jaxdiff_rl.nets import Denoiser

if TYPE_CHECKING:
    from jaxdiff_rl.train.off_policy import ActionSpec

__all__ = ["SynthConfig", "TransitionCodec", "TransitionModel", "fit_transition_model", "sample_transitions",
           "fidelity", "upsample", "MixConfig", "MixState", "mix_init", "mix_step", "mix_batch"]


@dataclasses.dataclass(frozen=True)
class SynthConfig:
    """Static settings of the transition generator.

    generator: the shared generator (default a T = 50 VP DDPM, eps prediction; SynthER uses an EDM sampler with
    more steps on a residual MLP). hidden_dims, residual, activation: the unconditional Denoiser's trunk.
    steps: Adam updates of the fit; batch_size; lr: Adam step size (cosine decay to 10% over the fit).
    clip_x0: the sampler clips its x0 estimates to [-clip_x0, clip_x0] standard deviations: the first reverse
    steps divide the noise error by sqrt(alpha_bar_T) (1e-2 .. 1e-3), and unclipped they overflow.
    """

    generator: GeneratorConfig = GeneratorConfig(kind="ddpm", steps=50, schedule="cosine")
    hidden_dims: tuple[int, ...] = (512, 512, 512)
    residual: bool = True
    activation: str = "mish"
    steps: int = 10_000
    batch_size: int = 256
    lr: float = 3e-4
    clip_x0: float = 6.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"SynthConfig.{name} must be an integer >= 1, got {value!r}")
        if not isinstance(self.lr, (int, float)) or not 0.0 < self.lr < 1.0:
            raise ValueError(f"SynthConfig.lr must be in (0, 1), got {self.lr!r}")
        if not isinstance(self.clip_x0, (int, float)) or not self.clip_x0 > 0:
            raise ValueError(f"SynthConfig.clip_x0 must be > 0, got {self.clip_x0!r}")
        if not self.hidden_dims or any(not isinstance(w, int) or w < 1 for w in self.hidden_dims):
            raise ValueError(f"SynthConfig.hidden_dims must be positive integers, got {self.hidden_dims!r}")

    def network(self, width: int) -> Denoiser:
        return Denoiser(out_dim=width, cond_dim=0, hidden_dims=self.hidden_dims, activation=self.activation,
                        residual=self.residual, layer_norm=self.residual)


class TransitionCodec(NamedTuple):
    """Flat-vector encoding of transitions (module docstring). mean, std: [D]; spec: the env's ActionSpec;
    constant: [D] bool."""

    mean: np.ndarray
    std: np.ndarray
    spec: ActionSpec
    constant: np.ndarray  # [D] bool, features with std <= 1e-6 in the data

    @property
    def width(self) -> int:
        return int(self.mean.shape[0])

    @staticmethod
    def raw(dataset: Any, spec: ActionSpec) -> np.ndarray:
        """[N, D] unstandardised vectors of a dataset."""
        if spec.discrete:
            a = 2.0 * np.eye(spec.dim, dtype=np.float32)[dataset.actions] - 1.0
        else:
            low, high = np.asarray(spec.low, np.float32), np.asarray(spec.high, np.float32)
            a = 2.0 * (dataset.actions - low) / (high - low) - 1.0
        return np.concatenate([dataset.observations, a, dataset.rewards[:, None], dataset.next_observations,
                               dataset.terminals[:, None].astype(np.float32)], axis=1).astype(np.float32)

    @classmethod
    def fit(cls, dataset: Any, spec: ActionSpec) -> "TransitionCodec":
        x = cls.raw(dataset, spec)
        std = x.std(0)
        return cls(mean=x.mean(0), std=np.where(std > 1e-6, std, 1.0).astype(np.float32), spec=spec,
                   constant=std <= 1e-6)

    def encode(self, dataset: Any) -> np.ndarray:
        return (self.raw(dataset, self.spec) - self.mean) / self.std

    def decode(self, z: np.ndarray, metadata: dict[str, Any] | None = None) -> Any:
        """Standardised vectors [N, D] -> an OfflineDataset in the env's units (actions clipped to the box;
        features constant in the data, e.g. a power budget, decoded to their constant)."""
        from envs.offline_data import OfflineDataset

        x = np.asarray(z, np.float32) * self.std + self.mean
        x = np.where(self.constant, self.mean, x)
        s, spec = self.spec.obs_dim, self.spec
        obs, a, r = x[:, :s], x[:, s:s + spec.dim], x[:, s + spec.dim]
        nxt, term = x[:, s + spec.dim + 1:2 * s + spec.dim + 1], x[:, -1]
        if spec.discrete:
            actions = np.argmax(a, axis=1).astype(np.int32)
        else:
            low, high = np.asarray(spec.low, np.float32), np.asarray(spec.high, np.float32)
            actions = low + 0.5 * (np.clip(a, -1.0, 1.0) + 1.0) * (high - low)
        terminal = term > 0.5
        return OfflineDataset(observations=obs, actions=actions, rewards=r, next_observations=nxt,
                              terminals=terminal, truncations=np.zeros_like(terminal),
                              metadata={"synthetic": True, **(metadata or {})})


class TransitionModel(NamedTuple):
    """A fitted transition generator: config, network params, codec, and the fit's loss curve [steps // 100]."""

    config: SynthConfig
    params: Any
    codec: TransitionCodec
    losses: np.ndarray


def _generator_step(config: SynthConfig, net: Denoiser, opt: Any, params: Any, opt_state: Any, x0: jax.Array,
                    key: jax.Array):
    """One Adam step of the transition generator on standardised vectors x0 [B, D]: (params, opt_state, loss)."""
    model_fn = lambda p: (lambda x, t, cond, use_cond: net.apply(p, x, t))
    loss, grads = jax.value_and_grad(lambda p: generator_loss(key, config.generator, model_fn(p), x0))(params)
    updates, opt_state = opt.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


def _draw(config: SynthConfig, net: Denoiser, params: Any, key: jax.Array, batches: int, batch: int, width: int):
    """[batches, batch, D] standardised generated vectors (one reverse chain per batch, `lax.map` over batches)."""
    model_fn = lambda x, t, cond, use_cond: net.apply(params, x, t)
    sampler = SamplerConfig(clip_x0=(-config.clip_x0, config.clip_x0))
    return jax.lax.map(lambda k: generate(k, config.generator, model_fn, (batch, width), None, sampler),
                       jax.random.split(key, batches))


def fit_transition_model(key: jax.Array, config: SynthConfig, dataset: Any, spec: ActionSpec) -> TransitionModel:
    """Fit the generator to the dataset's standardised transition vectors (one jitted scan of `config.steps`
    Adam updates on uniform minibatches)."""
    codec = TransitionCodec.fit(dataset, spec)
    data = jnp.asarray(codec.encode(dataset))
    k_init, k_fit = jax.random.split(key)
    net = config.network(codec.width)
    params = net.init(k_init, jnp.zeros((1, codec.width)), jnp.zeros((1,), jnp.int32))
    params, losses = _fit(config, net, params, data, k_fit)
    return TransitionModel(config, params, codec, np.asarray(losses).reshape(-1, 100).mean(1)
                           if config.steps % 100 == 0 else np.asarray(losses))


@partial(jax.jit, static_argnames=("config", "net"))
def _fit(config: SynthConfig, net: Denoiser, params: Any, data: jax.Array, key: jax.Array):
    opt = optax.adam(optax.cosine_decay_schedule(config.lr, config.steps, alpha=0.1))

    def step(carry, k):
        params, opt_state = carry
        k_idx, k_loss = jax.random.split(k)
        x0 = data[jax.random.randint(k_idx, (config.batch_size,), 0, data.shape[0])]
        params, opt_state, loss = _generator_step(config, net, opt, params, opt_state, x0, k_loss)
        return (params, opt_state), loss

    (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), jax.random.split(key, config.steps))
    return params, losses


def sample_transitions(key: jax.Array, model: TransitionModel, n: int, batch: int = 4096) -> Any:
    """`n` generated transitions as an OfflineDataset (in the env's units), drawn in batches of `batch`."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"sample_transitions: n must be an integer >= 1, got {n!r}")
    batches = -(-int(n) // batch)
    z = _sample(model.config, model.params, key, batches, batch, model.codec.width)
    return model.codec.decode(np.asarray(z).reshape(-1, model.codec.width)[:n])


@partial(jax.jit, static_argnames=("config", "batches", "batch", "width"))
def _sample(config: SynthConfig, params: Any, key: jax.Array, batches: int, batch: int, width: int):
    return _draw(config, config.network(width), params, key, batches, batch, width)


def upsample(key: jax.Array, dataset: Any, spec: ActionSpec, total: int, config: SynthConfig = SynthConfig()
             ) -> tuple[Any, TransitionModel]:
    """The dataset plus generated transitions up to `total` (SynthER's upsampling): (dataset, the model)."""
    if total <= dataset.size:
        raise ValueError(f"upsample: total ({total}) must exceed the dataset's {dataset.size} transitions")
    k_fit, k_sample = jax.random.split(key)
    model = fit_transition_model(k_fit, config, dataset, spec)
    fake = sample_transitions(k_sample, model, int(total - dataset.size))
    return dataset.concatenate(fake, upsampled_to=int(total), real=dataset.size), model


def fidelity(generated: Any, real: Any, reward_fn: Callable | None = None,
             valid_fn: Callable | None = None) -> dict[str, float]:
    """Scores of generated transitions against real ones.

    reward_fn(obs [N, S], actions [N, ...]) -> [N] (the environment's reward of (s, a), NumPy or JAX):
    `reward_mae` = mean |r_gen - reward_fn(s_gen, a_gen)| and `reward_rel_error` = reward_mae / mean |r| over the
    rows where reward_fn is finite (`reward_defined_fraction`).
    valid_fn(obs [N, S]) -> [N] bool: `valid_fraction` of generated states (and of generated next states).
    Always: `mean_gap` / `std_gap`, the mean over features of |mean_gen - mean_real| / std_real and of
    |std_gen / std_real - 1| (observations, rewards; features constant in the real data are skipped)."""
    out: dict[str, float] = {}
    if reward_fn is not None:
        r = np.asarray(reward_fn(generated.observations, generated.actions), np.float64)
        defined = np.isfinite(r)  # e.g. a rate of a state with a negative channel gain is not a number
        out["reward_defined_fraction"] = float(np.mean(defined))
        err = np.abs(generated.rewards - r)[defined]
        out["reward_mae"] = float(np.mean(err)) if err.size else float("nan")
        out["reward_rel_error"] = out["reward_mae"] / float(np.mean(np.abs(r[defined])) + 1e-12) if err.size \
            else float("nan")
    if valid_fn is not None:
        out["valid_fraction"] = float(np.mean(np.asarray(valid_fn(generated.observations))))
        out["valid_fraction_next"] = float(np.mean(np.asarray(valid_fn(generated.next_observations))))
    feats = lambda d: np.concatenate([d.observations, d.rewards[:, None]], axis=1).astype(np.float64)
    g, x = feats(generated), feats(real)
    std = x.std(0)
    keep = std > 1e-6
    out["mean_gap"] = float(np.mean(np.abs(g.mean(0) - x.mean(0))[keep] / std[keep]))
    out["std_gap"] = float(np.mean(np.abs(g.std(0)[keep] / std[keep] - 1.0)))
    return out


# --- online: generated transitions mixed into an off-policy agent's minibatches (seed 000 eq. 22) ------------------
@dataclasses.dataclass(frozen=True)
class MixConfig:
    """Static settings of online mixing (`AgentConfig.synthetic`).

    ratio: fraction of every minibatch drawn from the generated pool (0 < ratio < 1; the real part keeps
    B - round(ratio B) rows). pool_size: generated transitions kept on device (raw units). refit_every: the pool's
    turnover period in iterations. fit_steps: generator updates per `refit_every` iterations.

    The generator trains continually and the pool rolls: every iteration (once updates have started) runs
    max(1, fit_steps // refit_every) generator updates on replay minibatches of `synth.batch_size` (features
    standardised with running statistics: an exponential average, rate 0.1, of `stats_samples` replay
    transitions per iteration) and regenerates the next pool_size // refit_every rows of the pool. The same work
    as a full refit every `refit_every` iterations, without a `lax.cond`: under `vmap` (a sweep) a cond runs both
    branches every iteration, which made the periodic refit cost `refit_every` times more. Generated rows enter
    the minibatches once the pool has turned over once. synth: the generator (its `steps` and lr schedule are
    unused: a constant lr).
    """

    ratio: float = 0.5
    pool_size: int = 8192
    refit_every: int = 50
    fit_steps: int = 500
    stats_samples: int = 1024
    synth: SynthConfig = SynthConfig(generator=GeneratorConfig(kind="ddpm", steps=20, schedule="vp"),
                                     hidden_dims=(256, 256, 256), steps=1)

    def __post_init__(self) -> None:
        if not isinstance(self.ratio, (int, float)) or not 0.0 < self.ratio < 1.0:
            raise ValueError(f"MixConfig.ratio must be in (0, 1), got {self.ratio!r}")
        for name in ("pool_size", "refit_every", "fit_steps", "stats_samples"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"MixConfig.{name} must be an integer >= 1, got {value!r}")
        if self.pool_size < self.refit_every:
            raise ValueError(f"MixConfig.pool_size ({self.pool_size}) must be >= refit_every ({self.refit_every})")
        if not isinstance(self.synth, SynthConfig):
            raise TypeError(f"MixConfig.synth must be a SynthConfig, got {type(self.synth).__name__}")

    def fake_rows(self, batch_size: int) -> int:
        return int(round(self.ratio * batch_size))

    @property
    def rows_per_iteration(self) -> int:
        return self.pool_size // self.refit_every

    @property
    def steps_per_iteration(self) -> int:
        return max(1, self.fit_steps // self.refit_every)


class MixState(NamedTuple):
    """params, opt_state: the generator's; pool [P, D] generated vectors in raw units; mean, std [D]: the running
    standardisation; written: int32 pool rows regenerated so far; ready: bool, the pool has turned over once."""

    params: Any
    opt_state: Any
    pool: jax.Array
    mean: jax.Array
    std: jax.Array
    written: jax.Array
    ready: jax.Array


def _vectors(batch: Any, action_dim: int, discrete: bool, gamma: jax.Array) -> jax.Array:
    """Replay minibatch (1-step: discount = gamma (1 - terminal)) -> [B, D] = [s, a, r, s', terminal]."""
    a = 2.0 * jax.nn.one_hot(batch.action, action_dim) - 1.0 if discrete else batch.action
    terminal = 1.0 - batch.discount / jnp.maximum(gamma, 1e-8)
    return jnp.concatenate([batch.obs, a, batch.reward[:, None], batch.next_obs, terminal[:, None]], axis=1)


def mix_init(key: jax.Array, mix: MixConfig, obs_dim: int, action_dim: int) -> MixState:
    width = 2 * obs_dim + action_dim + 2
    net = mix.synth.network(width)
    params = net.init(key, jnp.zeros((1, width)), jnp.zeros((1,), jnp.int32))
    opt = optax.adam(mix.synth.lr)
    return MixState(params=params, opt_state=opt.init(params), pool=jnp.zeros((mix.pool_size, width)),
                    mean=jnp.zeros(width), std=jnp.ones(width), written=jnp.int32(0), ready=jnp.bool_(False))


def mix_step(mix: MixConfig, state: MixState, sample: Callable, key: jax.Array, action_dim: int, discrete: bool,
             gamma: jax.Array, active: jax.Array) -> MixState:
    """One iteration of the generator: running statistics, `steps_per_iteration` updates on replay minibatches
    `sample(key, n) -> Batch`, and the next `rows_per_iteration` pool rows regenerated. `active` False (updates
    have not started): the state is returned unchanged (a select, so the cost is the same; see MixConfig)."""
    width = state.mean.shape[0]
    net, opt = mix.synth.network(width), optax.adam(mix.synth.lr)
    k_stats, k_fit, k_pool = jax.random.split(key, 3)
    x = _vectors(sample(k_stats, mix.stats_samples), action_dim, discrete, gamma)
    rate = jnp.where(state.written == 0, 1.0, 0.1)
    mean = (1 - rate) * state.mean + rate * x.mean(0)
    std = (1 - rate) * state.std + rate * jnp.where(x.std(0) > 1e-6, x.std(0), 1.0)

    def step(carry, k):
        params, opt_state = carry
        k_b, k_l = jax.random.split(k)
        x0 = (_vectors(sample(k_b, mix.synth.batch_size), action_dim, discrete, gamma) - mean) / std
        params, opt_state, loss = _generator_step(mix.synth, net, opt, params, opt_state, x0, k_l)
        return (params, opt_state), loss

    (params, opt_state), _ = jax.lax.scan(step, (state.params, state.opt_state),
                                          jax.random.split(k_fit, mix.steps_per_iteration))
    rows = mix.rows_per_iteration
    fresh = _draw(mix.synth, net, params, k_pool, 1, rows, width)[0] * std + mean
    offset = (state.written % (rows * mix.refit_every))
    pool = jax.lax.dynamic_update_slice_in_dim(state.pool, fresh, offset, 0)
    written = state.written + rows
    new = MixState(params=params, opt_state=opt_state, pool=pool, mean=mean, std=std, written=written,
                   ready=written >= rows * mix.refit_every)
    return jax.tree_util.tree_map(lambda n, o: jnp.where(active, n, o), new, state)


def mix_batch(mix: MixConfig, state: MixState, real: Any, key: jax.Array, obs_dim: int, action_dim: int,
              discrete: bool, gamma: jax.Array) -> Any:
    """The minibatch the agent learns from: `real` (a Batch of B rows) with its last fake_rows(B) rows replaced by
    generated transitions from the pool once it exists (before: `real` unchanged). Generated rows: actions clipped
    to [-1, 1] (argmax for discrete), terminal = (decoded terminal > 0.5), discount = gamma (1 - terminal)."""
    n_fake = mix.fake_rows(real.reward.shape[0])
    filled = mix.rows_per_iteration * mix.refit_every  # rows beyond are never written (pool_size % refit_every)
    z = state.pool[jax.random.randint(key, (n_fake,), 0, filled)]
    s, a = obs_dim, action_dim
    obs, act, rew = z[:, :s], z[:, s:s + a], z[:, s + a]
    nxt, term = z[:, s + a + 1:2 * s + a + 1], z[:, -1] > 0.5
    act = jnp.argmax(act, -1).astype(real.action.dtype) if discrete else jnp.clip(act, -1.0, 1.0)
    fake = type(real)(obs=obs, action=act, reward=rew, next_obs=nxt, discount=gamma * (1.0 - term))
    mixed = jax.tree_util.tree_map(lambda r, f: jnp.concatenate([r[:-n_fake], f.astype(r.dtype)]), real, fake)
    return jax.tree_util.tree_map(lambda m, r: jnp.where(state.ready, m, r), mixed, real)
