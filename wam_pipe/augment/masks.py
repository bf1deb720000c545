"""Watermark masks: `MaskSampler` for training, and the fixed masks of the evaluation grid.

A mask batch is `(B, K, H, W)` float 0/1, one channel per watermark (K = 1 for a single watermark). K is fixed by
the configuration (`max_watermarks` in multiple mode), so shapes never depend on the data; unused channels are zero.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from wam_pipe.augment._common import InvalidSetting, choice, coin, config_problems, randint
from wam_pipe.augment.shapes import (
    draw_boxes,
    draw_strokes,
    sample_boxes,
    sample_separate_boxes,
    sample_strokes,
)

KINDS = ("irregular", "box", "full", "segm")
# Boxes per single-watermark box mask (they may overlap), as the reference.
BOXES_PER_MASK = (1, 3)
# Seed of the evaluation masks: the same shapes in every run and every evaluation.
REPRESENTATIVE_SEED = 0


class MaskSampler:
    """Draw the watermark masks of a training batch, as the reference's mixed mask generator.

    Per batch (or per sample with `per_sample`) one kind is chosen with the given probabilities (they need not sum to
    1): `irregular` brush strokes, `box` rectangles, `full` (the whole image) or `segm` (the COCO instance masks from
    the loader). Generated masks are shared by the batch; `segm` masks are per image. A single-watermark mask is
    inverted with probability `invert_proba`: an inverted full mask is empty, a batch without watermark (the
    reference's negative examples). Sizes scale with the image: box sides 30-101 px and strokes 20-39 px wide at 256.

    Multiple mode (fine-tuning): K = `max_watermarks` channels. `box` draws 1..`max_boxes` non-overlapping boxes,
    one per channel; `segm` uses the loader's instance channels as separate watermarks (the first K; fewer are
    zero-padded), never inverted, made mutually exclusive in splice order (where instances overlap, the later channel
    keeps the pixels, as the later splice covers the earlier watermark); `irregular` and `full` give one watermark in
    channel 0. No pixel ever belongs to two channels, so every watermarked pixel has one decoding target. With
    `exclusive: false` overlapping instances stay overlapping (the reference): a pixel of two instances then carries
    the later watermark but is a decoding target of both messages.

    Args:
        irregular: probability weight of brush strokes (default 0.25).
        box: probability weight of boxes (default 0.25).
        full: probability weight of the full-image mask (default 0.25).
        segm: probability weight of the loader's COCO masks (default 0.25).
        invert_proba: probability of inverting a single-watermark mask (default 0.5).
        multiple: several watermarks per image, one per channel (default False).
        max_watermarks: K in multiple mode (default 3; the reference: 4, for its 4 COCO instances).
        max_boxes: most boxes (watermarks) of a `box` mask in multiple mode; null = `max_watermarks` (default null;
            the reference: 3).
        exclusive: make overlapping `segm` instances mutually exclusive in splice order (default True; the reference
            keeps the overlaps: false).
        per_sample: draw the kind and shape for every image instead of once per batch (default False).
    """

    def __init__(self, irregular: float = 0.25, box: float = 0.25, full: float = 0.25, segm: float = 0.25,
                 invert_proba: float = 0.5, multiple: bool = False, max_watermarks: int = 3,
                 per_sample: bool = False, max_boxes: int | None = None, exclusive: bool = True) -> None:
        self.weights = {"irregular": float(irregular), "box": float(box), "full": float(full), "segm": float(segm)}
        for kind, weight in self.weights.items():
            if not weight >= 0.0:
                raise InvalidSetting("masks", kind, f"probability must be >= 0, got {weight:g}")
        if sum(self.weights.values()) <= 0.0:
            raise InvalidSetting("masks", "", "irregular, box, full and segm are all 0; give one a positive value")
        if not 0.0 <= float(invert_proba) <= 1.0:
            raise InvalidSetting("masks", "invert_proba", f"must be in [0, 1], got {invert_proba}")
        if int(max_watermarks) < 1:
            raise InvalidSetting("masks", "max_watermarks", f"must be >= 1, got {max_watermarks}")
        if max_boxes is not None and not 1 <= int(max_boxes) <= int(max_watermarks):
            raise InvalidSetting("masks", "max_boxes", f"must be in 1..max_watermarks ({max_watermarks}), got {max_boxes}")
        self.invert_proba = float(invert_proba)
        self.max_boxes = int(max_boxes) if max_boxes is not None else int(max_watermarks)
        self.exclusive = bool(exclusive)
        self.multiple = bool(multiple)
        self.max_watermarks = int(max_watermarks)
        self.per_sample = bool(per_sample)

    @classmethod
    def check_config(cls, node: dict) -> list[tuple[str, str]]:
        """Probability checks for `wam-pipe validate`, before anything is built."""
        return config_problems(cls, node)

    @property
    def num_watermarks(self) -> int:
        """K, the number of mask channels this sampler returns."""
        return self.max_watermarks if self.multiple else 1

    def __call__(self, segm: torch.Tensor) -> torch.Tensor:
        """Masks `(B, K, H, W)` float32 on `segm`'s device, from the loader's instance masks `segm` `(B, Ks, H, W)`."""
        if segm.dim() != 4:
            raise ValueError(f"masks: expected loader masks (B, Ks, H, W), got shape {tuple(segm.shape)}")
        like = torch.empty(0, device=segm.device, dtype=torch.float32)
        if not self.per_sample:
            return self._sample(segm, like)
        return torch.cat([self._sample(segm[i : i + 1], like) for i in range(segm.shape[0])])

    def _sample(self, segm: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        kind = KINDS[choice([self.weights[k] for k in KINDS])]
        batch, _, height, width = segm.shape
        if kind == "segm":
            masks, invertible = self._from_segm(segm, like), not self.multiple
        else:
            one, invertible = self._generate(kind, height, width, like)
            masks = one.unsqueeze(0).expand(batch, -1, -1, -1).contiguous()  # (B, K, H, W)
        if invertible and self.invert_proba > 0 and coin(self.invert_proba):
            masks = torch.cat([1.0 - masks[:, :1], masks[:, 1:]], dim=1)
        return masks

    def _from_segm(self, segm: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        instances = (segm > 0).to(like.dtype)  # (B, Ks, H, W)
        if not self.multiple:
            return instances.amax(dim=1, keepdim=True)  # (B, 1, H, W) union
        k, ks = self.num_watermarks, instances.shape[1]
        if ks >= k:
            instances = instances[:, :k]
        else:
            instances = F.pad(instances, (0, 0, 0, 0, 0, k - ks))  # zero channels up to K
        return exclusive_in_splice_order(instances) if self.exclusive else instances

    def _generate(self, kind: str, height: int, width: int, like: torch.Tensor) -> tuple[torch.Tensor, bool]:
        """One generated mask `(K, H, W)` and whether it holds a single watermark (so it may be inverted)."""
        k = self.num_watermarks
        masks = torch.zeros(k, height, width, device=like.device, dtype=like.dtype)
        if kind == "full":
            masks[0] = 1.0
        elif kind == "irregular":
            masks[0] = draw_strokes(sample_strokes(height, width), height, width, like)
        elif self.multiple:
            count = int(randint(1, self.max_boxes, 1)[0])
            boxes = sample_separate_boxes(count, height, width)
            masks[:count] = draw_boxes(boxes, height, width, like, separate=True)
            return masks, count == 1
        else:
            count = int(randint(*BOXES_PER_MASK, 1)[0])
            masks[0] = draw_boxes(sample_boxes(count, height, width), height, width, like)[0]
        return masks, True

    def __repr__(self) -> str:
        weights = ", ".join(f"{k}={v}" for k, v in self.weights.items())
        return (f"MaskSampler({weights}, invert_proba={self.invert_proba}, multiple={self.multiple}, "
                f"max_watermarks={self.max_watermarks}, per_sample={self.per_sample}, max_boxes={self.max_boxes}, "
                f"exclusive={self.exclusive})")


def exclusive_in_splice_order(masks: torch.Tensor) -> torch.Tensor:
    """Masks `(B, K, H, W)` 0/1 made mutually exclusive the way splicing resolves overlaps: watermark k is spliced
    over watermarks 0..k-1, so channel k keeps its pixels and earlier channels lose those a later one covers
    (m_k * (1 - max(m_{k+1}, ..., m_{K-1}))). Each channel is then exactly where its watermark ends up."""
    covered = masks.flip(1).cummax(dim=1).values.flip(1)    # (B, K, H, W): max(m_k, ..., m_{K-1})
    later = F.pad(covered[:, 1:], (0, 0, 0, 0, 0, 1))      # (B, K, H, W): max(m_{k+1}, ...), 0 for the last
    return (masks * (1 - later)).contiguous()


def representative_masks(height: int, width: int,
                         device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
    """The evaluation masks, identical in every run: `full`, `box`, `box_inverted`, `irregular`,
    `irregular_inverted`, each `(1, 1, H, W)` float 0/1."""
    like = torch.empty(0, device=device, dtype=torch.float32)
    generator = torch.Generator().manual_seed(REPRESENTATIVE_SEED)
    box = draw_boxes(sample_boxes(1, height, width, generator), height, width, like).view(1, 1, height, width)
    strokes = sample_strokes(height, width, generator)
    irregular = draw_strokes(strokes, height, width, like).view(1, 1, height, width)
    return {
        "full": torch.ones(1, 1, height, width, device=like.device),
        "box": box,
        "box_inverted": 1.0 - box,
        "irregular": irregular,
        "irregular_inverted": 1.0 - irregular,
    }


def non_overlapping_boxes(n: int, height: int, width: int, generator: torch.Generator | None = None,
                          device: torch.device | str | None = None) -> torch.Tensor:
    """`n` non-overlapping boxes, one per channel: `(1, n, H, W)` float 0/1 (for multi-watermark evaluation).

    A box that finds no free place in 100 tries stays empty (only when n boxes cannot fit the image).
    """
    like = torch.empty(0, device=device, dtype=torch.float32)
    boxes = sample_separate_boxes(n, height, width, generator)
    return draw_boxes(boxes, height, width, like, separate=True).unsqueeze(0)  # (1, n, H, W)
