"""What the trained actors are worth without the training-time noise: Fig. 2's claim ("A. w/ GDM ... converges to
a higher sum rate") read on the learned policies rather than on the training curve.

The training sum rate of Fig. 2 is the behaviour policy's: epsilon-greedy (0.1) around the actor, and for the GDM
actor one stochastic reverse chain per slot (its chains spread ~0.23 within a state, `actor_saturation.py`). This
trains A. w/o GDM (the tanh-MLP actor) and A. w/ GDM (DM-DDPG) with Designed R. on the same seeds as
`reproduce.py --figs 2` (same programs, same bits), then rolls each seed's final policy out on the same fresh
FD-ISAC slots (common random numbers) and reads it out in several ways:

- behaviour: the training-time policy (epsilon-greedy 0.1; one chain for the GDM actor);
- greedy: the MLP actor's tanh output; for the GDM actor, one reverse chain (no epsilon);
- best of N by Q (`jaxdiff_rl.agents.base.best_of_n`, Diffusion-QL's read-out): N chains per slot, the one the
  trained critic's min-Q ranks highest;
- best of N by C (the oracle): the N chains' best true sum rate, what a perfect critic could pick (not a policy).

`--train-candidates N` adds a GDM actor that also *acts in training* by the best of N chains by Q
(`AgentConfig.action_candidates` = N; its "behaviour" and "greedy" read-outs are then best of N by Q too): does
choosing among the diffusion policy's candidates while collecting data lift the plateau?

    python experiments/d2rl/policy_eval.py                     # quick scale, 8 seeds (~5 min)
    python experiments/d2rl/policy_eval.py --scale long        # the paper's 20,000 epochs (~15 min)
    python experiments/d2rl/policy_eval.py --train-candidates 16   # + a GDM actor acting best of 16 by Q
    python experiments/d2rl/policy_eval.py --scale smoke --seeds 2 --slots 64   # pipeline check

Writes results/<scale>/policy_eval.{png,json,csv}; the trained agents are cached in
results/runs/<scale>/policy_eval_<actor>.npz (git-ignored; --force retrains).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from jaxdiff_rl.agents.base import act, best_of_n
from jaxdiff_rl.agents.networks import actor_forward
from jaxdiff_rl.train import make_trainer
from jaxdiff_rl.train.off_policy import _to_env_action

# run as a script (python experiments/d2rl/<name>.py): the repository root holds the `experiments` package
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from experiments.d2rl.common import (  # noqa: E402
    RESULTS, SCALES, Scale, baselines, convergence_race, make_env, moving_average, run_variant, seed_tail_means)
from experiments.d2rl.reproduce import _plt  # noqa: E402

ACTORS = {"mlp": ("A. w/o GDM (MLP actor)", False, 1), "gdm": ("A. w/ GDM (DM-DDPG)", True, 1)}


def actors(train_candidates: tuple[int, ...] = ()) -> dict[str, tuple[str, bool, int]]:
    """{key: (label, diffusion actor?, AgentConfig.action_candidates)}: Fig. 2's two actors, plus a GDM actor that
    acts in training by the best of N chains by Q for each N in `train_candidates`."""
    extra = {f"gdm_best{n}": (f"A. w/ GDM, acting best of {n} by Q", True, n) for n in train_candidates if n > 1}
    return {**ACTORS, **extra}


def train_actor(scale: Scale, actor: str, seeds: int, force: bool = False) -> tuple[Any, Any, Any, np.ndarray]:
    """Train Designed R. with the `actor` (a key of `actors`: "mlp", "gdm", "gdm_best<N>") for `seeds` seeds as one
    vmapped program (`common.run_variant`, cached with the trained agents as policy_eval_<actor>).

    Returns (config, trainer, agents (a pytree stacked over seeds [S, ...]), training sum rate [S, epochs])."""
    env, params = make_env(scale)
    extra = (int(actor.removeprefix("gdm_best")),) if actor.startswith("gdm_best") else ()
    _, gdm, candidates = actors(extra)[actor]
    config = scale.config("designed", action_gdm=gdm).replace(action_candidates=candidates)
    run = run_variant(scale, f"policy_eval_{actor}", config, scale.base_hparams(), seeds, force, keep_agent=True)
    return config, make_trainer(config, env, params), run["agent"], run["metrics"]["objective_mean"]


def _sum_rates(scale: Scale, trainer: Any, env_state: Any, actions: jax.Array) -> jax.Array:
    """C (bit/s/Hz) of actions [slots, A] (actor space) on one-shot slots env_state [slots] -> [slots]."""
    env, params = make_env(scale)
    step = lambda s, a: env.step(jax.random.key(0), s, _to_env_action(trainer.spec, a), params)[5]["sum_rate"]
    return jax.vmap(step)(env_state, actions)


def evaluate_seed(scale: Scale, config: Any, trainer: Any, agent: Any, obs: jax.Array, env_state: Any,
                  candidates: tuple[int, ...], key: jax.Array) -> dict[str, jax.Array]:
    """Mean C over the slots of each read-out of one seed's trained `agent` (unbatched). obs [slots, obs_dim]."""
    dim = trainer.spec.dim
    hp = scale.base_hparams()
    k_beh, k_greedy, k_best, k_oracle = jax.random.split(key, 4)
    rate = lambda a: _sum_rates(scale, trainer, env_state, a).mean()
    out = {"behaviour": rate(act(k_beh, config, agent, obs, hp, dim, False, True)),
           "greedy": rate(act(k_greedy, config, agent, obs, hp, dim, False, False))}
    if config.actor.kind != "diffusion":
        return out
    for n, k in zip(candidates, jax.random.split(k_best, len(candidates))):
        out[f"best of {n} by Q"] = rate(best_of_n(k, config, agent, obs, dim, n)[0])
    n = max(candidates)
    chains = actor_forward(config.actor, agent.actor, k_oracle, jnp.repeat(obs, n, 0), dim, False).action
    chains = chains.reshape(-1, n, dim)  # [slots, n, A]
    rates = jax.vmap(lambda i: _sum_rates(scale, trainer, env_state, chains[:, i]))(
        jnp.arange(n)).T  # [slots, n]
    for m in candidates:
        out[f"best of {m} by C (oracle)"] = rates[:, :m].max(1).mean()
    return out


def run(scale: Scale, seeds: int, slots: int, candidates: tuple[int, ...], force: bool,
        train_candidates: tuple[int, ...] = ()) -> dict[str, Any]:
    env, params = make_env(scale)
    # the same slots for every actor and seed (common random numbers), drawn apart from the training keys
    obs, env_state = jax.vmap(env.reset, in_axes=(0, None))(jax.random.split(jax.random.key(2024), slots), params)
    out: dict[str, Any] = {"scale": scale.name, "epochs": scale.epochs, "seeds": seeds, "slots": slots,
                           "candidates": list(candidates), "baselines": baselines(scale), "readouts": {}}
    curves = {}
    for actor, (label, _, _) in actors(train_candidates).items():
        config, trainer, agents, objective = train_actor(scale, actor, seeds, force)
        curves[label] = np.nanmean(np.asarray(objective, np.float64), 0)
        fn = jax.jit(jax.vmap(lambda a, k: evaluate_seed(scale, config, trainer, a, obs, env_state, candidates, k)))
        per_seed = fn(agents, jax.random.split(jax.random.key(7), seeds))
        tail = seed_tail_means(objective)
        order = ["behaviour", "greedy", *(f"best of {n} by Q" for n in candidates),
                 *(f"best of {n} by C (oracle)" for n in candidates)]
        rows = {"training (last 10% of epochs)": tail, **{k: np.asarray(per_seed[k]) for k in order if k in per_seed}}
        for name, values in rows.items():
            values = np.asarray(values, np.float64)
            out["readouts"][f"{label}: {name}"] = {
                "actor": actor, "readout": name, "mean": float(values.mean()),
                "std": float(values.std(ddof=1)) if seeds > 1 else 0.0, "per_seed": values.tolist()}
            print(f"  {label:26s} {name:30s} {values.mean():.3f} ± {out['readouts'][f'{label}: {name}']['std']:.3f}",
                  flush=True)
    out["comparisons"] = _comparisons(out["readouts"])
    out["training"] = training_summary(curves, scale.window)
    return out


def training_summary(curves: dict[str, np.ndarray], window: int, points: int = 1000) -> dict[str, dict]:
    """Per actor, from its seed-mean training sum-rate curve [epochs]: the plateau and convergence epoch of the
    common rule (`common.convergence`), the first epoch at 95% of the best plateau among these actors, and the
    MA curve at `points` evenly spaced epochs (for the figure)."""
    out = convergence_race(curves, window)
    for label, curve in curves.items():
        stride = max(1, len(curve) // points)
        out[label]["ma_epochs"] = list(range(0, len(curve), stride))
        out[label]["ma"] = [float(x) for x in moving_average(curve, window)[::stride]]
    return out


def _comparisons(readouts: dict[str, dict]) -> dict[str, dict]:
    """Welch t-tests over seeds of each diffusion actor's read-out (keyed as `readouts`) against the MLP actor's
    same read-out (training, behaviour, greedy), and of the best-of-N read-outs against the MLP actor's greedy
    policy (its best: N copies of a deterministic action are one action). Oracles are not policies."""
    mlp = {v["readout"]: v for v in readouts.values() if v["actor"] == "mlp"}
    out = {}
    for name, v in readouts.items():
        if v["actor"] == "mlp" or "oracle" in v["readout"] or len(v["per_seed"]) < 2:
            continue
        ref = v["readout"] if v["readout"] in mlp else "greedy"
        t, p = stats.ttest_ind(v["per_seed"], mlp[ref]["per_seed"], equal_var=False)
        out[name] = {"reference": f"MLP {ref}", "difference": v["mean"] - mlp[ref]["mean"], "welch_t": float(t),
                     "p_value": float(p)}
    return out


def plot(result: dict, path: Path) -> None:
    plt = _plt()
    readouts = result["readouts"]
    fig, (ax_curve, ax) = plt.subplots(1, 2, figsize=(14, 4.6), gridspec_kw={"width_ratios": [1, 2]})
    palette = iter(["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"])
    colors = {actor: next(palette) for actor in dict.fromkeys(v["actor"] for v in readouts.values())}
    for (label, t), color in zip(result["training"].items(), colors.values()):
        ax_curve.plot(t["ma_epochs"], t["ma"], color=color, label=f"{label} (plateau {t['plateau']:.3f})")
    ax_curve.set(xlabel="epoch", ylabel="training sum rate C, MA (bit/s/Hz)", title="(a) training (seed mean)")
    ax_curve.legend(fontsize=7)
    for i, (name, v) in enumerate(readouts.items()):
        ax.bar(i, v["mean"], yerr=v["std"], color=colors[v["actor"]], alpha=0.45 if "oracle" in name else 0.85,
               capsize=3)
        ax.plot(np.full(len(v["per_seed"]), i), v["per_seed"], "k.", ms=3)
    refs = result["baselines"]
    for (name, ls) in (("random", ":"), ("mrt-wf-mmse", "--")):
        if name in refs:
            ax.axhline(refs[name], ls=ls, lw=0.9, color="k", label=f"{name} policy {refs[name]:.3f}")
    ax.set_xticks(range(len(readouts)), [n.replace(": ", "\n") for n in readouts], rotation=60, ha="right",
                  fontsize=6)
    lows = [min(v["per_seed"]) for v in readouts.values()]
    ax.set_ylim(min(min(lows), refs.get("random", min(lows))) * 0.9, None)
    ax.set_ylabel("sum rate C (bit/s/Hz)")
    ax.set_title(f"(b) trained actors read out on {result['slots']} fresh slots ({result['scale']} scale, "
                 f"{result['epochs']} epochs, {result['seeds']} seeds; dots: seeds; pale: oracle, not a policy)",
                 fontsize=8)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", default="quick", choices=sorted(SCALES))
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--slots", type=int, default=1024, help="fresh FD-ISAC slots per read-out")
    parser.add_argument("--candidates", type=int, nargs="+", default=[4, 16, 64],
                        help="N of the best-of-N read-outs")
    parser.add_argument("--train-candidates", type=int, nargs="*", default=[],
                        help="also train a GDM actor that acts by the best of N chains by Q (AgentConfig."
                             "action_candidates), for each N")
    parser.add_argument("--force", action="store_true", help="retrain instead of using the cached agents")
    args = parser.parse_args(argv)
    if args.seeds < 1 or args.slots < 1 or min(args.candidates) < 1:
        parser.error("--seeds, --slots and --candidates must be >= 1")
    scale = SCALES[args.scale]
    if any(n < 2 for n in args.train_candidates):
        parser.error("--train-candidates must be >= 2 (1 is the plain GDM actor)")
    result = run(scale, args.seeds, args.slots, tuple(sorted(set(args.candidates))), args.force,
                 tuple(sorted(set(args.train_candidates))))
    out = RESULTS / scale.name
    out.mkdir(parents=True, exist_ok=True)
    (out / "policy_eval.json").write_text(json.dumps(result, indent=1))
    with open(out / "policy_eval.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["actor", "readout", "mean", "std", "per_seed"])
        for v in result["readouts"].values():
            writer.writerow([v["actor"], v["readout"], f"{v['mean']:.4f}", f"{v['std']:.4f}",
                             " ".join(f"{x:.4f}" for x in v["per_seed"])])
    plot(result, out / "policy_eval.png")
    for name, c in result["comparisons"].items():
        print(f"  {name:60s} vs {c['reference']:14s} {c['difference']:+.3f} (Welch t = {c['welch_t']:.2f}, "
              f"p = {c['p_value']:.3f})")
    print(f"wrote {out / 'policy_eval.json'}")


if __name__ == "__main__":
    main()
