"""`TrainForward`: the differentiable part of one training step (`wam_pipe.stages.Step`) as a single module.

DDP only prepares gradient reduction when its wrapped module's `forward` runs, so embedding, splicing, augmenting
and extracting happen inside one `forward` rather than through `Watermarker.embed`/`detect` calls from outside.
The step wraps this module (not the `Watermarker`) in DDP; everything else of a step lives in `Step`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from wam_pipe.core.imaging import resize_masks


class TrainForward(nn.Module):
    """Embed each watermark, splice it by its mask (optionally rolled to the next image), augment, extract.

    Args:
        watermarker: `wam_pipe.models.Watermarker` (embedder, extractor, JND, scaling).
    """

    def __init__(self, watermarker: nn.Module):
        super().__init__()
        self.watermarker = watermarker

    def forward(self, imgs: torch.Tensor, masks: torch.Tensor, msgs: torch.Tensor, augment: Any,
                roll: bool) -> dict[str, torch.Tensor]:
        """
        Args:
            imgs: (B, 3, H, W) covers, model space. masks: (B, K, H, W) 0/1. msgs: (B, K, nbits) 0/1.
            augment: the augment stage (None = no augmentation). roll: paste image i+1's watermark into image i.
        Returns:
            imgs_w (B, 3, H, W) spliced watermarked images; cover (B, 3, H, W) their unwatermarked counterparts
            (`imgs` without roll; with roll, `imgs * (1 - m) + roll(imgs) * m` for the rolled masks m: the reference
            of the perceptual loss, the discriminator and PSNR); imgs_aug; masks (B, K, h, w) augmented targets at the
            extractor's size; msgs (B, K, nbits) matching the masks; preds (B, 1 + nbits, h, w) logits; marked (B,)
            whether each spliced image carries any watermark.
        """
        spliced, cover = imgs, imgs
        rolled_imgs = imgs.roll(-1, dims=0) if roll else None               # (B, 3, H, W) image i+1 at i
        for k in range(masks.shape[1]):
            watermarked = self.watermarker.embed(imgs, msgs[:, k])         # (B, 3, H, W)
            mask = masks[:, k : k + 1]                                      # (B, 1, H, W)
            if roll:
                watermarked, mask = watermarked.roll(-1, dims=0), mask.roll(-1, dims=0)
                cover = cover * (1 - mask) + rolled_imgs * mask             # the same splice, unwatermarked
            spliced = spliced * (1 - mask) + watermarked * mask
        if roll:
            masks, msgs = masks.roll(-1, dims=0), msgs.roll(-1, dims=0)
        marked = masks.flatten(1).amax(dim=1) > 0                           # (B,) carries a watermark
        if augment is not None:
            imgs_aug, masks_aug, _ = augment(spliced, masks)
        else:
            imgs_aug, masks_aug = spliced, masks
        # One input dtype whatever augmentation was drawn (under autocast some return bf16, others fp32): a compiled
        # extractor would otherwise recompile for each dtype, inside the timed steps.
        imgs_aug = imgs_aug.to(spliced.dtype)
        preds = self.watermarker.detect(imgs_aug)                           # (B, 1 + nbits, h, w)
        if masks_aug.shape[-2:] != preds.shape[-2:]:
            masks_aug = resize_masks(masks_aug.float(), preds.shape[-2:])  # (B, K, h, w)
        return {"imgs_w": spliced, "cover": cover, "imgs_aug": imgs_aug, "masks": masks_aug, "msgs": msgs,
                "preds": preds, "marked": marked}
