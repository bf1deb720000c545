from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from wam_pipe.data.shards.inspect_shards import describe, render_grid
from wam_pipe.core.errors import UserError


def test_describe_reports_counts_sizes_and_categories(synth_shards):
    lines = describe(synth_shards)
    text = "\n".join(lines)
    assert "9 shards, 36 samples of 64x64 jpeg q95" in text
    assert "2 samples without annotations" in text
    histogram = lines[lines.index("categories (instances):") + 1 :]
    names = [line.split()[0] for line in histogram]
    assert set(names) <= {"ellipse", "polygon", "rectangle", "blob-crowd"} and "blob-crowd" in names


def test_grid_shows_samples_with_coloured_masks(synth_shards, tmp_path):
    drawn = render_grid(synth_shards, tmp_path / "grid.png", count=9)
    grid = np.asarray(Image.open(tmp_path / "grid.png"))
    assert drawn == 9 and grid.shape == (3 * 64, 3 * 64, 3)
    palette_red = np.all(grid == (230, 25, 75), axis=2)  # first instance colour, drawn on outlines
    assert palette_red.sum() > 20


@pytest.mark.parametrize(
    "name, count, message",
    [("grid.xyz", 4, r"grid\.xyz: cannot write a picture of type '\.xyz'; name a \.png"),
     ("grid", 4, r"grid: cannot write a picture of type '\(no suffix\)'"),
     ("folder", 4, r"folder: is a folder; pass a file name for the picture, e\.g\. .*folder/grid\.png"),
     ("grid.png", 0, r"--samples must be >= 1, got 0")],
)
def test_unwritable_grid_requests_are_user_errors(synth_shards, tmp_path, name, count, message):
    (tmp_path / "folder").mkdir()
    with pytest.raises(UserError, match=message):
        render_grid(synth_shards, tmp_path / name, count=count)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder"]  # nothing written


def test_grid_can_be_a_jpeg(synth_shards, tmp_path):
    assert render_grid(synth_shards, tmp_path / "sub" / "grid.JPG", count=2) == 2
    with Image.open(tmp_path / "sub" / "grid.JPG") as picture:
        assert picture.format == "JPEG" and picture.size == (2 * 64, 64)
