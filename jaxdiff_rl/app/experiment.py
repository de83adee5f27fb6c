"""A training experiment described by plain data (`TrainSpec`): algorithm, environment, seeds, static settings
and hyperparameter lists (a list with several values becomes a sweep axis). The CLI, the demo and the notebook
build runs through it, and `run.json` stores it so `jaxdiff-rl eval` can rebuild the same program.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
from pathlib import Path
from typing import Any

import jax
import numpy as np

import envs
from jaxdiff_rl import agents
from jaxdiff_rl.agents.ppo import MULTI_AGENT_ON_POLICY
from jaxdiff_rl.agents import (MA_ALGORITHMS, OFFLINE_ALGORITHMS, ON_POLICY_ALGORITHMS, ActorConfig, AgentConfig, Hparams,
                               OfflineConfig, OfflineHparams, PPOConfig, PPOHparams)
from jaxdiff_rl.app.runner import RunResult, restore_latest, run
from jaxdiff_rl.train.sweep import grid, with_seeds
from jaxdiff_rl.train import Trainer, make_trainer

__all__ = ["TrainSpec", "build", "train_spec", "evaluate_spec", "STATIC_FIELDS", "HPARAM_FIELDS"]

STATIC_FIELDS = ("num_envs", "steps_per_iter", "updates_per_iter", "num_iterations", "batch_size", "buffer_size",
                 "n_step", "learning_starts", "action_candidates", "q_guidance", "entropy_samples",
                 "entropy_components", "auto_alpha", "entropy_in_target", "target_entropy",
                 "num_steps", "total_timesteps", "update_epochs", "num_minibatches",  # on-policy
                 "eval_steps", "edp")  # offline
OFFLINE_STATIC = ("num_envs", "updates_per_iter", "num_iterations", "batch_size", "action_candidates", "eval_steps",
                  "edp")
OFF_POLICY_HPARAMS = tuple(f.name for f in dataclasses.fields(Hparams))
ON_POLICY_HPARAMS = tuple(f.name for f in dataclasses.fields(PPOHparams))
OFFLINE_HPARAMS = tuple(f.name for f in dataclasses.fields(OfflineHparams))
HPARAM_FIELDS = OFF_POLICY_HPARAMS + tuple(f for f in ON_POLICY_HPARAMS if f not in OFF_POLICY_HPARAMS) + tuple(
    f for f in OFFLINE_HPARAMS if f not in OFF_POLICY_HPARAMS and f not in ON_POLICY_HPARAMS)


@dataclasses.dataclass
class TrainSpec:
    """What to train (JSON-able).

    algo: one of `agents.ALGORITHMS`; actor_kind overrides the algorithm's actor (e.g. "categorical" for the
    discrete-SAC baseline); base: take the defaults of this algorithm (e.g. "d2sac": SAC with D2SAC's settings);
    env: registered name; env_overrides: EnvParams fields; num_seeds, seed: runs per setting and the base seed;
    static: AgentConfig fields from STATIC_FIELDS; hidden: actor and critic widths; diffusion_steps: T (the
    chain's steps); generator: the diffusion actor's generator ("ddpm", "flow", "consistency"; None: default);
    logit_scale: a discrete diffusion actor's inverse softmax temperature (None: 1);
    hparams: {Hparams field: value or list of values} (lists form a grid; every combination x every seed).
    dataset: an offline dataset (.npz, `envs.offline_data`) for the offline algorithms (bc, td3_bc, iql,
    diffusion_ql, fql); env defaults to the dataset's (its metadata "env") when left at "".
    """

    algo: str = "d2sac"
    env: str = "msr-3"
    num_seeds: int = 1
    seed: int = 0
    actor_kind: str | None = None
    base: str | None = None
    env_overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    static: dict[str, int] = dataclasses.field(default_factory=dict)
    hidden: tuple[int, ...] | None = None
    diffusion_steps: int | None = None
    generator: str | None = None
    logit_scale: float | None = None
    hparams: dict[str, Any] = dataclasses.field(default_factory=dict)
    dataset: str | None = None

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "TrainSpec":
        data = dict(data)
        if data.get("hidden") is not None:
            data["hidden"] = tuple(data["hidden"])
        return cls(**data)


def make_env(name: str, **overrides: Any) -> tuple[Any, Any]:
    """`envs.make(name, ...)`, or a gymnax environment spelled "gymnax:<id>" (e.g. "gymnax:CartPole-v1"; needs the
    `gymnax` package), its params with `overrides` replaced."""
    if isinstance(name, str) and name.startswith("gymnax:"):
        try:
            import gymnax
        except ImportError as exc:
            raise ValueError(f"environment {name!r} needs gymnax (pip install gymnax)") from exc
        env, params = gymnax.make(name.split(":", 1)[1])
        unknown = set(overrides) - {f.name for f in dataclasses.fields(params)}
        if unknown:
            raise ValueError(f"{name}: unknown env param(s) {sorted(unknown)}")
        return env, params.replace(**overrides)
    return envs.make(name, **overrides)


def _on_policy_config(spec: TrainSpec, discrete: bool) -> PPOConfig:
    if spec.diffusion_steps is not None or spec.generator is not None:
        raise ValueError(f"diffusion_steps / generator: {spec.algo} takes them as PPOConfig settings, not here")
    if spec.base is not None and spec.base != spec.algo:
        raise ValueError(f"base={spec.base!r}: {spec.algo} takes its own defaults")
    overrides: dict[str, Any] = dict(spec.static)
    overrides["actor"] = spec.actor_kind or ("categorical" if discrete else "gaussian")
    if spec.hidden is not None:
        overrides["hidden_dims"] = tuple(spec.hidden)
    return agents.default_config(spec.algo, **overrides)


def _actor_changes(spec: TrainSpec, actor: ActorConfig) -> ActorConfig:
    changes: dict[str, Any] = {}
    if spec.actor_kind is not None:
        changes["kind"] = spec.actor_kind
    if spec.hidden is not None:
        changes["hidden_dims"] = tuple(spec.hidden)
    if spec.diffusion_steps is not None:
        changes["diffusion_steps"] = spec.diffusion_steps
    if spec.generator is not None:
        changes["generator"] = spec.generator
    if spec.logit_scale is not None:
        changes["logit_scale"] = float(spec.logit_scale)
    return ActorConfig(**{**dataclasses.asdict(actor), **changes}) if changes else actor


def _config(spec: TrainSpec) -> AgentConfig:
    base = spec.base or spec.algo
    config = agents.default_config(base, algo=spec.algo, **spec.static)
    critic = tuple(spec.hidden) if spec.hidden is not None else config.critic_hidden_dims
    return config.replace(actor=_actor_changes(spec, config.actor), critic_hidden_dims=critic)


MULTI_AGENT_STATIC = ("num_envs", "steps_per_iter", "updates_per_iter", "num_iterations", "batch_size", "buffer_size",
                      "learning_starts")


def _multi_agent_config(spec: TrainSpec) -> Any:
    if spec.base is not None and spec.base != spec.algo:
        raise ValueError(f"base={spec.base!r}: {spec.algo} takes its own defaults")
    bad = sorted(set(spec.static) - set(MULTI_AGENT_STATIC))
    if bad:
        raise ValueError(f"{spec.algo} is multi-agent: {bad} are not its settings (valid: {list(MULTI_AGENT_STATIC)})")
    config = agents.default_config(spec.algo, **spec.static)
    critic = tuple(spec.hidden) if spec.hidden is not None else config.critic_hidden_dims
    return config.replace(actor=_actor_changes(spec, config.actor), critic_hidden_dims=critic)


def _offline_config(spec: TrainSpec, discrete: bool) -> OfflineConfig:
    if spec.base is not None and spec.base != spec.algo:
        raise ValueError(f"base={spec.base!r}: {spec.algo} takes its own defaults")
    bad = sorted(set(spec.static) - set(OFFLINE_STATIC))
    if bad:
        raise ValueError(f"{spec.algo} is offline: {bad} are not its settings (valid: {list(OFFLINE_STATIC)})")
    config = agents.default_config(spec.algo, **({"discrete": discrete} if spec.algo == "iql" else {}),
                                   **spec.static)
    critic = tuple(spec.hidden) if spec.hidden is not None else config.critic_hidden_dims
    return config.replace(actor=_actor_changes(spec, config.actor), critic_hidden_dims=critic)


def load_offline_dataset(spec: TrainSpec) -> tuple[Any, str]:
    """(the spec's dataset, the env name to train in: spec.env, else the dataset's metadata "env")."""
    from envs.offline_data import OfflineDataset

    if spec.dataset is None:
        raise ValueError(f"{spec.algo} is an offline algorithm: give a dataset (--dataset PATH, made by "
                         f"`jaxdiff-rl dataset collect`)")
    data = OfflineDataset.load(spec.dataset)
    env = spec.env or data.metadata.get("env")
    if not env:
        raise ValueError(f"{spec.dataset}: the dataset names no environment; pass --env")
    return data, env


def build(spec: TrainSpec) -> tuple[Trainer, jax.Array, Hparams, list[dict[str, float]]]:
    """(trainer, keys [R], hparams [R], settings) for a spec; R = num_seeds x prod(len(list values)).
    settings[g] is the hyperparameter combination of grid point g; run r uses setting r % G, seed r // G.

    Raises ValueError (unknown algorithm/env/field, values out of range) before anything compiles."""
    if spec.num_seeds < 1:
        raise ValueError(f"num_seeds must be >= 1, got {spec.num_seeds}")
    offline = spec.algo in OFFLINE_ALGORITHMS
    dataset, env_name = load_offline_dataset(spec) if offline else (None, spec.env)
    if spec.dataset is not None and not offline:
        raise ValueError(f"dataset: {spec.algo} collects its own data; the offline algorithms are "
                         f"{list(OFFLINE_ALGORITHMS)}")
    env, env_params = make_env(env_name, **spec.env_overrides)
    unknown = set(spec.static) - set(STATIC_FIELDS)
    if unknown:
        raise ValueError(f"unknown static setting(s) {sorted(unknown)}; valid: {list(STATIC_FIELDS)}")
    on_policy = spec.algo in ON_POLICY_ALGORITHMS
    multi_agent = spec.algo in MA_ALGORITHMS or spec.algo in MULTI_AGENT_ON_POLICY
    if multi_agent != isinstance(env, envs.MultiAgentEnv):
        raise ValueError(f"{spec.algo} needs a {'multi' if multi_agent else 'single'}-agent environment, got {env_name!r}"
                         f" (multi-agent: {envs.multi_agent_names()}; multi-agent algorithms: {[*MA_ALGORITHMS, *MULTI_AGENT_ON_POLICY]})")
    if multi_agent:
        from jaxdiff_rl.train.multi_agent import multi_agent_spec
        discrete = multi_agent_spec(env, env_params)[0].discrete
    else:
        discrete = hasattr(env.action_space(env_params), "n")
    if on_policy:
        config = _on_policy_config(spec, discrete)
    elif multi_agent:
        config = _multi_agent_config(spec)
    elif offline:
        config = _offline_config(spec, discrete)
    else:
        config = _config(spec)
    valid = ON_POLICY_HPARAMS if on_policy else OFFLINE_HPARAMS if offline else OFF_POLICY_HPARAMS
    unknown = set(spec.hparams) - set(valid)
    if unknown:
        raise ValueError(f"unknown hyperparameter(s) {sorted(unknown)} for {spec.algo}; valid: {list(valid)}")
    scalars = {k: v for k, v in spec.hparams.items() if not isinstance(v, (list, tuple))}
    lists = {k: list(v) for k, v in spec.hparams.items() if isinstance(v, (list, tuple))}
    base_hp = agents.default_hparams(spec.algo if on_policy or offline else (spec.base or spec.algo),
                                     **{k: float(v) for k, v in scalars.items()})
    hp = grid(base_hp, **lists)
    agents.validate_hparams(hp)
    settings = [dict(zip(lists, combo)) for combo in itertools.product(*lists.values())] or [{}]
    keys, hp = with_seeds(hp, spec.num_seeds, spec.seed)
    return make_trainer(config, env, env_params, dataset), keys, hp, settings


def train_spec(spec: TrainSpec, out_dir: str | Path | None = None, chunk_iterations: int | None = None,
               resume: bool = False, progress: bool = True) -> RunResult:
    """Build and run a spec (see `runner.run`); run.json records the spec."""
    trainer, keys, hp, settings = build(spec)
    return run(trainer, hp, keys, out_dir=out_dir, chunk_iterations=chunk_iterations, resume=resume,
               progress=progress, description={"spec": spec.to_json(), "settings": settings})


def evaluate_spec(trainer: Trainer, state: Any, hp: Hparams, num_steps: int, seed: int = 1,
                  num_envs: int | None = None) -> dict[str, np.ndarray]:
    """Greedy evaluation of every run of a stacked state in `num_envs` environments (default the config's):
    {metric: [R]}."""
    runs = int(jax.tree_util.tree_leaves(hp)[0].shape[0])
    keys = jax.random.split(jax.random.PRNGKey(seed), runs)
    fn = jax.jit(jax.vmap(lambda s, k, h: trainer.evaluate(s, k, h, num_steps, num_envs=num_envs)))
    return {k: np.asarray(v) for k, v in fn(state, keys, hp).items()}


def load_spec(run_dir: str | Path) -> tuple[TrainSpec, dict[str, Any]]:
    info = json.loads((Path(run_dir) / "run.json").read_text())
    if "spec" not in info:
        raise ValueError(f"{run_dir}/run.json has no 'spec' (not written by jaxdiff-rl train)")
    return TrainSpec.from_json(info["spec"]), info


def restore_state(run_dir: str | Path, trainer: Trainer, keys: jax.Array, hp: Hparams) -> Any:
    """The last checkpointed (stacked) RunnerState of a run directory."""
    import orbax.checkpoint as ocp

    with ocp.CheckpointManager(Path(run_dir).resolve() / "checkpoints") as manager:
        restored = restore_latest(manager, jax.eval_shape(jax.vmap(trainer.init), keys, hp))
    if restored is None:
        raise ValueError(f"{run_dir}: no checkpoint found")
    return restored[1]

