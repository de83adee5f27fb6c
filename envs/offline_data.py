"""Offline RL datasets: transitions collected from any gymnax-API environment (ours or gymnax's) by named behaviour
policies in one jitted pass, a checked schema, .npz save / load, and a loader for D4RL / Minari-style dicts.

    data = collect(key, env, params, {"noisy-optimum": 1.0}, num_envs=256, num_steps=64, noise_std=0.3)
    data.save("msr80-noisy.npz");  data = OfflineDataset.load("msr80-noisy.npz")
    data = from_d4rl(d4rl_dict, env="gymnax:Pendulum-v1")      # a user's own logs

Schema (N transitions, every array has the leading axis N):
    observations [N, obs_dim] float32, actions [N, A] float32 (continuous, in the env's Box units) or [N] int32
    (discrete), rewards [N] float32, next_observations [N, obs_dim] float32 (the pre-reset final observation at
    an episode end), terminals [N] bool (natural end: no bootstrap), truncations [N] bool (time limit);
    metadata: {"env", "env_params", "policy", "seed", ...} (JSON-able).

Behaviour policies (`behaviour_policies`): "random" and the env's own baselines (`env.policies()`: heuristics and
the exact optimum where it is known), "noisy-optimum" (the exact optimal action plus N(0, noise_std^2) in
normalised [-1, 1] action units and, with probability `epsilon`, a uniformly random action; continuous envs with
`optimal_action`), "epsilon-<name>" for any named discrete policy, and any extra policy passed in (e.g. a
partially trained agent, `agent_policy`). A mixture {name: weight} splits the parallel environments between the
policies in proportion to the weights (D4RL's "medium-expert" = {"medium": 0.5, "expert": 0.5}).
"""

from __future__ import annotations

import dataclasses
import json
from functools import partial
from pathlib import Path
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["FIELDS", "SCHEMA", "OfflineDataset", "collect", "behaviour_policies", "agent_policy", "from_d4rl",
           "params_to_json"]

SCHEMA = "jaxdiff-rl/offline-v1"
FIELDS = ("observations", "actions", "rewards", "next_observations", "terminals", "truncations")


def params_to_json(params: Any) -> dict[str, Any]:
    """An EnvParams dataclass as a JSON-able dict (arrays as lists)."""
    if params is None:
        return {}
    out = {}
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        out[f.name] = np.asarray(value).tolist() if hasattr(value, "shape") or isinstance(value, (list, tuple)) else value
    return out


@dataclasses.dataclass(frozen=True)
class OfflineDataset:
    """A fixed set of N transitions (NumPy arrays; see the module docstring for the schema). Checked on
    construction: a missing field, a wrong rank, a length mismatch or a non-finite value raises ValueError
    naming the field."""

    observations: np.ndarray
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: np.ndarray
    terminals: np.ndarray
    truncations: np.ndarray
    metadata: dict[str, Any] = dataclasses.field(default_factory=dict)

    def __post_init__(self) -> None:
        obs = np.asarray(self.observations)
        if obs.ndim != 2 or obs.shape[0] < 1:
            raise ValueError(f"OfflineDataset.observations must be [N, obs_dim] with N >= 1, got shape {obs.shape}")
        n = obs.shape[0]
        actions = np.asarray(self.actions)
        discrete = np.issubdtype(actions.dtype, np.integer)
        expect = {"observations": (2, np.float32), "next_observations": (2, np.float32),
                  "actions": (1 if discrete else 2, np.int32 if discrete else np.float32),
                  "rewards": (1, np.float32), "terminals": (1, bool), "truncations": (1, bool)}
        for name, (ndim, dtype) in expect.items():
            value = np.asarray(getattr(self, name))
            if value.ndim != ndim or value.shape[0] != n:
                want = {1: "[N]", 2: "[N, dim]"}[ndim]
                raise ValueError(f"OfflineDataset.{name} must be {want} with N = {n} (the observations' length), "
                                 f"got shape {value.shape}")
            if dtype is not bool and not np.all(np.isfinite(value)):
                raise ValueError(f"OfflineDataset.{name} has non-finite values")
            object.__setattr__(self, name, value.astype(dtype))
        if self.next_observations.shape[1] != obs.shape[1]:
            raise ValueError(f"OfflineDataset.next_observations must be [N, {obs.shape[1]}] like the observations, "
                             f"got {self.next_observations.shape}")
        if discrete and np.any(self.actions < 0):
            raise ValueError("OfflineDataset.actions: discrete actions must be >= 0")
        if not isinstance(self.metadata, dict):
            raise TypeError(f"OfflineDataset.metadata must be a dict, got {type(self.metadata).__name__}")

    @property
    def size(self) -> int:
        return int(self.observations.shape[0])

    @property
    def discrete(self) -> bool:
        return bool(np.issubdtype(self.actions.dtype, np.integer))

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in FIELDS}

    def subset(self, n: int, seed: int = 0) -> "OfflineDataset":
        """A uniformly random subset of `n` transitions (1 <= n <= size), seeded."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= self.size:
            raise ValueError(f"subset: n must be an integer in [1, {self.size}], got {n!r}")
        idx = np.sort(np.random.default_rng(seed).choice(self.size, int(n), replace=False))
        meta = {**self.metadata, "subset_of": self.size, "subset_seed": seed}
        return OfflineDataset(**{k: v[idx] for k, v in self.arrays().items()}, metadata=meta)

    def concatenate(self, other: "OfflineDataset", **metadata: Any) -> "OfflineDataset":
        """This dataset followed by `other` (same shapes)."""
        return OfflineDataset(**{k: np.concatenate([v, getattr(other, k)]) for k, v in self.arrays().items()},
                              metadata={**self.metadata, **metadata})

    def episode_returns(self) -> np.ndarray:
        """Undiscounted returns of the complete episodes (those that end with a terminal or a truncation), in
        storage order. Transitions must be stored episode-contiguously; a dataset from `collect` is split into its
        environments' lanes first (metadata "num_steps"), so a lane's unfinished last episode is not counted."""
        lane = int(self.metadata.get("num_steps") or self.size)
        lanes = self.size // lane if self.size % lane == 0 else 1
        lane = self.size // lanes
        out = []
        for i in range(lanes):
            rewards = self.rewards[i * lane:(i + 1) * lane].astype(np.float64)
            ends = np.flatnonzero((self.terminals | self.truncations)[i * lane:(i + 1) * lane])
            if ends.size:
                out.append(np.diff(np.concatenate([[0.0], np.cumsum(rewards)[ends]])))
        return np.concatenate(out).astype(np.float32) if out else np.zeros(0, np.float32)

    def save(self, path: str | Path) -> Path:
        """Write `<path>` (.npz, compressed) with the schema tag and the metadata as JSON."""
        path = Path(path)
        if path.suffix != ".npz":
            path = path.with_suffix(path.suffix + ".npz")
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(path, schema=np.asarray(SCHEMA), metadata=np.asarray(json.dumps(self.metadata)),
                            **self.arrays())
        return path

    @classmethod
    def load(cls, path: str | Path) -> "OfflineDataset":
        """Read a dataset written by `save`; ValueError names a missing field or a wrong shape."""
        path = Path(path)
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such dataset")
        with np.load(path, allow_pickle=False) as f:
            files = set(f.files)
            if "schema" not in files or str(f["schema"]) != SCHEMA:
                raise ValueError(f"{path}: not a {SCHEMA} dataset (schema tag "
                                 f"{str(f['schema']) if 'schema' in files else 'missing'}); for D4RL/Minari dicts use "
                                 f"from_d4rl")
            missing = [name for name in FIELDS if name not in files]
            if missing:
                raise ValueError(f"{path}: dataset is missing field(s) {missing}")
            arrays = {name: f[name] for name in FIELDS}
            meta = json.loads(str(f["metadata"])) if "metadata" in files else {}
        return cls(**arrays, metadata=meta)


# --- behaviour policies ---------------------------------------------------------------------------------------
def _space_info(env: Any, params: Any) -> tuple[bool, np.ndarray | None, np.ndarray | None, int]:
    space = env.action_space(params)
    if hasattr(space, "n"):
        return True, None, None, int(space.n)
    shape = tuple(space.shape)
    low = np.broadcast_to(np.asarray(space.low, np.float32), shape)
    high = np.broadcast_to(np.asarray(space.high, np.float32), shape)
    return False, low, high, int(np.prod(shape)) if shape else 1


def behaviour_policies(env: Any, params: Any, noise_std: float = 0.3, epsilon: float = 0.0,
                       extra: Mapping[str, Callable] | None = None) -> dict[str, Callable]:
    """Named per-environment policies `policy(key, obs, state, params) -> action` (see the module docstring).

    noise_std: std of the Gaussian noise of "noisy-optimum" in normalised [-1, 1] action units (>= 0).
    epsilon: probability of a uniformly random action in "noisy-optimum" and the "epsilon-<name>" policies."""
    if not 0.0 <= float(noise_std) < 10.0:
        raise ValueError(f"noise_std must be in [0, 10), got {noise_std!r}")
    if not 0.0 <= float(epsilon) <= 1.0:
        raise ValueError(f"epsilon must be in [0, 1], got {epsilon!r}")
    policies: dict[str, Callable] = dict(env.policies()) if hasattr(env, "policies") else {}
    if "random" not in policies:
        policies["random"] = lambda key, obs, state, p: env.action_space(p).sample(key)
    discrete, low, high, _ = _space_info(env, params)
    random = policies["random"]
    if not discrete and hasattr(env, "optimal_action"):
        lo, hi = jnp.asarray(low), jnp.asarray(high)

        def noisy_optimum(key, obs, state, p):
            k_opt, k_noise, k_eps, k_rand = jax.random.split(key, 4)
            best = env.optimal_action(k_opt, state, p)
            unit = 2.0 * (best - lo) / (hi - lo) - 1.0
            unit = jnp.clip(unit + noise_std * jax.random.normal(k_noise, unit.shape), -1.0, 1.0)
            action = lo + 0.5 * (unit + 1.0) * (hi - lo)
            return jnp.where(jax.random.uniform(k_eps) < epsilon, random(k_rand, obs, state, p), action)

        policies["noisy-optimum"] = noisy_optimum
    if discrete:
        for name, policy in list(policies.items()):
            if name == "random":
                continue

            def eps_policy(key, obs, state, p, policy=policy):
                k_pol, k_eps, k_rand = jax.random.split(key, 3)
                return jnp.where(jax.random.uniform(k_eps) < epsilon, random(k_rand, obs, state, p),
                                 policy(k_pol, obs, state, p))

            policies[f"epsilon-{name}"] = eps_policy
    policies.update(extra or {})
    return policies


def agent_policy(trainer: Any, state: Any, hparams: Any, explore: bool = False) -> Callable:
    """A trained (or partially trained) agent as a per-environment behaviour policy: `trainer` from
    `jaxdiff_rl.train.make_trainer`, `state` its (unstacked) RunnerState. explore=True samples the behaviour
    policy (exploration noise on), False the greedy one."""
    from jaxdiff_rl.agents.base import act
    from jaxdiff_rl.train.off_policy import _to_env_action

    config, spec = trainer.config, trainer.spec

    def policy(key, obs, env_state, params):
        flat = jnp.asarray(obs, jnp.float32).reshape(1, -1)
        a = act(key, config, state.agent, flat, hparams, spec.dim, spec.discrete, explore=explore)
        return _to_env_action(spec, a)[0]

    return policy


def _lane_assignment(weights: Mapping[str, float], num_envs: int) -> tuple[list[str], np.ndarray]:
    names = list(weights)
    w = np.asarray([float(weights[n]) for n in names], np.float64)
    if np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"policy mixture weights must be >= 0 with a positive sum, got {dict(weights)}")
    counts = np.floor(w / w.sum() * num_envs).astype(int)
    for i in np.argsort(-(w / w.sum() * num_envs - counts))[: num_envs - counts.sum()]:
        counts[i] += 1  # largest remainders
    return names, np.repeat(np.arange(len(names)), counts).astype(np.int32)


def collect(
    key: jax.Array,
    env: Any,
    params: Any,
    policy: str | Mapping[str, float],
    num_envs: int,
    num_steps: int,
    *,
    noise_std: float = 0.3,
    epsilon: float = 0.0,
    extra_policies: Mapping[str, Callable] | None = None,
    env_name: str | None = None,
    seed: int | None = None,
) -> OfflineDataset:
    """Roll `num_envs` parallel environments for `num_steps` steps each under a named behaviour policy or a
    mixture {name: weight} (environments split between the policies by weight) in one jitted pass.

    Transitions are stored lane by lane (each environment's steps contiguous), so `episode_returns` sees whole
    episodes. Returns an OfflineDataset of num_envs x num_steps transitions; metadata records the env, its
    params, the policy mixture, the noise settings and the seed. Raises ValueError for an unknown policy name
    (listing the valid ones) or counts < 1."""
    for name, value in (("num_envs", num_envs), ("num_steps", num_steps)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"collect: {name} must be an integer >= 1, got {value!r}")
    available = behaviour_policies(env, params, noise_std, epsilon, extra_policies)
    weights = {policy: 1.0} if isinstance(policy, str) else dict(policy)
    unknown = [n for n in weights if n not in available]
    if unknown:
        raise ValueError(f"collect: unknown behaviour polic{'y' if len(unknown) == 1 else 'ies'} {unknown} for "
                         f"{type(env).__name__}; valid: {sorted(available)}")
    names, lanes = _lane_assignment(weights, int(num_envs))
    fns = tuple(available[n] for n in names)
    obs, act, rew, nxt, term, trunc = _rollout(env, fns, params, key, jnp.asarray(lanes), int(num_steps))
    flat = lambda x, tail: np.asarray(x).swapaxes(0, 1).reshape(-1, *tail)  # [T, N, ...] -> lane-major [N T, ...]
    obs_dim = int(np.prod(np.shape(obs)[2:])) if np.ndim(obs) > 2 else 1
    actions = np.asarray(act)
    meta = {"env": env_name or type(env).__name__, "env_params": params_to_json(params),
            "policy": {n: float(weights[n]) for n in names}, "noise_std": float(noise_std),
            "epsilon": float(epsilon), "seed": seed, "num_envs": int(num_envs), "num_steps": int(num_steps)}
    return OfflineDataset(
        observations=flat(obs, (obs_dim,)), actions=flat(actions, actions.shape[2:]), rewards=flat(rew, ()),
        next_observations=flat(nxt, (obs_dim,)), terminals=flat(term, ()), truncations=flat(trunc, ()),
        metadata=meta,
    )


@partial(jax.jit, static_argnames=("env", "fns", "num_steps"))
def _rollout(env, fns, params, key, lanes, num_steps):
    n = lanes.shape[0]
    k_reset, k_scan = jax.random.split(key)
    obs, state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, n), params)

    def one_action(k, o, s, lane):
        if len(fns) == 1:
            return fns[0](k, o, s, params)
        return jax.lax.switch(lane, [lambda k, o, s, f=f: f(k, o, s, params) for f in fns], k, o, s)

    def body(carry, k):
        obs, state = carry
        k_act, k_env = jax.random.split(k)
        action = jax.vmap(one_action)(jax.random.split(k_act, n), obs, state, lanes)
        obs2, state2, reward, terminated, truncated, info = jax.vmap(env.step, in_axes=(0, 0, 0, None))(
            jax.random.split(k_env, n), state, action, params)
        flat = lambda x: jnp.asarray(x, jnp.float32).reshape(n, -1)
        out = (flat(obs), action, jnp.asarray(reward, jnp.float32), flat(info["final_observation"]),
               jnp.asarray(terminated, bool), jnp.asarray(truncated, bool) & ~jnp.asarray(terminated, bool))
        return (obs2, state2), out

    _, outs = jax.lax.scan(body, (obs, state), jax.random.split(k_scan, num_steps))
    return outs


# --- bring your own logs --------------------------------------------------------------------------------------
def from_d4rl(data: Mapping[str, Any], metadata: Mapping[str, Any] | None = None, **extra: Any) -> OfflineDataset:
    """A D4RL (`observations, actions, rewards, terminals, timeouts[, next_observations]`) or Minari-style
    (`truncations` instead of `timeouts`) dict of arrays as an OfflineDataset.

    Without `next_observations` they are the following row's observation within an episode; the last step of
    an episode: a terminal step keeps a placeholder (it never bootstraps), a timeout step has no true successor and
    is dropped (as D4RL's `qlearning_dataset` does).
    `extra` / `metadata` go to the metadata (e.g. env="gymnax:Pendulum-v1"). ValueError names a missing
    field."""
    if not isinstance(data, Mapping):
        raise TypeError(f"from_d4rl expects a dict of arrays, got {type(data).__name__}")
    missing = [k for k in ("observations", "actions", "rewards", "terminals") if k not in data]
    if missing:
        raise ValueError(f"from_d4rl: missing field(s) {missing}; has {sorted(data)}")
    obs = np.asarray(data["observations"], np.float32)
    obs = obs.reshape(obs.shape[0], -1)
    n = obs.shape[0]
    timeout_key = "timeouts" if "timeouts" in data else "truncations" if "truncations" in data else None
    timeouts = np.asarray(data[timeout_key], bool).reshape(-1) if timeout_key else np.zeros(n, bool)
    terminals = np.asarray(data["terminals"], bool).reshape(-1)
    actions = np.asarray(data["actions"])
    actions = actions.astype(np.int32) if np.issubdtype(actions.dtype, np.integer) else actions.astype(np.float32)
    if actions.ndim == 1 and not np.issubdtype(actions.dtype, np.integer):
        actions = actions[:, None]
    rewards = np.asarray(data["rewards"], np.float32).reshape(-1)
    for name, value in (("actions", actions), ("rewards", rewards), ("terminals", terminals),
                        ("timeouts", timeouts)):
        if value.shape[0] != n:
            raise ValueError(f"from_d4rl: {name} has {value.shape[0]} rows, observations {n}")
    if "next_observations" in data:
        nxt = np.asarray(data["next_observations"], np.float32).reshape(n, -1)
        keep = np.arange(n)
        obs_keep = obs
    else:
        if n < 2:
            raise ValueError("from_d4rl: without next_observations at least 2 rows are needed")
        # a terminal step never bootstraps (its successor is a placeholder); a time-limit step needs the true
        # final observation, which D4RL does not store, so it is dropped, as is a last row that is not terminal
        has_next = np.concatenate([~timeouts[:-1], [False]])
        keep = np.flatnonzero(has_next | terminals)
        nxt = obs[np.minimum(keep + 1, n - 1)]
        nxt = np.where(terminals[keep, None], obs[keep], nxt)
        obs_keep = obs[keep]
    meta = {"source": "d4rl", **(metadata or {}), **extra}
    return OfflineDataset(observations=obs_keep, actions=actions[keep], rewards=rewards[keep],
                          next_observations=nxt if "next_observations" not in data else nxt[keep], terminals=terminals[keep],
                          truncations=(timeouts & ~terminals)[keep], metadata=meta)
