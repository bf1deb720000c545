"""Seeding. Each epoch re-seeds every RNG from (seed, rank, epoch), so a run resumed at an epoch boundary draws
exactly the numbers an uninterrupted run would, whatever the world size it resumes with."""

from __future__ import annotations

import random

import numpy as np
import torch


def derive_seed(seed: int, rank: int, epoch: int = -1) -> int:
    # Large odd multipliers keep (rank, epoch) pairs apart; the result fits every RNG's seed range.
    return (seed * 1_000_003 + rank * 7_919 + (epoch + 1) * 104_729) % (2**31 - 1)


def seed_everything(seed: int, rank: int, epoch: int = -1) -> None:
    value = derive_seed(seed, rank, epoch)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)  # also seeds every CUDA device
