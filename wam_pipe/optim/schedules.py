"""`CosineWarmup`: linear warm-up, then cosine decay to a floor (the reference's timm CosineLRScheduler)."""

from __future__ import annotations

import math
from typing import Any, Optional

import torch
from torch.optim.lr_scheduler import LRScheduler


class CosineWarmup(LRScheduler):
    """Linear warm-up from `warmup_lr` to the optimizer's lr, then cosine decay to `min_lr`; flat after `total`.

    Stepped once per epoch or once per optimizer step (the step stage's `scheduler_every`); `warmup` and `total`
    count in that unit. Use it in YAML as a partial: the step stage supplies the optimizer, and `total` when left
    null (epochs, or epochs x steps per epoch).

    Like timm's CosineLRScheduler (reference recipe: lr_min 1e-6, warmup_lr_init 1e-6, warmup_t 10, t_initial 300),
    the cosine runs over [0, total] and warm-up overrides its first `warmup` values:
    lr(t) = warmup_lr + t (base - warmup_lr) / warmup for t < warmup, else
    min_lr + (base - min_lr) (1 + cos(pi t / total)) / 2, and min_lr for t >= total.

    Resuming: a checkpoint restores the position t (and the base learning rates), never `total`, which always comes
    from the current configuration. `run.epochs` may grow on resume (`wam-pipe run` on a finished run dir with a
    larger run.epochs): with `total` null the step stage re-derives it from the new epochs, so the cosine is
    stretched over the longer run and the LR continues from position t on the new curve (higher than on the old
    one, which may already have reached `min_lr`); an explicit `total` stays as written, so the LR stays at `min_lr`
    for the extra epochs. Loading a state also re-applies the LR of position t to the optimizer (load the
    optimizer's state first, as the step stage does).

    Args:
        optimizer: supplied at run time (`_partial_: true`).
        total: length of the cosine in scheduler steps; null = filled in by the step stage.
        warmup: warm-up length in scheduler steps. Default 0.
        min_lr: floor of the cosine. Default 1e-6.
        warmup_lr: learning rate at t = 0 of the warm-up. Default 1e-6.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, total: Optional[int] = None, warmup: int = 0,
                 min_lr: float = 1e-6, warmup_lr: float = 1e-6, last_epoch: int = -1):
        if total is not None and total <= 0:
            raise ValueError(f"total must be > 0, got {total}")
        if warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {warmup}")
        if min_lr < 0 or warmup_lr < 0:
            raise ValueError(f"min_lr and warmup_lr must be >= 0, got {min_lr} and {warmup_lr}")
        self.total = total
        self.warmup = warmup
        self.min_lr = min_lr
        self.warmup_lr = warmup_lr
        super().__init__(optimizer, last_epoch)

    def lr_at(self, t: int, base_lr: float) -> float:
        if t < self.warmup:
            return self.warmup_lr + t * (base_lr - self.warmup_lr) / self.warmup
        total = self.total or 1
        if t >= total:
            return self.min_lr
        return self.min_lr + (base_lr - self.min_lr) * (1 + math.cos(math.pi * t / total)) / 2

    def get_lr(self) -> list[float]:
        return [self.lr_at(self.last_epoch, base) for base in self.base_lrs]

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the position in the schedule, keeping this run's `total` (see the class docstring)."""
        total = self.total
        super().load_state_dict(state_dict)
        if total is not None:  # still null only when used outside the step stage: keep the saved one then
            self.total = total
        self._last_lr = [self.lr_at(self.last_epoch, base) for base in self.base_lrs]
        for group, lr in zip(self.optimizer.param_groups, self._last_lr):
            group["lr"] = lr
