"""Evaluation messages: a function of (seed, sample key) only.

Each image's messages come from a `torch.Generator` seeded with the eval seed and the image's key, so an image gets
the same messages whatever the batch size, the number of ranks, or whether the evaluation runs inside training or
alone from a checkpoint. That is what makes a standalone evaluation reproduce the training-time one exactly.
"""

from __future__ import annotations

import zlib
from typing import Sequence

import torch


def key_seed(seed: int, key: str) -> int:
    """A 63-bit seed from the eval seed and a sample key (CRC32 is stable across processes, unlike `hash`)."""
    return (int(seed) * 0x9E3779B1 + zlib.crc32(str(key).encode("utf-8"))) % (2**63)


def messages_for(keys: Sequence[str], count: int, nbits: int, seed: int,
                 device: torch.device | str = "cpu") -> torch.Tensor:
    """`count` random 0/1 messages per sample: `(B, count, nbits)` float on `device`."""
    rows = []
    for key in keys:
        generator = torch.Generator().manual_seed(key_seed(seed, key))
        rows.append(torch.randint(0, 2, (count, nbits), generator=generator))
    return torch.stack(rows).float().to(device)  # (B, count, nbits)
