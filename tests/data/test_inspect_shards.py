from __future__ import annotations

import numpy as np
from PIL import Image

from wam_pipe.data.inspect_shards import describe, render_grid


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
