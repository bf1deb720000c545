"""A tiny in-memory loader with the load stage's batch format, and a tiny model, for fast eval tests."""

from __future__ import annotations

from typing import Iterator

import torch

from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker


class FakeLoad:
    """`n` random images of `size` px with one square instance each (image i % 4 == 3 has none)."""

    def __init__(self, n: int = 6, batch_size: int = 4, size: int = 32, seed: int = 0):
        generator = torch.Generator().manual_seed(seed)
        self.images = torch.randint(0, 256, (n, 3, size, size), generator=generator, dtype=torch.uint8)
        self.masks = torch.zeros(n, 1, size, size, dtype=torch.uint8)
        for i in range(n):
            if i % 4 != 3:
                self.masks[i, 0, 2 + i % 5 : size // 2 + i % 5, 4 : size // 2 + 4] = 1
        self.batch_size = batch_size
        self.max_samples = None
        self.setup_calls = 0

    def setup(self, ctx: object) -> None:
        self.setup_calls += 1

    def epoch(self, epoch: int) -> Iterator[dict]:
        n = len(self.images) if self.max_samples is None else min(self.max_samples, len(self.images))
        for start in range(0, n, self.batch_size):
            stop = min(start + self.batch_size, n)
            yield {"images": self.images[start:stop], "masks": self.masks[start:stop],
                   "keys": [f"{i:012d}" for i in range(start, stop)]}


def tiny_model(nbits: int = 4, img_size: int = 32, seed: int = 0) -> Watermarker:
    torch.manual_seed(seed)
    return Watermarker(ConvEmbedder(nbits=nbits, channels=4, depth=1), ConvExtractor(nbits=nbits, channels=4, depth=0),
                       img_size=img_size)
