"""`detect --multi` clustering on crafted per-pixel predictions with known messages, and its time bound."""

from __future__ import annotations

import time

import torch

from wam_pipe.inference.multi import cluster_messages


def crafted(messages: torch.Tensor, boxes: list[tuple[int, int, int, int]], size: int = 128, noise: float = 1.0,
            seed: int = 0) -> torch.Tensor:
    """Logits `(1 + nbits, size, size)`: each box watermarked with its message; bit logits +-2 plus Gaussian noise
    (about 2% of the bits of a pixel are flipped at noise 1)."""
    generator = torch.Generator().manual_seed(seed)
    nbits = messages.shape[1]
    preds = torch.zeros(1 + nbits, size, size)
    preds[0] = -5.0
    for (top, bottom, left, right), message in zip(boxes, messages):
        preds[0, top:bottom, left:right] = 5.0
        shape = (nbits, bottom - top, right - left)
        preds[1:, top:bottom, left:right] = (2 * message - 1)[:, None, None] * 2 + noise * torch.randn(
            shape, generator=generator)
    return preds


def test_three_regions_three_messages():
    messages = torch.randint(0, 2, (3, 32), generator=torch.Generator().manual_seed(1)).float()
    boxes = [(0, 40, 0, 60), (50, 110, 10, 50), (70, 128, 70, 128)]
    regions, labels = cluster_messages(crafted(messages, boxes))
    assert len(regions) == 3
    found = {tuple(r.message.int().tolist()) for r in regions}
    assert found == {tuple(m.int().tolist()) for m in messages}
    assert [round(r.fraction, 3) for r in regions] == sorted([round(r.fraction, 3) for r in regions], reverse=True)
    assert labels.shape == (128, 128) and set(labels.unique().tolist()) == {0, 1, 2, 3}
    assert (labels[0:40, 0:60] == labels[0, 0]).float().mean() > 0.95  # one label per box


def test_regions_below_min_fraction_are_dropped():
    messages = torch.tensor([[1.0] * 8 + [0.0] * 8, [0.0] * 8 + [1.0] * 8])
    regions, _ = cluster_messages(crafted(messages, [(0, 64, 0, 128), (100, 104, 100, 104)]), min_fraction=0.01)
    assert len(regions) == 1 and regions[0].message.tolist() == messages[0].tolist()


def test_nothing_detected_means_no_region():
    preds = torch.zeros(9, 64, 64)
    preds[0] = -1.0
    regions, labels = cluster_messages(preds)
    assert regions == [] and not labels.any()


def test_time_is_bounded_on_pure_noise():
    preds = torch.randn(33, 256, 256, generator=torch.Generator().manual_seed(0))
    preds[0] = 1.0  # every pixel "watermarked", every bit vector different
    start = time.perf_counter()
    regions, _ = cluster_messages(preds, max_points=5000)
    assert time.perf_counter() - start < 20.0
    assert regions == []  # noise holds no message
