"""The leaf layer: what every other layer may import, importing nothing of wam-pipe's own above it.

- `errors`: `UserError` (exit 2) and friends.
- `context`: `RunContext`, the run-time facts a stage receives (device, rank, world size, precision, run dir).
- `settings`: `RunSettings`, the `run:` block of a pipeline file.
- `precision`, `seeding`, `distributed`: autocast, seeds derived from (seed, rank, epoch), torch.distributed helpers.
- `imaging`, `metrics`: image tensor conventions and the watermark metrics (bit accuracy, PSNR, IoU).
"""
