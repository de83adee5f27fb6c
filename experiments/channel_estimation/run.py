"""MIMO channel estimation with a diffusion prior (seed 001 sec. III; Arvinte & Tamir, IEEE TWC 2022) against LS,
LMMSE, OMP and LASSO: NMSE (dB) vs SNR, pilot densities N_p / N_t in {0.25, 0.5, 1}, in-distribution and on
mismatched profiles, and the runtime per estimate.

Setting (CPU scale): N_r = 4, N_t = 16 ULAs, clustered sparse channels `envs.mimo_channels.PROFILES`; the score
prior (shared `Denoiser`, EDM-preconditioned, 40 geometric levels) is trained on `--train-profile` (cdl-a) and
tested on every profile. QPSK pilots P [N_t, N_p] (one fixed draw per density), SNR = 1 / sigma^2 per receive
antenna and pilot, `--channels` fresh test channels per point (1000).

Estimators:
- LS: minimum-norm Y P^+.
- LMMSE (train cov): the covariance of 100k training-profile channels; LMMSE (genie cov): that of the test
  profile (the same on in-distribution rows).
- OMP: 2x oversampled angular dictionary, stops at the noise floor or N_r N_p / 2 atoms.
- LASSO: FISTA (200 iterations) in the DFT angular domain, lam = c sigma with c in {0.3, 1, 3} picked per point on
  200 separate validation channels (a tuned baseline).
- angle-genie bound: LMMSE with each test channel's covariance given its ray angles
  (`mc.clustered_conditional_covariances`): the MMSE of a genie that knows the angles, below any estimator's
  error (the true MMSE included); it shows the headroom a prior can exploit.
- diffusion (Langevin): mean of 4 annealed-Langevin posterior samples (10 steps per level, step 5e-5).
- diffusion (DPS): mean of 4 DPS samples from the same prior in the shared DDPM sampler (zeta 1.0), on the
  in-distribution rows at the SNRs of the mismatch rows.

    python experiments/channel_estimation/run.py           # ~35 min on one core; writes results/nmse.json, .png, .md
    python experiments/channel_estimation/run.py --quick   # ~3 min: short prior, 200 channels, 3 SNRs
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from jaxdiff_rl.app.xla_cpu import pin_to_one_core  # noqa: E402

pin_to_one_core()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.common import best_time, machine_info  # noqa: E402
from envs import mimo_channels as mc  # noqa: E402
from jaxdiff_rl.estimate import classical as ce  # noqa: E402
from jaxdiff_rl.estimate.diffusion import (ScorePrior, ScorePriorConfig, diffusion_estimate, ncsn_sigma_max,  # noqa: E402
                                           train_score_prior)

HERE = Path(__file__).parent
N_R, N_T = 4, 16
DENSITIES = (0.25, 0.5, 1.0)
SNRS = tuple(range(-10, 35, 5))
MISMATCH_SNRS = (-10, 0, 10, 20, 30)
LASSO_C = (0.3, 1.0, 3.0)
NUM_SAMPLES, STEPS_PER_LEVEL, STEP_SIZE, DPS_ZETA = 4, 10, 5e-5, 1.0


def train_prior(profile: str, steps: int, hidden: int) -> tuple[ScorePrior, dict]:
    train = mc.clustered_channels(jax.random.key(10), 100_000, N_R, N_T, profile)
    config = ScorePriorConfig(N_R, N_T, hidden_dims=(hidden,) * 3, num_levels=40, sigma_max=ncsn_sigma_max(train),
                              sigma_min=0.01, train_steps=steps, batch_size=256)
    t0 = time.perf_counter()
    prior, losses = train_score_prior(jax.random.key(0), train, config,
                                      progress=lambda n, l: print(f"  prior step {int(n)}: DSM loss {float(l):.4f}",
                                                                  flush=True))
    info = {"profile": profile, "steps": steps, "hidden": [hidden] * 3, "sigma_max": config.sigma_max,
            "train_s": time.perf_counter() - t0, "loss_first_1k": float(losses[:1000].mean()),
            "loss_last_1k": float(losses[-1000:].mean())}
    return prior, info


def covariance(profile: str) -> jax.Array:
    return ce.sample_covariance(mc.clustered_channels(jax.random.key(11), 100_000, N_R, N_T, profile))


class Estimators:
    """The jitted estimators for one pilot matrix (one compile per density; noise_var is traced)."""

    def __init__(self, prior: ScorePrior, pilots: jax.Array, cov_train: jax.Array) -> None:
        n_p = pilots.shape[1]
        dictionary = ce.angular_dictionary(N_R, N_T, oversample=2)
        atoms = N_R * n_p // 2
        self.fns = {
            "LS": jax.jit(lambda y, var, cov: ce.ls_estimate(y, pilots)),
            "LMMSE (train cov)": jax.jit(lambda y, var, cov: ce.lmmse_estimate(y, pilots, cov_train, var)),
            "LMMSE (genie cov)": jax.jit(lambda y, var, cov: ce.lmmse_estimate(y, pilots, cov, var)),
            "OMP": jax.jit(lambda y, var, cov: ce.omp_estimate(y, pilots, var, atoms, dictionary)),
            "diffusion (Langevin)": jax.jit(lambda y, var, cov: diffusion_estimate(
                jax.random.key(3), prior, y, pilots, var, NUM_SAMPLES, steps_per_level=STEPS_PER_LEVEL,
                step_size=STEP_SIZE)),
            "diffusion (DPS)": jax.jit(lambda y, var, cov: diffusion_estimate(
                jax.random.key(3), prior, y, pilots, var, NUM_SAMPLES, sampler="dps", guide_scale=DPS_ZETA)),
        }
        self.lasso = jax.jit(lambda y, lam: ce.lasso_estimate(y, pilots, lam))
        # LMMSE with each channel's own angle-conditioned covariance: the MMSE given the angles, a lower bound
        self.genie = jax.jit(lambda y, var, covs: jax.vmap(
            lambda yy, cc: ce.lmmse_estimate(yy[None], pilots, cc, var)[0])(y, covs))


def evaluate(est: Estimators, pilots: jax.Array, profile: str, snr_db: float, cov: jax.Array, num: int,
             skip: tuple[str, ...] = ()) -> dict[str, float]:
    key = jax.random.key(1000 + int(snr_db) + 100 * int(pilots.shape[1]))
    k_h, k_y, k_v, k_vy = jax.random.split(key, 4)
    h = mc.clustered_channels(k_h, num, N_R, N_T, profile)
    y = mc.observe(k_y, h, pilots, snr_db)
    var = mc.noise_variance(snr_db)
    out = {name: float(mc.nmse_db(fn(y, var, cov), h)) for name, fn in est.fns.items() if name not in skip}
    cond_covs = mc.clustered_conditional_covariances(k_h, num, N_R, N_T, profile)
    out["angle-genie bound"] = float(mc.nmse_db(est.genie(y, var, cond_covs), h))
    h_val = mc.clustered_channels(k_v, 200, N_R, N_T, profile)
    y_val = mc.observe(k_vy, h_val, pilots, snr_db)
    best = min(LASSO_C, key=lambda c: float(mc.nmse_db(est.lasso(y_val, c * jnp.sqrt(var)), h_val)))
    out["LASSO"] = float(mc.nmse_db(est.lasso(y, best * jnp.sqrt(var)), h))
    return out


def runtimes(est: Estimators, pilots: jax.Array, cov: jax.Array, num: int) -> dict[str, float]:
    """Seconds per estimate at batch `num` (compile excluded, best of 2), one core."""
    h = mc.clustered_channels(jax.random.key(5), num, N_R, N_T, "cdl-a")
    y, var = mc.observe(jax.random.key(6), h, pilots, 10.0), mc.noise_variance(10.0)
    fns = dict(est.fns, LASSO=lambda y, var, cov: est.lasso(y, jnp.sqrt(var)))
    out = {}
    for name, fn in fns.items():
        jax.block_until_ready(fn(y, var, cov))  # compile
        out[name] = best_time(lambda: fn(y, var, cov), 2) / num
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["in_distribution"]
    mism = results["mismatched"]
    fig, axes = plt.subplots(1, len(DENSITIES) + 1, figsize=(5 * (len(DENSITIES) + 1), 4), sharey=True)
    for ax, density in zip(axes, DENSITIES):
        pts = [r for r in rows if r["density"] == density]
        names = dict.fromkeys(k for r in pts for k in r["nmse_db"])
        for name in names:
            have = [r for r in pts if name in r["nmse_db"]]
            style = ":" if "genie" in name else "-"
            ax.plot([r["snr_db"] for r in have], [r["nmse_db"][name] for r in have], style, marker="o", label=name)
        ax.set_title(f"{results['train_profile']}, N_p/N_t = {density}")
        ax.set_xlabel("SNR (dB)")
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("NMSE (dB)")
    axes[0].set_ylim(top=8.0)  # LS's under-determined blow-up at low SNR would squash the rest
    axes[0].legend(fontsize=7)
    ax = axes[-1]
    for profile in sorted({r["profile"] for r in mism}):
        pts = [r for r in mism if r["profile"] == profile and r["density"] == 0.5]
        for name, style in (("diffusion (Langevin)", "-"), ("LMMSE (genie cov)", "--")):
            ax.plot([r["snr_db"] for r in pts], [r["nmse_db"][name] for r in pts], style, marker="o",
                    label=f"{profile}: {name}")
    ax.set_title(f"mismatch (trained on {results['train_profile']}), N_p/N_t = 0.5")
    ax.set_xlabel("SNR (dB)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def table(results: dict) -> str:
    """Markdown tables of the results: NMSE (dB) per point, and the diffusion estimator's gain over LMMSE."""
    def block(rows: list[dict], title: str) -> list[str]:
        names = list(dict.fromkeys(k for r in rows for k in r["nmse_db"]))
        out = [f"#### {title}", "", "| profile | N_p/N_t | SNR (dB) | " + " | ".join(names) + " | Langevin - LMMSE |",
               "|" + "---|" * (len(names) + 4)]
        for r in rows:
            v = r["nmse_db"]
            cells = [f"{v[n]:.2f}" if n in v else "" for n in names]
            gain = v["diffusion (Langevin)"] - v["LMMSE (genie cov)"]
            out.append(f"| {r['profile']} | {r['density']} | {r['snr_db']} | " + " | ".join(cells) + f" | {gain:+.2f} |")
        return out + [""]

    lines = block(results["in_distribution"], f"In distribution (trained and tested on {results['train_profile']})")
    lines += block(results["mismatched"], f"Mismatched (trained on {results['train_profile']})")
    if "seconds_per_estimate" in results:
        lines += ["#### Runtime per estimate (N_p/N_t = 0.5, batch of "
                  f"{results['channels_per_point']}, one core, compile excluded)", "", "| estimator | µs |", "|---|---|"]
        lines += [f"| {k} | {1e6 * v:,.1f} |" for k, v in results["seconds_per_estimate"].items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="short prior, 200 channels, 3 SNRs (smoke run)")
    parser.add_argument("--train-profile", default="cdl-a", choices=sorted(mc.PROFILES))
    parser.add_argument("--prior-steps", type=int, default=60_000)
    parser.add_argument("--hidden", type=int, default=512)
    parser.add_argument("--channels", type=int, default=1000, help="test channels per point")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "nmse.json")
    parser.add_argument("--from-json", action="store_true", help="only redraw the plot and table from --out")
    args = parser.parse_args()
    if args.from_json:
        results = json.loads(args.out.read_text())
        plot(results, args.out.with_suffix(".png"))
        args.out.with_suffix(".md").write_text(table(results))
        return
    if args.channels < 1 or args.prior_steps < 1 or args.hidden < 1:
        parser.error("--channels, --prior-steps and --hidden must be >= 1")
    snrs, mism_snrs, num, steps = SNRS, MISMATCH_SNRS, args.channels, args.prior_steps
    if args.quick:
        snrs = mism_snrs = (-10, 10, 30)
        num, steps = 200, 2000
    print(f"training the score prior on {args.train_profile} ({steps} steps)", flush=True)
    prior, prior_info = train_prior(args.train_profile, steps, args.hidden)
    print(f"  done in {prior_info['train_s']:.0f} s", flush=True)
    covs = {p: covariance(p) for p in mc.PROFILES}
    results = {"machine": machine_info(), "n_r": N_R, "n_t": N_T, "train_profile": args.train_profile,
               "prior": prior_info, "channels_per_point": num, "in_distribution": [], "mismatched": [],
               "sampler": {"num_samples": NUM_SAMPLES, "steps_per_level": STEPS_PER_LEVEL, "step_size": STEP_SIZE,
                           "dps_zeta": DPS_ZETA}}
    for density in DENSITIES:
        n_p = int(round(density * N_T))
        pilots = mc.qpsk_pilots(jax.random.key(20 + n_p), N_T, n_p)
        est = Estimators(prior, pilots, covs[args.train_profile])
        for profile in mc.PROFILES:
            in_dist = profile == args.train_profile
            if not in_dist and density == 1.0:
                continue
            for snr in snrs if in_dist else mism_snrs:
                t0 = time.perf_counter()
                dps = in_dist and snr in mism_snrs
                nmse = evaluate(est, pilots, profile, float(snr), covs[profile], num,
                                skip=() if dps else ("diffusion (DPS)",))
                row = {"profile": profile, "density": density, "n_p": n_p, "snr_db": snr, "nmse_db": nmse}
                results["in_distribution" if in_dist else "mismatched"].append(row)
                print(f"{profile} N_p={n_p:2d} SNR {snr:+3d} dB  " + "  ".join(
                    f"{k}: {v:6.2f}" for k, v in nmse.items()) + f"  ({time.perf_counter() - t0:.0f} s)", flush=True)
        if density == 0.5:
            results["seconds_per_estimate"] = runtimes(est, pilots, covs[args.train_profile], num)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=1))
    plot(results, args.out.with_suffix(".png"))
    args.out.with_suffix(".md").write_text(table(results))
    print(f"wrote {args.out} and its .png, .md")


if __name__ == "__main__":
    main()
