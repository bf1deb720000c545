"""`core.codecs`: every codec decodes the same pixels, JPEG round trips agree, and the preferred codec is the
maintained one that is installed."""

from __future__ import annotations

import importlib.util
import io

import numpy as np
import pytest
import torch
from PIL import Image

from wam_pipe.core.codecs import CODECS, decode_rgb, encode_jpeg, jpeg_roundtrip_cpu, tensor_codec


def available() -> list[str]:
    found = ["pil"]
    if importlib.util.find_spec("torchvision") is not None:
        found.append("torchvision")
    if importlib.util.find_spec("torchcodec") is not None:
        found.append("torchcodec")
    return found


@pytest.fixture
def photo() -> tuple[torch.Tensor, bytes, bytes]:
    rng = np.random.default_rng(0)
    smooth = np.kron(rng.integers(0, 256, (12, 16, 3)), np.ones((8, 8, 1))).astype(np.uint8)  # (96, 128, 3)
    jpeg, png = io.BytesIO(), io.BytesIO()
    Image.fromarray(smooth).save(jpeg, "JPEG", quality=95)
    Image.fromarray(smooth).save(png, "PNG")
    return torch.from_numpy(smooth).permute(2, 0, 1).contiguous(), jpeg.getvalue(), png.getvalue()


def test_preferred_codec_is_the_maintained_one_installed():
    expected = "torchcodec" if importlib.util.find_spec("torchcodec") else "torchvision"
    assert tensor_codec() == expected and tensor_codec() in CODECS


@pytest.mark.parametrize("codec", available())
def test_every_codec_decodes_the_same_pixels(photo, codec):
    image, jpeg, png = photo
    assert torch.equal(decode_rgb(png, codec), image)  # lossless
    reference = decode_rgb(jpeg, "pil")
    decoded = decode_rgb(jpeg, codec)
    assert decoded.dtype == torch.uint8 and decoded.shape == (3, 96, 128)
    assert (decoded.int() - reference.int()).abs().max() <= 1  # libjpeg-turbo under each


@pytest.mark.parametrize("codec", available())
def test_jpeg_round_trip(photo, codec):
    image = photo[0]
    data = encode_jpeg(image, 50, codec)
    assert data[:2] == b"\xff\xd8"
    out = jpeg_roundtrip_cpu(image, 50, codec)
    assert out.shape == image.shape and out.dtype == torch.uint8
    error = (out.float() - image.float()).abs().mean()
    reference = jpeg_roundtrip_cpu(image, 50, "pil")
    assert 0 < error < 2 * (reference.float() - image.float()).abs().mean()  # lossy, as lossy as Pillow at most 2x
    assert len(encode_jpeg(image, 10, codec)) < len(encode_jpeg(image, 95, codec))
