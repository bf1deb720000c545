"""One pixel limit for every image reader: shard build (skips), embed/detect (one line), configurable."""

from __future__ import annotations

import warnings

import pytest
from PIL import Image

from wam_pipe.core.errors import UserError
from wam_pipe.core.pixel_limit import ENV
from wam_pipe.data.shards.prepare import SkipImage, open_rgb
from wam_pipe.inference.image_io import read_image


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A 100-megapixel PNG of a few KB."""
    path = tmp_path_factory.mktemp("bomb") / "bomb.png"
    Image.new("1", (10000, 10000)).save(path)
    return path


def test_embed_detect_reader_refuses_a_bomb_in_one_line_without_a_warning(bomb):
    # Issue 11 item 15: embed/detect accepted 100 MP with a raw DecompressionBombWarning and 4.5 GB of memory.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(UserError, match=rf"bomb.png: decompression bomb: 10000x10000 = 100,000,000 pixels "
                                            rf"exceeds the limit of 89,478,485 \(set {ENV} to raise it\)"):
            read_image(bomb)


def test_the_limit_is_one_setting_for_every_reader(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    Image.new("RGB", (40, 30)).save(path)
    monkeypatch.setenv(ENV, "1000")
    with pytest.raises(UserError, match="40x30 = 1,200 pixels exceeds the limit of 1,000"):
        read_image(path)
    with pytest.raises(SkipImage, match="40x30 = 1,200 pixels exceeds the limit of 1,000") as skip:
        open_rgb(path, 40, 30)
    assert skip.value.kind == "bomb"
    monkeypatch.setenv(ENV, "1200")
    assert tuple(read_image(path).shape) == (3, 30, 40)
    monkeypatch.setenv(ENV, "lots")
    with pytest.raises(UserError, match=f"{ENV}='lots': expected a positive number"):
        read_image(path)
