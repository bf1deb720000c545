"""`MetricMeter`: sums on-device metrics between log lines, so the training loop syncs only when it logs.

It also watches the loss terms for NaN/inf on the device: the first bad step and term are remembered and reported
(as a `RunFailure`) at the next read, without a per-step host sync.
"""

from __future__ import annotations

import math

import torch

from wam_pipe.errors import RunFailure


class MetricMeter:
    """Accumulates `name -> (sum, count)` device tensors; `read()` returns the averages (one host sync), over all
    ranks when distributed (every rank must call `read()` at the same steps).

    Args:
        tolerate_nonfinite: consecutive non-finite steps allowed before failing (fp16 with a GradScaler skips such
            steps itself; with bf16/fp32 any non-finite loss is fatal: pass 0).
    """

    def __init__(self, tolerate_nonfinite: int = 0):
        self.tolerate = tolerate_nonfinite
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}
        self.first_bad: dict[str, torch.Tensor] = {}
        self.streak: torch.Tensor | None = None
        self.max_streak: torch.Tensor | None = None

    def update(self, metrics: dict[str, tuple[torch.Tensor, torch.Tensor]], step: int) -> None:
        bad_any = None
        for name, (value, count) in metrics.items():
            value = value.detach().float()
            finite = torch.isfinite(value)
            if name.startswith("loss"):
                first = self.first_bad.get(name, torch.full((), -1, dtype=torch.long, device=value.device))
                self.first_bad[name] = torch.where((first < 0) & ~finite, step, first)
                bad_any = ~finite if bad_any is None else bad_any | ~finite
            # Non-finite values never enter the averages (fp16 skips those steps anyway).
            self.sums[name] = self.sums.get(name, 0) + torch.where(finite, value, torch.zeros_like(value))
            self.counts[name] = self.counts.get(name, 0) + count.float() * finite
        if bad_any is not None:
            self.streak = bad_any.long() if self.streak is None else (self.streak + 1) * bad_any
            self.max_streak = self.streak if self.max_streak is None else torch.maximum(self.max_streak, self.streak)

    def read(self) -> dict[str, float]:
        """Averages since the last read (metrics with no count are left out), then reset. Raises RunFailure
        when a loss went non-finite (beyond the tolerated streak)."""
        names = list(self.sums)
        if not names:
            return {}
        bad_names = list(self.first_bad)
        packed = torch.stack([torch.as_tensor(self.sums[n]).float().reshape(()) for n in names]
                             + [torch.as_tensor(self.counts[n]).float().reshape(()) for n in names]
                             + [self.first_bad[n].float() for n in bad_names]
                             + [(self.max_streak if self.max_streak is not None else torch.zeros(())).float()
                                .to(self.sums[names[0]].device)])
        packed = _all_reduce(packed, 2 * len(names))
        values = packed.tolist()                                            # the one host sync
        sums, counts = values[: len(names)], values[len(names) : 2 * len(names)]
        first_bad = dict(zip(bad_names, values[2 * len(names) : -1]))
        max_streak = values[-1]
        self._check_finite(first_bad, max_streak)
        self.sums, self.counts, self.first_bad = {}, {}, {}
        self.max_streak = None
        return {n: s / c for n, s, c in zip(names, sums, counts) if c > 0}

    def _check_finite(self, first_bad: dict[str, float], max_streak: float) -> None:
        bad = {name: int(step) for name, step in first_bad.items() if step >= 0}
        if not bad or max_streak <= self.tolerate:
            return
        name, step = min(bad.items(), key=lambda item: item[1])
        term = "total loss" if name == "loss" else f"loss term '{name.removeprefix('loss_')}'"
        raise RunFailure(f"step {step}: the {term} became NaN or inf; lower the learning rate, enable grad_clip, "
                         f"or use precision bf16/fp32 (checkpoints before this point are intact)")


def _all_reduce(packed: torch.Tensor, summed: int) -> torch.Tensor:
    """Under DDP: sums and counts (the first `summed` entries) add up over ranks, so the log shows the global
    averages; the NaN markers take the maximum, so every rank stops together instead of waiting for a dead one."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1):
        return packed
    totals, flags = packed[:summed].clone(), packed[summed:].clone()
    dist.all_reduce(totals, op=dist.ReduceOp.SUM)
    dist.all_reduce(flags, op=dist.ReduceOp.MAX)
    return torch.cat([totals, flags])


def format_metrics(values: dict[str, float]) -> str:
    """A compact log line: losses, accuracy, detection, quality."""
    order = ["loss", "loss_detection", "loss_decoding", "loss_perceptual", "loss_adversarial", "loss_discriminator",
             "bit_acc", "miou", "acc", "psnr", "grad_norm"]
    short = {"loss_detection": "det", "loss_decoding": "dec", "loss_perceptual": "perc", "loss_adversarial": "adv",
             "loss_discriminator": "disc"}
    parts = []
    for name in order:
        if name in values and math.isfinite(values[name]):
            digits = 2 if name == "psnr" else 4
            parts.append(f"{short.get(name, name)} {values[name]:.{digits}f}")
    return " ".join(parts)
