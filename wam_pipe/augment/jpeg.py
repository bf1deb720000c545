"""JPEG compression: per image on the CPU through `core.codecs` (TorchCodec when installed, else torchvision.io,
else Pillow), batched with torchvision's nvjpeg on CUDA.

JPEG is the one augmentation that cannot avoid a host-device synchronization on a GPU: the encoder must learn each
file's byte length before the decoder can read it. It is one sync for the batches that pick JPEG, not per step.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
from torchvision.io import ImageReadMode, decode_jpeg, encode_jpeg

from wam_pipe.augment._common import check_range, randint
from wam_pipe.core.codecs import jpeg_roundtrip_cpu
from wam_pipe.augment.base import Params, ValuemetricAugmentation, require_strength
from wam_pipe.augment.registry import register_augmentation


def _codec_quietly(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # torchvision 0.29 deprecates its codecs in favour of TorchCodec (not a dependency); the functions still work.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torchvision\.io")
        return fn(*args, **kwargs)


def jpeg_roundtrip(images: torch.Tensor, qualities: list[int]) -> torch.Tensor:
    """Encode and decode uint8 images `(B, 3, H, W)` at `qualities` (one for all, or one per image).

    Returns uint8 images of the same shape and device.
    """
    batch = images.shape[0]
    per_image = qualities if len(qualities) == batch else [qualities[0]] * batch
    decoded: list[torch.Tensor | None] = [None] * batch
    if images.device.type == "cuda":
        # nvjpeg takes lists: one encoder call per distinct quality, one decoder call for the batch.
        encoded: list[torch.Tensor | None] = [None] * batch
        for quality in sorted(set(per_image)):
            indices = [i for i, q in enumerate(per_image) if q == quality]
            files = _codec_quietly(encode_jpeg, [images[i].contiguous() for i in indices], quality=quality)
            for i, data in zip(indices, files):
                encoded[i] = data.cpu()  # the decoder reads bytes from host memory
        decoded = _codec_quietly(decode_jpeg, encoded, mode=ImageReadMode.RGB, device=images.device)
    else:
        for i in range(batch):
            decoded[i] = jpeg_roundtrip_cpu(images[i], per_image[i])
    return torch.stack(decoded)  # (B, 3, H, W)


@register_augmentation("jpeg", eval_strengths=(40, 60, 80))
class JPEG(ValuemetricAugmentation):
    """JPEG compression and decompression; the gradient passes straight through.

    `strength` = the JPEG quality (1-100; lower = stronger compression).

    Args:
        weight: relative probability of being picked (default 1.0).
        quality: `[min, max]` training range of the integer quality (default [40, 80]).
    """

    straight_through = True

    def __init__(self, weight: float = 1.0, quality: list[int] = (40, 80)) -> None:
        super().__init__(weight)
        low, high = check_range(self.name, "quality", quality, low=1, high=100)
        self.quality = (int(round(low)), int(round(high)))

    def sample_params(self, n: int, batch: int, height: int, width: int) -> Params:
        return {"quality": randint(*self.quality, n)}

    def fixed_params(self, strength: float | None, batch: int, height: int, width: int) -> Params:
        quality = int(round(require_strength(self.name, strength)))
        if not 1 <= quality <= 100:
            raise ValueError(f"{self.name}.apply: quality must be in [1, 100], got {quality}")
        return {"quality": torch.tensor([quality])}

    def adjust(self, pixels: torch.Tensor, params: Params) -> torch.Tensor:
        images = pixels.mul(255.0).round().to(torch.uint8)
        decoded = jpeg_roundtrip(images, [int(q) for q in params["quality"]])
        return decoded.to(pixels.dtype) / 255.0
