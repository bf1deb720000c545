"""Image, mask and message I/O of embed/detect: conversions, and one-line errors for bad input."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from wam_pipe.core.errors import UserError
from wam_pipe.inference.image_io import (
    format_message,
    parse_message,
    read_image,
    read_mask,
    write_image,
    write_labels,
    write_mask,
)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_any_mode_is_read_as_rgb(tmp_path, mode):
    path = tmp_path / ("x.jpg" if mode in ("L", "CMYK") else "x.png")
    Image.new("RGB", (7, 5), (10, 200, 30)).convert(mode).save(path)
    image = read_image(path)
    assert image.shape == (3, 5, 7) and image.dtype == torch.uint8


def test_png_round_trip_is_exact(tmp_path):
    image = torch.randint(0, 256, (3, 9, 13), dtype=torch.uint8)
    write_image(tmp_path / "a.png", image)
    assert torch.equal(read_image(tmp_path / "a.png"), image)


def test_exif_orientation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees when shown
    Image.new("RGB", (8, 4)).save(tmp_path / "r.jpg", exif=exif)
    assert read_image(tmp_path / "r.jpg").shape == (3, 8, 4)


def test_mask_threshold_and_size_check(tmp_path):
    array = np.zeros((4, 6), np.uint8)
    array[:, :3] = 200
    array[0, 5] = 100  # below half intensity: not watermarked
    Image.fromarray(array).save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png", (4, 6))
    assert mask.shape == (1, 4, 6) and mask.sum() == 12
    with pytest.raises(UserError, match="mask is 6x4 but the image is 6x5"):
        read_mask(tmp_path / "m.png", (5, 6))


@pytest.mark.parametrize("content, message", [(b"", "cannot read this image"), (b"GIF89a broken", "cannot read")])
def test_unreadable_files(tmp_path, content, message):
    (tmp_path / "bad.png").write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_image(tmp_path / "bad.png")
    with pytest.raises(UserError, match="no such image file"):
        read_image(tmp_path / "missing.png")


def test_messages():
    assert parse_message("1011 0010", 8).tolist() == [1, 0, 1, 1, 0, 0, 1, 0]
    assert format_message(torch.tensor([1.0, 0.0, 0.9, 0.2])) == "1010"
    with pytest.raises(UserError, match="3 bits given but this checkpoint was trained with 4 bits"):
        parse_message("101", 4)
    with pytest.raises(UserError, match="contains '2', 'x'"):
        parse_message("1x21", 4)


def test_masks_and_label_maps_are_written(tmp_path):
    write_mask(tmp_path / "m.png", torch.tensor([[True, False], [False, True]]))
    assert np.asarray(Image.open(tmp_path / "m.png")).tolist() == [[255, 0], [0, 255]]
    labels = torch.tensor([[0, 1, 2], [2, 2, 0]])
    write_labels(tmp_path / "l.png", labels, 2)
    with Image.open(tmp_path / "l.png") as image:
        assert image.mode == "P" and np.asarray(image).tolist() == labels.tolist()
    with pytest.raises(UserError, match="does not exist"):
        write_mask(tmp_path / "no" / "m.png", torch.zeros(2, 2))
    with pytest.raises(UserError, match="cannot write this format"):
        write_image(tmp_path / "x.notaformat", torch.zeros(3, 2, 2, dtype=torch.uint8))
