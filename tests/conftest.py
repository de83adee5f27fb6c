"""Shared test settings: small shapes, CPU, deterministic keys."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
