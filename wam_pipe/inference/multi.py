"""Several messages in one image: cluster the per-pixel bit predictions (`wam-pipe detect --multi`).

As the reference (DBSCAN on the {0,1}^nbits vectors of the predicted-watermarked pixels, eps = 1 bit), with two
changes that bound the time whatever the image (the reference could hang, issue #7):
1. at most `max_points` pixels (random, seeded) go into DBSCAN, and identical bit vectors are merged into one
   weighted point (`sample_weight`), so DBSCAN sees at most `max_points` and usually far fewer distinct points;
2. every predicted pixel is then assigned to the nearest cluster centre (Hamming distance), and each region's
   message is re-decoded from the bit logits averaged over its pixels.
Regions smaller than `min_fraction` of the image are dropped; regions that decode to the same message are merged.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from wam_pipe.inference.detect import region_mean_logits

DEFAULT_MAX_POINTS = 20_000
DEFAULT_MIN_REGION = 0.01
MAX_CLUSTERS = 64


@dataclasses.dataclass
class Region:
    message: torch.Tensor  # (nbits,) 0/1
    mean_logits: torch.Tensor  # (nbits,)
    fraction: float  # of the image's pixels

    @property
    def confidence(self) -> torch.Tensor:
        return torch.sigmoid(self.mean_logits.abs())


def _dbscan_centres(vectors: torch.Tensor, min_samples: int, max_flips: int) -> torch.Tensor:
    """Cluster centres `(C, nbits)` 0/1 of 0/1 vectors `(N, nbits)` with DBSCAN on distinct vectors."""
    from sklearn.cluster import DBSCAN

    distinct, counts = torch.unique(vectors, dim=0, return_counts=True)  # (U, nbits), (U,)
    # Euclidean distance between 0/1 vectors is sqrt(differing bits): eps admits up to `max_flips` flips.
    eps = math.sqrt(max_flips) + 1e-6
    labels = DBSCAN(eps=eps, min_samples=min_samples).fit(distinct.numpy().astype(np.float32),
                                                          sample_weight=counts.numpy()).labels_
    centres = []
    for label in sorted(set(labels.tolist()) - {-1}):
        members = torch.from_numpy(labels == label)
        weights = counts[members].float()[:, None]  # (m, 1)
        centre = ((distinct[members].float() * weights).sum(0) / weights.sum() > 0.5).float()
        centres.append((float(weights.sum()), centre))
    # Noisy predictions can form many tiny clusters; the largest MAX_CLUSTERS are plenty and bound the work after.
    centres = [c for _, c in sorted(centres, key=lambda wc: -wc[0])[:MAX_CLUSTERS]]
    return torch.stack(centres) if centres else torch.zeros(0, vectors.shape[1])


def cluster_messages(preds: torch.Tensor, max_points: int = DEFAULT_MAX_POINTS,
                     min_fraction: float = DEFAULT_MIN_REGION, max_flips: int = 1,
                     seed: int = 0) -> tuple[list[Region], torch.Tensor]:
    """Find the distinct messages of an image from the extractor's logits `(1 + nbits, s, s)`.

    Returns:
        regions (largest first) and a label map `(s, s)` int64: 0 = no watermark, i = regions[i - 1].
    """
    det, bits = preds[0], preds[1:]
    size = det.numel()
    flat_bits = bits.flatten(1)  # (nbits, s*s)
    candidates = torch.nonzero(det.flatten() > 0).flatten()  # (P,)
    labels = torch.zeros(size, dtype=torch.int64)
    min_pixels = max(1, math.ceil(min_fraction * size))
    if candidates.numel() < min_pixels:
        return [], labels.view_as(det)
    hard = (flat_bits[:, candidates] > 0).T.to(torch.uint8)  # (P, nbits)
    sample = hard
    if candidates.numel() > max_points:
        generator = torch.Generator().manual_seed(seed)
        sample = hard[torch.randperm(candidates.numel(), generator=generator)[:max_points]]
    # A region of min_fraction of the image holds about this many of the sampled points.
    min_samples = max(3, math.ceil(min_pixels * sample.shape[0] / candidates.numel()))
    centres = _dbscan_centres(sample, min_samples, max_flips)  # (C, nbits)
    if centres.shape[0] == 0:
        return [], labels.view_as(det)
    ones = hard.float()  # (P, nbits)
    # Hamming distance as matrix products (no (P, C, nbits) tensor): bits set in one vector but not the other.
    distance = ones @ (1 - centres).T + (1 - ones) @ centres.T  # (P, C)
    nearest = distance.argmin(dim=1)
    return _regions(flat_bits, candidates, nearest, centres.shape[0], min_pixels, size, labels, det.shape)


def _regions(flat_bits: torch.Tensor, candidates: torch.Tensor, nearest: torch.Tensor, clusters: int,
             min_pixels: int, size: int, labels: torch.Tensor, shape: torch.Size) -> tuple[list[Region], torch.Tensor]:
    """Decode each cluster from its pixels, merge equal messages, drop small ones, and label the map."""
    by_message: dict[tuple[int, ...], torch.Tensor] = {}
    for c in range(clusters):
        pixels = candidates[nearest == c]
        if pixels.numel() == 0:
            continue
        key = tuple((flat_bits[:, pixels].mean(dim=1) > 0).int().tolist())
        by_message[key] = torch.cat([by_message[key], pixels]) if key in by_message else pixels
    groups = sorted((p for p in by_message.values() if p.numel() >= min_pixels), key=lambda p: -p.numel())
    regions = []
    for index, pixels in enumerate(groups, start=1):
        region = torch.zeros(size)
        region[pixels] = 1
        mean_logits = region_mean_logits(flat_bits.view(-1, *shape), region.view(shape))
        regions.append(Region((mean_logits > 0).float(), mean_logits, pixels.numel() / size))
        labels[pixels] = index
    return regions, labels.view(shape)
