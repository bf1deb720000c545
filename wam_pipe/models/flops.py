"""FLOP estimate of one training step, for model-FLOPs utilisation (MFU) reports."""

from __future__ import annotations

import torch
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from wam_pipe.models.watermarker import Watermarker

# FlopCounterMode knows the CUDA attention kernels but not the CPU one; count it with the same formula so CPU and
# GPU estimates agree.
def _attention_flops(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:  # noqa: ANN001
    return sdpa_flop_count(query_shape, key_shape, value_shape)


_EXTRA_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: _attention_flops}

# Backward costs about twice the forward (gradients w.r.t. activations and w.r.t. weights).
TRAIN_TO_FORWARD = 3.0


def count_forward_flops(watermarker: Watermarker, img_size: int, batch: int = 1) -> float:
    """FLOPs of one embedder forward + one extractor forward on `batch` images of `img_size` x `img_size`.

    Counted by `torch.utils.flop_counter.FlopCounterMode` (matmuls, convolutions, attention; elementwise ops and
    norms are not counted, as is usual for MFU). Runs a real no-grad forward on the model's device and dtype.
    """
    param = next(watermarker.parameters())
    imgs = torch.zeros(batch, 3, img_size, img_size, device=param.device, dtype=param.dtype)
    msgs = torch.zeros(batch, watermarker.nbits, device=param.device)
    counter = FlopCounterMode(display=False, custom_mapping=_EXTRA_FORMULAS)
    with torch.no_grad(), counter:
        watermarker.embedder(imgs, msgs)
        watermarker.extractor(imgs)
    return float(counter.get_total_flops())


def count_training_flops(watermarker: Watermarker, img_size: int, batch: int = 1) -> float:
    """Estimated FLOPs of training on `batch` images (one embed + one extract, forward and backward).

    Approximated as 3x the forward FLOPs of embedder + extractor; JND and augmentations are negligible and not
    counted. About 2.3e11 per image for vae_small + sam_base at 256 px.

    Args:
        watermarker: the model (on the device and dtype it trains in).
        img_size: training image side.
        batch: images per step; the result covers all of them.
    """
    return TRAIN_TO_FORWARD * count_forward_flops(watermarker, img_size, batch)
