"""`MetricMeter`: sums on-device metrics between log lines, so the training loop syncs only when it logs.

It also watches the loss terms for NaN/inf on the device (`NonFiniteWatch`): the step at which the run went bad and
the loss terms that were non-finite there are remembered and reported (as a `RunFailure`) at the next read, without a
per-step host sync.
"""

from __future__ import annotations

import math

import torch

from wam_pipe.core.errors import RunFailure

# Failure markers travel as BIG - step so that a max over ranks picks the earliest failing step (exact in float32
# for steps below 2**24).
_BIG = float(2**24)


class NonFiniteWatch:
    """The on-device NaN/inf watch over the loss metrics: streaks of non-finite steps, the step to report and the
    loss metrics non-finite there, kept as device scalars so updating it never syncs with the host.

    Args:
        tolerate_nonfinite: consecutive non-finite steps allowed before failing (fp16 with a GradScaler skips such
            steps itself; with bf16/fp32 any non-finite loss is fatal: pass 0).
        precision: the run's precision ("fp32", "bf16", "fp16"); picks the advice of the failure message.
    """

    def __init__(self, tolerate_nonfinite: int = 0, precision: str = "fp32"):
        self.tolerate = tolerate_nonfinite
        self.precision = precision
        self.streak: torch.Tensor | None = None         # consecutive non-finite steps up to the last update
        self.streak_start: torch.Tensor | None = None   # first step of the current streak
        self.start_flags: dict[str, torch.Tensor] = {}  # per loss metric: non-finite at streak_start
        self.fail_step: torch.Tensor | None = None      # step to report (-1: none yet)
        self.fail_flags: dict[str, torch.Tensor] = {}   # per loss metric: non-finite at fail_step

    def update(self, nonfinite: dict[str, torch.Tensor], step: int) -> None:
        """Add one step's `loss metric -> non-finite` flags (bool scalars), with tensor ops only."""
        bad = torch.stack(list(nonfinite.values())).any()
        if self.streak is None:
            self.streak = torch.zeros((), dtype=torch.long, device=bad.device)
            self.streak_start = torch.full((), -1, dtype=torch.long, device=bad.device)
            self.fail_step = torch.full((), -1, dtype=torch.long, device=bad.device)
        starting = bad & (self.streak == 0)
        self.streak = (self.streak + 1) * bad
        self.streak_start = torch.where(starting, step, self.streak_start)
        # The first time a streak outlasts the tolerance, its first step and the terms bad there are the report.
        fatal = (self.streak > self.tolerate) & (self.fail_step < 0)
        self.fail_step = torch.where(fatal, self.streak_start, self.fail_step)
        for name, flag in nonfinite.items():
            if name not in self.start_flags:  # a metric seen for the first time was never non-finite before
                self.start_flags[name] = self.fail_flags[name] = torch.zeros_like(flag)
            self.start_flags[name] = torch.where(starting, flag, self.start_flags[name])
            self.fail_flags[name] = torch.where(fatal, self.start_flags[name], self.fail_flags[name])

    def markers(self, device: torch.device) -> tuple[list[str], list[torch.Tensor]]:
        """The loss metric names and the failure markers to reduce over ranks: BIG - fail step (0: no failure),
        then per metric the same value where it was non-finite at that step, else 0."""
        names = list(self.fail_flags)
        if self.fail_step is None:
            return names, [torch.zeros((), device=device)]
        fail = (_BIG - self.fail_step.float()) * (self.fail_step >= 0)
        return names, [fail] + [fail * self.fail_flags[n] for n in names]

    def failure_message(self, step: int, bad: list[str]) -> str:
        terms = [n.removeprefix("loss_") for n in bad if n.startswith("loss_")]
        if terms:
            quoted = " and ".join(", ".join(f"'{t}'" for t in terms).rsplit(", ", 1))
            what = f"loss term{'s' if len(terms) > 1 else ''} {quoted} became"
        else:
            what = "total loss became"
        what += " NaN or inf"
        if self.tolerate > 0:
            what += (f" and stayed so for {self.tolerate + 1} steps in a row (more than "
                     f"run.max_nonfinite_steps={self.tolerate})")
        if self.precision == "fp16":
            advice = ("use run.precision=bf16 (or fp32), lower stages.step.optimizer.lr, or set "
                      "stages.step.grad_clip=1.0")
        else:
            advice = "lower stages.step.optimizer.lr or enable gradient clipping with stages.step.grad_clip=1.0"
        return f"step {step}: the {what}; {advice} (checkpoints before this point are intact)"


class MetricMeter:
    """Accumulates `name -> (sum, count)` device tensors; `read()` returns the averages (one host sync), over all
    ranks when distributed (every rank must call `read()` at the same steps).

    Loss metrics are those named `loss` (the weighted total) and `loss_<term>`. A run fails at the first step where
    a loss is non-finite (with `tolerate_nonfinite` > 0: at the first step of a run of more than that many
    consecutive non-finite steps); the error names that step and the `loss_<term>` metrics non-finite there (the
    total only when no term is).

    A second meter over the same steps (e.g. per epoch beside per log line) is made with `sharing_watch(meter)`:
    it reports the failures of `meter`'s watch and does not watch again, so the watch runs once per step.

    Args:
        tolerate_nonfinite: consecutive non-finite steps allowed before failing (fp16 with a GradScaler skips such
            steps itself; with bf16/fp32 any non-finite loss is fatal: pass 0).
        precision: the run's precision ("fp32", "bf16", "fp16"); picks the advice of the failure message.
    """

    def __init__(self, tolerate_nonfinite: int = 0, precision: str = "fp32"):
        self.watch = NonFiniteWatch(tolerate_nonfinite, precision)
        self.updates_watch = True
        self.sums: dict[str, torch.Tensor] = {}
        self.counts: dict[str, torch.Tensor] = {}

    @classmethod
    def for_run(cls, precision: str, max_nonfinite_steps: int) -> MetricMeter:
        """The meter of a training run: only fp16 (whose GradScaler skips such steps itself) tolerates up to
        `run.max_nonfinite_steps` non-finite steps in a row; with bf16/fp32 the first one is fatal."""
        return cls(tolerate_nonfinite=max_nonfinite_steps if precision == "fp16" else 0, precision=precision)

    @classmethod
    def sharing_watch(cls, meter: MetricMeter) -> MetricMeter:
        """A meter whose `read()` reports the failures of `meter`'s watch; `meter.update` keeps that watch current
        (so update both meters with the same steps)."""
        follower = cls()
        follower.watch, follower.updates_watch = meter.watch, False
        return follower

    def update(self, metrics: dict[str, tuple[torch.Tensor, torch.Tensor]], step: int) -> None:
        """Add one step's metrics; `step` is the number the log lines use for this step."""
        nonfinite = {}
        for name, (value, count) in metrics.items():
            value = value.detach().float()
            finite = torch.isfinite(value)
            if name.startswith("loss"):
                nonfinite[name] = ~finite
            # Non-finite values never enter the averages (fp16 skips those steps anyway).
            self.sums[name] = self.sums.get(name, 0) + torch.where(finite, value, torch.zeros_like(value))
            self.counts[name] = self.counts.get(name, 0) + count.float() * finite
        if nonfinite and self.updates_watch:
            self.watch.update(nonfinite, step)

    def read(self) -> dict[str, float]:
        """Averages since the last read (metrics with no count are left out), then reset. Raises RunFailure
        when a loss went non-finite (beyond the tolerated streak)."""
        names = list(self.sums)
        if not names:
            return {}
        device = torch.as_tensor(self.sums[names[0]]).device
        flag_names, markers = self.watch.markers(device)
        packed = torch.stack([torch.as_tensor(self.sums[n]).float().reshape(()) for n in names]
                             + [torch.as_tensor(self.counts[n]).float().reshape(()) for n in names]
                             + [m.float().to(device) for m in markers])
        packed = _all_reduce(packed, 2 * len(names))
        values = packed.tolist()                                            # the one host sync
        sums, counts = values[: len(names)], values[len(names) : 2 * len(names)]
        fail_marker, term_markers = values[2 * len(names)], values[2 * len(names) + 1 :]
        if fail_marker > 0:
            bad_terms = [n for n, m in zip(flag_names, term_markers) if m == fail_marker]
            raise RunFailure(self.watch.failure_message(int(_BIG - fail_marker), bad_terms))
        self.sums, self.counts = {}, {}
        return {n: s / c for n, s, c in zip(names, sums, counts) if c > 0}


def _all_reduce(packed: torch.Tensor, summed: int) -> torch.Tensor:
    """Under DDP: sums and counts (the first `summed` entries) add up over ranks, so the log shows the global
    averages; the failure markers take the maximum (the earliest failing step, and the terms bad at it on any
    rank), so every rank stops together instead of waiting for a dead one."""
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
