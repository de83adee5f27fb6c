"""jaxdiff-rl: diffusion-model-enabled reinforcement learning and optimization for wireless networks in JAX."""

__version__ = "0.1.0"
