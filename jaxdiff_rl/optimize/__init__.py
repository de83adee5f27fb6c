"""Generative diffusion optimizer (DiffSG / GDMOPT)."""

from jaxdiff_rl.optimize.gdm import GDMConfig, GDMHparams, GDMState, GenerativeOptimizer, Normalizer

__all__ = ["GDMConfig", "GDMHparams", "GDMState", "GenerativeOptimizer", "Normalizer"]
