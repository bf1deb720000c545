from __future__ import annotations

import numpy as np
import pytest

from wam_pipe.data.readers.mask_select import MaskSelector
from wam_pipe.data.rle import encode_masks


def test_union_mode_picks_all_or_a_random_nonempty_subset():
    rng = np.random.default_rng(0)
    selector = MaskSelector("union", random_subset=0.5)
    choices = [selector.choose(5, rng) for _ in range(2000)]
    full = sum(c == [0, 1, 2, 3, 4] for c in choices)
    assert all(1 <= len(c) <= 5 and c == sorted(set(c)) for c in choices)
    assert 0.55 < full / 2000 < 0.65  # 0.5 "all" + 0.5 * P(subset of size 5) = 0.5 + 0.5/5 = 0.6
    sizes = [len(c) for c in choices if c != [0, 1, 2, 3, 4]]
    assert set(sizes) == {1, 2, 3, 4}
    assert MaskSelector("union", random_subset=0.0).choose(4, rng) == [0, 1, 2, 3]
    assert selector.choose(0, rng) == []


def test_instances_mode_takes_the_first_k_and_pads():
    masks = np.zeros((8, 8, 3), dtype=np.uint8)
    for i in range(3):
        masks[i, :, i] = 1
    rles = encode_masks(masks)
    selector = MaskSelector("instances", max_masks=4)
    chosen = selector.choose(3, np.random.default_rng(0))
    out = selector.masks_from_rles(rles, chosen, 8)
    assert chosen == [0, 1, 2] and out.shape == (4, 8, 8)
    assert [int(out[k].sum()) for k in range(4)] == [8, 8, 8, 0]
    assert MaskSelector("instances", max_masks=2).choose(3, np.random.default_rng(0)) == [0, 1]


def test_union_of_nothing_is_zeros_and_bad_mode_is_rejected():
    selector = MaskSelector("union")
    assert selector.masks_from_rles([], [], 8).shape == (1, 8, 8)
    assert selector.masks_from_rles([], [], 8).sum() == 0
    with pytest.raises(ValueError, match="mask_mode"):
        MaskSelector("semantic")


def test_instance_subset_draws_a_random_subset_half_of_the_time_like_the_reference():
    """`instance_subset`: half of the time the first K of a random subset in random order, else the first K."""
    rng = np.random.default_rng(0)
    selector = MaskSelector("instances", max_masks=4, random_subset=0.5, instance_subset=True)
    choices = [selector.choose(6, rng) for _ in range(4000)]
    assert all(1 <= len(c) <= 4 and len(set(c)) == len(c) and set(c) <= set(range(6)) for c in choices)
    first = sum(c == [0, 1, 2, 3] for c in choices) / len(choices)
    assert 0.49 < first < 0.53                 # the plain "first 4" half (a random subset is rarely exactly it)
    assert any(4 in c or 5 in c for c in choices)                    # instances beyond the first K appear
    assert any(c != sorted(c) for c in choices)                      # in random order
    assert {len(c) for c in choices} == {1, 2, 3, 4}
    plain = MaskSelector("instances", max_masks=4, random_subset=0.5)
    assert all(plain.choose(6, rng) == [0, 1, 2, 3] for _ in range(50))  # the default: always the first K
