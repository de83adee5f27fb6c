"""Host side: everything that talks to disk, the terminal or the user, around the pure `Trainer` of `train/`.

- `runner`: the chunked host loop (progress, metrics.jsonl, greedy evaluations, orbax checkpoints, resume);
- `experiment`: `TrainSpec`, the serialisable description of a run, and `build` / `evaluate_spec` / `load_spec`;
- `cli`, `cli_train`: the `jaxdiff-rl` command line; `demo`: its default job; `plot`: learning curves.
"""
