"""The accelerator suite's tiny version on CPU, so that the GPU/TPU command cannot rot: cases run, throughputs
agree with their own timings, the budget skips cases, the JSON and markdown are written."""

import json

import pytest

from benchmarks import accelerator_suite


def test_tiny_cheap_cases_and_the_budget(tmp_path):
    out = tmp_path / "acc.json"
    result = accelerator_suite.main(["--tiny", "--only", "matmul,env,sampling", "--out", str(out)])
    names = list(result["cases"])
    assert names == ["matmul", "env/64", "env/256", "sampling/32"]
    for name, row in result["cases"].items():
        value = next(v for k, v in row.items() if k.endswith("_per_s"))
        assert value > 0 and row["wall_s"] > 0, name
    # a case's throughput cannot exceed its work over its own wall time (the best repeat is inside that time)
    env = result["cases"]["env/256"]
    assert env["env_steps_per_s"] >= 256 * 4 / env["wall_s"]
    assert json.loads(out.read_text())["cases"].keys() == result["cases"].keys()
    table = out.with_suffix(".md").read_text()
    assert "| env/256 |" in table and "env steps/s" in table

    skipped = accelerator_suite.main(["--tiny", "--only", "matmul,env", "--budget", "1e-9",
                                      "--out", str(tmp_path / "b.json")])["cases"]
    assert all("budget of 1e-09 s spent" in skipped[n]["skipped"] for n in ("matmul", "env/64", "env/256"))
    with pytest.raises(ValueError, match="matches no case"):
        accelerator_suite.main(["--tiny", "--only", "bogus", "--out", str(tmp_path / "c.json")])


@pytest.mark.slow
def test_tiny_suite_all_cases(tmp_path):
    result = accelerator_suite.main(["--tiny", "--out", str(tmp_path / "acc.json")])
    assert all("skipped" not in row for row in result["cases"].values())
    assert result["cases"]["sweep/4"]["updates_per_s"] > 0
