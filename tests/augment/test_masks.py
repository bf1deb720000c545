"""MaskSampler kinds, inversion, multiple mode, per-sample mode; brush strokes and boxes; the evaluation masks."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.augment import MaskSampler, non_overlapping_boxes, representative_masks
from wam_pipe.augment._common import InvalidSetting
from wam_pipe.augment.shapes import draw_strokes, sample_boxes, sample_strokes


def _segm(batch: int = 3, channels: int = 4, size: int = 64) -> torch.Tensor:
    """Loader-style uint8 instance masks: image i has i+1 disjoint instances (the rest zero)."""
    segm = torch.zeros(batch, channels, size, size, dtype=torch.uint8)
    for i in range(batch):
        for c in range(min(i + 1, channels)):
            segm[i, c, 4 + 12 * c : 12 + 12 * c, 5 : 20 + 5 * i] = 1
    return segm


def _only(kind: str, **kwargs) -> MaskSampler:
    weights = {"irregular": 0.0, "box": 0.0, "full": 0.0, "segm": 0.0, kind: 1.0}
    return MaskSampler(**weights, **kwargs)


def _is_binary(masks: torch.Tensor) -> bool:
    return bool(((masks == 0) | (masks == 1)).all())


def test_full_is_everything_and_inverted_full_is_empty():
    segm = _segm()
    masks = _only("full", invert_proba=0.0)(segm)
    assert masks.shape == (3, 1, 64, 64) and masks.dtype == torch.float32 and bool((masks == 1).all())
    assert bool((_only("full", invert_proba=1.0)(segm) == 0).all())


def test_segm_is_the_union_of_the_loader_masks():
    segm = _segm()
    masks = _only("segm", invert_proba=0.0)(segm)
    assert torch.equal(masks, segm.amax(dim=1, keepdim=True).float())
    assert torch.equal(_only("segm", invert_proba=1.0)(segm), 1 - masks)


def test_box_masks_are_rectangles_inside_the_margin_shared_by_the_batch():
    torch.manual_seed(0)
    for _ in range(10):
        masks = _only("box", invert_proba=0.0)(_segm(size=128))
        assert masks.shape == (3, 1, 128, 128) and _is_binary(masks)
        assert torch.equal(masks[0], masks[1]) and torch.equal(masks[0], masks[2])
        assert masks.sum() > 0
        border = 5  # 10 px at 256 -> 5 px at 128
        assert masks[..., :border, :].sum() == 0 and masks[..., -border:, :].sum() == 0
        assert masks[..., :border].sum() == 0 and masks[..., -border:].sum() == 0


def test_box_sides_scale_with_the_image_size():
    torch.manual_seed(0)
    for size in (64, 256, 512):
        boxes = sample_boxes(50, size, size)
        sides = torch.tensor([[h, w] for _, _, h, w in boxes], dtype=torch.float64)
        assert sides.min() >= round(30 * size / 256) and sides.max() <= round(101 * size / 256)


def test_inversion_complements_the_generated_mask():
    torch.manual_seed(5)
    plain = _only("box", invert_proba=0.0)(_segm())
    torch.manual_seed(5)
    inverted = _only("box", invert_proba=1.0)(_segm())
    assert torch.equal(inverted, 1 - plain)


def test_inversion_probability_is_honoured():
    torch.manual_seed(0)
    sampler = _only("full", invert_proba=0.5)
    empty = sum(int(sampler(_segm(batch=1, size=8)).sum() == 0) for _ in range(400))
    assert 160 < empty < 240


def test_kind_probabilities_are_honoured():
    torch.manual_seed(0)
    sampler = MaskSampler(irregular=0, box=0, full=3, segm=1, invert_proba=0)
    segm = _segm(batch=1, size=16)
    full = sum(int(bool((sampler(segm) == 1).all())) for _ in range(400))
    assert 260 < full < 340  # 3/4 of 400 = 300


def test_irregular_masks_are_brush_strokes():
    torch.manual_seed(1)
    masks = _only("irregular", invert_proba=0.0)(_segm(size=128))
    assert _is_binary(masks) and torch.equal(masks[0], masks[2])
    coverage = masks[0].mean()
    assert 0.005 < coverage < 0.9


def test_draw_strokes_paints_a_capsule_around_each_segment():
    segments = torch.tensor([[10.0, 20.0, 40.0, 20.0, 3.0]])  # horizontal stroke, radius 3
    mask = draw_strokes(segments, 40, 60, torch.empty(0))
    assert mask[20, 10:41].eq(1).all() and mask[17, 25] == 1 and mask[16, 25] == 0
    assert mask[20, 7] == 1 and mask[20, 6] == 0 and mask[23, 40] == 1  # round caps
    assert mask[30:, :].sum() == 0


def test_stroke_sizes_scale_with_the_image():
    torch.manual_seed(0)
    small = torch.cat([sample_strokes(64, 64) for _ in range(30)])
    large = torch.cat([sample_strokes(512, 512) for _ in range(30)])
    assert small[:, 4].max() <= 39 * 64 / 256 / 2 + 0.5 and large[:, 4].min() >= 20 * 512 / 256 / 2 - 0.5
    assert (small[:, [0, 2]] <= 63).all() and (large[:, [1, 3]] <= 511).all()


def test_multiple_boxes_are_separate_non_overlapping_channels():
    torch.manual_seed(0)
    sampler = _only("box", multiple=True, max_watermarks=3, invert_proba=0.0)
    counts = set()
    for _ in range(30):
        masks = sampler(_segm())
        assert masks.shape == (3, 3, 64, 64) and _is_binary(masks)
        assert masks.sum(dim=1).max() <= 1  # no pixel in two watermarks
        filled = (masks[0].sum(dim=(1, 2)) > 0).tolist()
        count = sum(filled)
        assert filled == [True] * count + [False] * (3 - count)  # zero-padded after the drawn boxes
        counts.add(count)
    assert counts == {1, 2, 3}


def test_multiple_segm_uses_the_instances_as_separate_watermarks():
    segm = _segm(batch=3, channels=4)
    masks = _only("segm", multiple=True, max_watermarks=3, invert_proba=1.0)(segm)
    assert torch.equal(masks, segm[:, :3].float())  # first K instances, never inverted
    padded = _only("segm", multiple=True, max_watermarks=5)(segm)
    assert padded.shape == (3, 5, 64, 64) and padded[:, 4].sum() == 0
    assert torch.equal(padded[:, :4], segm.float())


def test_multiple_segm_overlapping_instances_become_exclusive_in_splice_order():
    """COCO instances overlap (a person on a couch): each pixel goes to the last channel claiming it, the watermark
    spliced on top, so no pixel has two decoding targets; what the instances cover together is unchanged."""
    segm = torch.zeros(2, 4, 32, 32, dtype=torch.uint8)
    segm[:, 0, 0:20, 0:20] = 1    # under both others
    segm[:, 1, 10:30, 10:30] = 1
    segm[:, 2, 15:25, 0:32] = 1   # on top
    segm[:, 3, 0:32, 0:32] = 1    # beyond K = 3: not a watermark, so it takes nothing away
    masks = _only("segm", multiple=True, max_watermarks=3)(segm)
    instances = segm[:, :3].float()
    assert masks.shape == (2, 3, 32, 32) and _is_binary(masks)
    assert masks.sum(dim=1).max() == 1                                      # no pixel in two watermarks
    assert torch.equal(masks.amax(dim=1), instances.amax(dim=1))            # same union
    assert bool((masks <= instances).all())                                 # each channel inside its instance
    assert torch.equal(masks[:, 2], instances[:, 2])                        # the top one keeps everything
    assert masks[0, 0, 12, 12] == 0 and masks[0, 1, 12, 12] == 1            # 0 under 1
    assert masks[0, 1, 20, 20] == 0 and masks[0, 0, 5, 5] == 1              # 1 under 2; 0 alone


def test_multiple_mode_full_and_irregular_fill_channel_zero_only():
    masks = _only("full", multiple=True, max_watermarks=4, invert_proba=0.0)(_segm())
    assert masks.shape == (3, 4, 64, 64) and bool((masks[:, 0] == 1).all()) and masks[:, 1:].sum() == 0


def test_per_sample_masks_differ_across_the_batch():
    torch.manual_seed(0)
    for kind in ("irregular", "box"):
        masks = _only(kind, per_sample=True, invert_proba=0.0)(_segm(batch=4))
        assert not torch.equal(masks[0], masks[1]), kind
    mixed = MaskSampler(per_sample=True)(_segm(batch=16))
    assert len({tuple(m.flatten().tolist()) for m in mixed}) > 4


def test_masks_land_on_the_segm_device_and_size():
    segm = torch.zeros(2, 1, 40, 56, dtype=torch.uint8, device="meta")
    for kind in ("irregular", "box", "full", "segm"):
        masks = _only(kind)(segm)
        assert masks.device.type == "meta" and masks.shape == (2, 1, 40, 56)


def test_invalid_settings_name_the_key():
    with pytest.raises(ValueError, match="masks.box"):
        MaskSampler(box=-1)
    with pytest.raises(ValueError, match="all 0"):
        MaskSampler(irregular=0, box=0, full=0, segm=0)
    with pytest.raises(ValueError, match="masks.invert_proba"):
        MaskSampler(invert_proba=1.5)
    with pytest.raises(ValueError, match="masks: expected"):
        MaskSampler()(torch.zeros(3, 64, 64))


def test_representative_masks_are_deterministic_and_complementary():
    first, second = representative_masks(96, 128), representative_masks(96, 128)
    assert set(first) == {"full", "box", "box_inverted", "irregular", "irregular_inverted"}
    for key in first:
        assert first[key].shape == (1, 1, 96, 128) and torch.equal(first[key], second[key]) and _is_binary(first[key])
    assert bool((first["full"] == 1).all())
    assert torch.equal(first["box_inverted"], 1 - first["box"])
    assert torch.equal(first["irregular_inverted"], 1 - first["irregular"])
    for key in ("box", "irregular"):
        assert 0.01 < first[key].mean() < 0.5, key
    torch.manual_seed(123)  # the global RNG does not change them
    assert torch.equal(representative_masks(96, 128)["irregular"], first["irregular"])


def test_non_overlapping_boxes_for_multi_watermark_eval():
    generator = torch.Generator().manual_seed(0)
    boxes = non_overlapping_boxes(5, 256, 256, generator)
    assert boxes.shape == (1, 5, 256, 256) and _is_binary(boxes)
    assert boxes.sum(dim=1).max() <= 1
    assert (boxes.sum(dim=(2, 3)) > 0).all()
    again = non_overlapping_boxes(5, 256, 256, torch.Generator().manual_seed(0))
    assert torch.equal(boxes, again)


def test_reference_multiple_mode_overlapping_instances_and_three_boxes_of_four_channels():
    """The reference's multi-watermark masks: `exclusive: false` keeps overlapping COCO instances as they are (up to
    4 channels), and `max_boxes: 3` draws 1..3 boxes into the 4 channels."""
    segm = torch.zeros(2, 4, 32, 32, dtype=torch.uint8)
    segm[:, 0, 0:20, 0:20] = 1
    segm[:, 1, 10:30, 10:30] = 1
    segm[:, 3, 0:32, 0:32] = 1
    overlapping = _only("segm", multiple=True, max_watermarks=4, exclusive=False, max_boxes=3)(segm)
    assert torch.equal(overlapping, segm.float())                           # unchanged: overlaps kept
    assert overlapping.sum(dim=1).max() == 3                                # a pixel in three watermarks
    torch.manual_seed(0)
    boxes = _only("box", multiple=True, max_watermarks=4, max_boxes=3, invert_proba=0.0)
    counts = {int((boxes(_segm())[0].sum(dim=(1, 2)) > 0).sum()) for _ in range(40)}
    assert counts == {1, 2, 3}                                              # never a 4th box
    with pytest.raises(InvalidSetting, match="max_boxes"):
        MaskSampler(multiple=True, max_watermarks=3, max_boxes=4)
