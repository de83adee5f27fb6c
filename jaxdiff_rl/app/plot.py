"""Learning-curve plots: mean ± std over runs of a metric against environment steps (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import numpy as np

__all__ = ["curve_stats", "plot_curves"]


def curve_stats(values: np.ndarray, smooth: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """values [runs, iterations] -> (mean [iterations], std [iterations]) over runs, ignoring NaNs, after a
    trailing moving average of `smooth` iterations per run (NaN-aware)."""
    values = np.asarray(values, np.float64)
    if values.ndim != 2:
        raise ValueError(f"values must be [runs, iterations], got shape {values.shape}")
    if smooth > 1:
        out = np.full_like(values, np.nan)
        for i in range(values.shape[1]):
            window = values[:, max(0, i - smooth + 1): i + 1]
            with np.errstate(invalid="ignore"):
                out[:, i] = np.nanmean(np.where(np.isfinite(window), window, np.nan), axis=1) if np.isfinite(window).any() else np.nan
        values = out
    with np.errstate(invalid="ignore"), __import__("warnings").catch_warnings():
        __import__("warnings").simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=0), np.nanstd(values, axis=0)


def plot_curves(
    curves: Mapping[str, Mapping[str, np.ndarray]],
    metric: str,
    path: str | Path,
    reference_lines: Mapping[str, float] | None = None,
    title: str | None = None,
    smooth: int = 1,
    ax=None,
) -> None:
    """One line per label: mean ± std (shaded) of `metric` over runs vs. cumulative env steps per run.

    curves: {label: metrics dict with [runs, iterations] arrays, including "env_steps"}.
    reference_lines: {label: y} horizontal dashed lines (heuristics, optimum)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    own = ax is None
    if own:
        fig, ax = plt.subplots(figsize=(5.5, 3.6))
    for label, metrics in curves.items():
        if metric not in metrics:
            raise ValueError(f"metric {metric!r} not recorded for {label!r}; have {sorted(metrics)}")
        mean, std = curve_stats(metrics[metric], smooth)
        x = np.nanmean(np.asarray(metrics["env_steps"], np.float64), axis=0)
        line, = ax.plot(x, mean, label=label)
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    for k, (label, y) in enumerate((reference_lines or {}).items()):
        ax.axhline(y, ls="--", lw=1, color=f"C{(len(curves) + k) % 10}", label=label)
    ax.set_xlabel("environment steps per run")
    ax.set_ylabel(metric.replace("_", " "))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if title:
        ax.set_title(title, fontsize=9)
    if own:
        fig.tight_layout()
        fig.savefig(path, dpi=120)
        plt.close(fig)
