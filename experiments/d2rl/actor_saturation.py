"""Why the GDM actor stalled: how the gradient through the action clip shapes what a DM-DDPG actor learns.

Trains the A. w/ GDM agent (Designed R.) with each `ActorConfig.clip_gradient` ("zero": the clip's own
derivative, as GDMOPT's `torch.clamp`; "straight_through": identity backward) and the A. w/o GDM MLP actor, on the
same seeds, then probes each trained policy on 256 fresh FD-ISAC slots with 16 chains per slot:

- saturation: mean |a| and the fraction of action entries with |a| > 0.97 (the box is [-1, 1]);
- state dependence: std over slots of the per-slot mean action (0: the same action for every channel);
- chain spread: std over the 16 chains of one slot (the policy's own randomness);
- sum rate C (bit/s/Hz) of one chain per slot, and the within-slot correlation of the critic's min Q with C
  over the 16 chains (does the critic rank the actor's own candidates?).

    python experiments/d2rl/actor_saturation.py                  # quick scale, 3000 epochs, 2 seeds (~4 min)

Writes results/<scale>/actor_saturation.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff_rl.agents.base import make_critic
from jaxdiff_rl.agents.networks import actor_forward
from jaxdiff_rl.train.sweep import grid, with_seeds
from jaxdiff_rl.train import make_trainer
from jaxdiff_rl.train.off_policy import _to_env_action

# run as a script (python experiments/d2rl/<name>.py): the repository root holds the `experiments` package
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.d2rl.common import RESULTS, SCALES, Scale, make_env  # noqa: E402

VARIANTS = {"GDM actor, clip gradient zero": ("zero", True),
            "GDM actor, clip gradient straight-through": ("straight_through", True),
            "MLP actor": ("straight_through", False)}


def probe_policy(scale: Scale, config: Any, trainer: Any, agent: Any, slots: int, chains: int, key: jax.Array
                 ) -> dict[str, float]:
    """The statistics of the module docstring for one trained agent (unbatched parameters)."""
    env, params = make_env(scale)
    k_reset, k_act = jax.random.split(key)
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(k_reset, slots), params)
    dim = trainer.spec.dim
    actions = actor_forward(config.actor, agent.actor, k_act, jnp.repeat(obs, chains, 0), dim, False).action
    actions = actions.reshape(slots, chains, dim)

    def sum_rate(state, action):
        return env.step(jax.random.key(0), state, _to_env_action(trainer.spec, action), params)[5]["sum_rate"]

    rates = jax.vmap(lambda s, a: jax.vmap(lambda x: sum_rate(s, x))(a))(env_state, actions)  # [slots, chains]
    critic = make_critic(config, dim, False)
    q = critic.apply(agent.critic, jnp.repeat(obs, chains, 0), actions.reshape(slots * chains, dim))
    q = np.asarray(q.min(0).reshape(slots, chains), np.float64)
    r = np.asarray(rates, np.float64)
    a = np.asarray(actions, np.float64)
    qc, rc = q - q.mean(1, keepdims=True), r - r.mean(1, keepdims=True)
    denom = np.sqrt((qc**2).sum(1) * (rc**2).sum(1))
    corr = (qc * rc).sum(1)[denom > 0] / denom[denom > 0]  # deterministic actors have no within-slot spread
    return {
        "mean_abs_action": float(np.abs(a).mean()),
        "saturated_fraction": float((np.abs(a) > 0.97).mean()),
        "state_dependence_std": float(a.mean(1).std(0).mean()),
        "chain_spread_std": float(a.std(1).mean()),
        "sum_rate": float(r[:, 0].mean()),
        "q_rate_correlation_within_slot": float(corr.mean()) if corr.size else float("nan"),
    }


def run(scale: Scale, epochs: int, seeds: int, slots: int = 256, chains: int = 16) -> dict[str, Any]:
    env, params = make_env(scale)
    scale = dataclasses.replace(scale, epochs=epochs)
    out: dict[str, Any] = {"scale": scale.name, "epochs": epochs, "seeds": seeds, "variants": {}}
    for label, (clip_gradient, gdm) in VARIANTS.items():
        config = dataclasses.replace(scale, clip_gradient=clip_gradient).config("designed", action_gdm=gdm)
        trainer = make_trainer(config, env, params)
        keys, hp = with_seeds(grid(scale.base_hparams()), seeds)
        state, metrics = jax.jit(jax.vmap(trainer.train))(keys, hp)
        objective = np.asarray(metrics["objective_mean"])
        per_seed = [probe_policy(scale, config, trainer, jax.tree_util.tree_map(lambda x: x[i], state.agent),
                                 slots, chains, jax.random.key(100 + i)) for i in range(seeds)]
        stats = {k: float(np.mean([p[k] for p in per_seed])) for k in per_seed[0]}
        stats["training_sum_rate_last_500"] = float(objective[:, -500:].mean())
        out["variants"][label] = stats
        print(f"{label:42s} " + "  ".join(f"{k} {v:.3f}" for k, v in stats.items()), flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="quick", choices=sorted(SCALES))
    parser.add_argument("--epochs", type=int, default=3000)
    parser.add_argument("--seeds", type=int, default=2)
    args = parser.parse_args(argv)
    if args.epochs < 1 or args.seeds < 1:
        parser.error("--epochs and --seeds must be >= 1")
    scale = SCALES[args.scale]
    result = run(scale, args.epochs, args.seeds)
    path = RESULTS / scale.name / "actor_saturation.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
