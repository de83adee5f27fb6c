"""Shared test settings: small shapes, CPU, deterministic keys, a persistent XLA compilation cache, and scheduling.

The cache (under .pytest_cache/, shared by the xdist workers and by the subprocesses that tests start) lets
tests that compile the same program -- the kill/resume test runs one training program in three processes --
compile it once; it changes nothing numerically (the cached executable is the compiled one).

Scheduling (pytest-xdist, `--dist loadgroup`): modules whose tests share an expensive module-scoped fixture are one
`xdist_group`, so the fixture is built once rather than once per worker; tests marked `heavy` are collected first,
so a long test does not start last while the other worker idles."""

import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_CACHE = Path(__file__).resolve().parents[1] / ".pytest_cache" / "jax-compilation-cache"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")


def pytest_collection_modifyitems(config, items):
    items.sort(key=lambda item: item.get_closest_marker("heavy") is None)  # stable: heavy first, order kept
