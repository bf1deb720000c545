"""JPEG/PNG decoding and JPEG encoding on the CPU, through the fastest maintained library installed.

torchvision 0.29 deprecates its image codecs (`torchvision.io.decode_*` / `encode_*`) in favour of TorchCodec
(>= 0.16), which took them over. benchmarks/codecs.py measured both at the same speed on this data (libjpeg-turbo
under each; 256-px q95 shard samples, full-size COCO photos, the JPEG augmentation's round trip) and Pillow 1.4-1.6x
slower (benchmarks/RESULTS.md, "Image codecs"). So the tensor codec is, in order:
- TorchCodec, when installed (`pip install -e '.[codecs]'`): maintained, as fast;
- torchvision.io while it still has its codecs (pyproject bounds torchvision below 0.30 for that reason);
- Pillow otherwise (always installed; slower).
`tensor_codec()` says which one this process uses; every function gives uint8 `(3, H, W)` RGB tensors.
"""

from __future__ import annotations

import functools
import io
import warnings
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image

CODECS = ("torchcodec", "torchvision", "pil")


@functools.lru_cache(maxsize=None)
def tensor_codec() -> str:
    """"torchcodec", "torchvision" or "pil": the first one importable here with image codecs."""
    try:
        from torchcodec.decoders import decode_image  # noqa: F401
        from torchcodec.encoders import JpegEncoder  # noqa: F401

        return "torchcodec"
    except Exception:  # not installed, or its native libraries do not load on this machine
        pass
    try:
        from torchvision.io import decode_image, encode_jpeg  # noqa: F401

        return "torchvision"
    except ImportError:
        return "pil"


def _quietly(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    # torchvision 0.29 warns on every codec call; the warning is the reason for this module, not news to the user.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"torchvision\.io")
        return fn(*args, **kwargs)


def _bytes_tensor(data: bytes) -> torch.Tensor:
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)  # a writable copy: torch warns on read-only buffers


def _pil_decode(data: bytes) -> torch.Tensor:
    with Image.open(io.BytesIO(data)) as image:
        array = np.asarray(image.convert("RGB"))  # (H, W, 3)
    return torch.from_numpy(array.copy()).permute(2, 0, 1)  # (3, H, W)


def decode_rgb(data: bytes, codec: str | None = None) -> torch.Tensor:
    """Encoded JPEG/PNG bytes -> uint8 `(3, H, W)` RGB. For shard samples (written without EXIF); TorchCodec
    applies an EXIF orientation where one is present, torchvision and this Pillow path do not.

    Args:
        codec: one of `CODECS` (default: `tensor_codec()`).
    """
    codec = codec or tensor_codec()
    if codec == "torchcodec":
        from torchcodec.decoders import decode_image

        return decode_image(_bytes_tensor(data), mode="RGB")
    if codec == "torchvision":
        from torchvision.io import ImageReadMode, decode_image as tv_decode

        return _quietly(tv_decode, _bytes_tensor(data), mode=ImageReadMode.RGB)
    return _pil_decode(data)


def encode_jpeg(image: torch.Tensor, quality: int, codec: str | None = None) -> bytes:
    """uint8 `(3, H, W)` RGB on the CPU -> JPEG file bytes at `quality` (1-100)."""
    codec = codec or tensor_codec()
    image = image.contiguous()
    if codec == "torchcodec":
        from torchcodec.encoders import JpegEncoder

        return JpegEncoder(image).to_tensor(quality=int(quality)).numpy().tobytes()
    if codec == "torchvision":
        from torchvision.io import encode_jpeg as tv_encode

        return _quietly(tv_encode, image, quality=int(quality)).numpy().tobytes()
    buffer = io.BytesIO()
    Image.fromarray(image.permute(1, 2, 0).numpy()).save(buffer, "JPEG", quality=int(quality))  # (H, W, 3)
    return buffer.getvalue()


def jpeg_roundtrip_cpu(image: torch.Tensor, quality: int, codec: str | None = None) -> torch.Tensor:
    """uint8 `(3, H, W)` through a JPEG file at `quality` and back (the JPEG augmentation, on the CPU)."""
    codec = codec or tensor_codec()
    return decode_rgb(encode_jpeg(image, quality, codec), codec)


def preload() -> None:
    """Import the codec's modules now, so forked loader workers inherit them instead of each paying the import."""
    tensor_codec()
