"""Evaluation: the robustness grid, multi-watermark evaluation, exact cross-rank reduction, outputs and pictures.

| module | job |
|---|---|
| `grid` | masks x (augmentation, strength) settings; the reference defaults |
| `messages` | per-image messages from (seed, key): the same numbers however the data is batched or split |
| `single` / `multi` | one batch through the grid / through k = 1..K spliced watermarks |
| `accumulate` | `MetricTable`: on-device (sum, count) per cell, one all-reduce |
| `engine` | one evaluation pass over this rank's batches |
| `outputs` | metrics.json, history.jsonl, TensorBoard scalars; reading them back |
| `summary` | headline numbers and the text tables of `wam-pipe report` |
| `pictures` / `showcase` | grid.png, robustness.png, curves.png |

The stage that runs it is `wam_pipe.stages.Eval`; docs/eval.md states the metrics.json contract.
"""
