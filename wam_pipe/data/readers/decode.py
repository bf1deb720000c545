"""Decoding stored samples into tensors, and collating them into batches.

Images are decoded to uint8 `(3, S, S)` by the "torchvision" decoder (the name is historical: the tensor codec of
`core.codecs`, TorchCodec when installed, else torchvision.io; libjpeg-turbo, measured 1.4-1.8x Pillow's rate on
256-pixel JPEGs on this machine) or by Pillow ("pil"). Masks never go through a generic image decoder: they are COCO RLE in the
sample's JSON, decoded by `MaskSelector` (pycocotools), so they stay 0/1 uint8 (WebDataset's "pil"/"rgb8" decoders
would turn a mask PNG into RGB or float /255).
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np
import torch

from wam_pipe.core import codecs
from wam_pipe.data.readers.mask_select import MaskSelector
from wam_pipe.data.shards.tar_io import EncodedSample
from wam_pipe.core.errors import UserError

DECODERS = ("torchvision", "pil")


def preload_decoder(decoder: str) -> None:
    """Import the decoder's modules now, in the main process, so forked loader workers inherit them instead of each
    paying the import (torchvision takes ~2 s on a small machine) before its first batch."""
    if decoder == "torchvision":
        codecs.preload()
    else:
        import PIL.JpegImagePlugin  # noqa: F401
        import PIL.PngImagePlugin  # noqa: F401


def decode_image(data: bytes, decoder: str) -> torch.Tensor:
    """Encoded JPEG/PNG bytes -> uint8 `(3, H, W)` RGB tensor."""
    if decoder == "torchvision":
        return codecs.decode_rgb(data)
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image.convert("RGB"))  # (H, W, 3)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)  # (3, H, W)


def decode_stored(sample: EncodedSample, selector: MaskSelector, rng: np.random.Generator, size: int,
                  decoder: str) -> dict[str, Any]:
    """A stored sample -> `{"key", "image": (3, S, S) uint8, "masks": (K, S, S) uint8}`.

    Raises:
        UserError: the image or the JSON cannot be decoded, or has the wrong size (names shard and key).
    """
    where = f"{sample.source}: sample {sample.key}"
    fix = "run `wam-pipe shard verify`"
    try:
        meta = json.loads(sample.meta)
        rles = [ann["segmentation"] for ann in meta["annotations"]]
        masks = selector.masks_from_rles(rles, selector.choose(len(rles), rng), size)
    except Exception as err:
        raise UserError(f"{where}: bad JSON or mask ({type(err).__name__}: {err}); {fix}") from None
    try:
        image = decode_image(sample.image, decoder)
    except Exception as err:
        raise UserError(f"{where}: cannot decode image ({type(err).__name__}: {err}); {fix}") from None
    if tuple(image.shape) != (3, size, size) or masks.shape[1:] != (size, size):
        raise UserError(f"{where}: image is {tuple(image.shape[1:])}, expected ({size}, {size}); rebuild the shards")
    return {"key": sample.key, "image": image, "masks": torch.from_numpy(masks)}


class Collate:
    """Samples -> a batch `{"images": (B, 3, S, S) uint8, "masks": (B, K, S, S) uint8, "keys": [str]}`.

    Decoders produce interleaved RGB, i.e. `(3, S, S)` views with channels-last strides. With `channels_last` the
    batch keeps that memory layout (`images.is_contiguous(memory_format=torch.channels_last)`): one memcpy per image
    instead of a strided transpose that costs a third of the JPEG decode. Shape, dtype and values are the same either
    way; `pin_memory` and `.to(device)` keep the layout; call `.contiguous()` where an op needs NCHW memory.
    """

    def __init__(self, channels_last: bool = True):
        self.channels_last = channels_last

    def __call__(self, samples: list[dict[str, Any]], out: tuple[torch.Tensor, torch.Tensor] | None = None
                 ) -> dict[str, Any]:
        """`out`: optional (images, masks) buffers to fill, shaped (B, S, S, 3) (or (B, 3, S, S) without
        `channels_last`) and (B, K, S, S), e.g. a shared-memory ring slot; by default new tensors are allocated."""
        image, masks_shape = samples[0]["image"], samples[0]["masks"].shape
        in_worker = torch.utils.data.get_worker_info() is not None
        if out is None:
            side = (image.shape[1], image.shape[2], 3) if self.channels_last else tuple(image.shape)
            out = (_output((len(samples), *side), in_worker), _output((len(samples), *masks_shape), in_worker))
        images, masks = out
        if self.channels_last:
            torch.stack([s["image"].permute(1, 2, 0) for s in samples], out=images)  # (B, S, S, 3): plain copies
            images = images.permute(0, 3, 1, 2)  # (B, 3, S, S) view with channels-last strides
        else:
            torch.stack([s["image"] for s in samples], out=images)  # (B, 3, S, S) contiguous
        torch.stack([s["masks"] for s in samples], out=masks)  # (B, K, S, S)
        return {"images": images, "masks": masks, "keys": [s["key"] for s in samples]}


def _output(shape: tuple[int, ...], shared: bool) -> torch.Tensor:
    """A uint8 batch buffer; in a loader worker it is allocated in shared memory, where the batch would otherwise be
    copied when it is sent to the main process (one 4 MB copy per batch of 16 saved)."""
    out = torch.empty(shape, dtype=torch.uint8)
    return out.share_memory_() if shared else out


collate = Collate(channels_last=False)  # NCHW-contiguous batches (tests, tools)
