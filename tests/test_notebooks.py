"""Execute the notebooks' code cells on small settings (JAXDIFF_QUICK=1), in order, in one namespace, and
check what they compute (an nbmake equivalent without a kernel dependency)."""

import json
import os
from pathlib import Path

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"


def _run(path: Path) -> dict:
    cells = json.loads(path.read_text())["cells"]
    namespace: dict = {"__name__": "__notebook__"}
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        exec(compile(source, f"{path.name}[cell {i}]", "exec"), namespace)
    return namespace


@pytest.mark.heavy
def test_quickstart_executes(monkeypatch):
    monkeypatch.setenv("JAXDIFF_QUICK", "1")
    ns = _run(NOTEBOOKS / "quickstart.ipynb")
    assert set(ns["curves"]) == {"D2SAC", "SAC"}
    for metrics in ns["curves"].values():
        frac = metrics["optimum_fraction"]
        assert frac.shape == (8, 8)  # 8 seeds x 8 iterations
        assert np.all((frac > 0.5) & (frac <= 1.0 + 1e-5))  # a sum-rate fraction of the exact optimum
