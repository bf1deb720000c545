"""Multi-watermark evaluation: visible regions, per-region decoding and the full k = 1..K loop."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.augment import non_overlapping_boxes
from wam_pipe.augment.masks import exclusive_in_splice_order
from wam_pipe.eval.multi import decode_per_region, evaluate_multi_batch, multi_table
from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker


def test_later_watermarks_cover_earlier_ones():
    masks = torch.zeros(1, 3, 1, 6)
    masks[0, 0, 0, 0:4] = 1
    masks[0, 1, 0, 2:6] = 1  # covers pixels 2-3 of the first
    masks[0, 2, 0, 5] = 1    # covers pixel 5 of the second
    visible = exclusive_in_splice_order(masks)[0, :, 0]
    assert visible.tolist() == [[1, 1, 0, 0, 0, 0], [0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 1]]


def test_decode_per_region_uses_predicted_pixels_of_each_region():
    bits = torch.zeros(1, 2, 1, 4)
    bits[0, :, 0, 0] = torch.tensor([2.0, -2.0])   # region A, predicted
    bits[0, :, 0, 1] = torch.tensor([-9.0, 9.0])   # region A, not predicted: ignored
    bits[0, :, 0, 2] = torch.tensor([-1.0, -1.0])  # region B, nothing predicted there: whole region used
    det = torch.tensor([[[1.0, -1.0, -1.0, -1.0]]])
    regions = torch.tensor([[[[1.0, 1.0, 0.0, 0.0]], [[0.0, 0.0, 1.0, 0.0]], [[0.0, 0.0, 0.0, 0.0]]]])  # (1, 3, 1, 4)
    decoded, present = decode_per_region(bits, det, regions)
    assert decoded[0].tolist() == [[1.0, 0.0], [0.0, 0.0], [0.0, 0.0]]
    assert present[0].tolist() == [1.0, 1.0, 0.0]


def test_multi_batch_fills_every_row_consistently():
    torch.manual_seed(0)
    model = Watermarker(ConvEmbedder(nbits=4, channels=4, depth=1), ConvExtractor(nbits=4, channels=4, depth=0),
                        img_size=32).eval()
    imgs = torch.randn(3, 3, 32, 32) * 0.5
    segm = torch.zeros(3, 2, 32, 32)
    segm[:, 0, :8, :8] = 1
    segm[:, 1, 16:, 16:] = 1
    msgs = torch.randint(0, 2, (3, 3, 4)).float()
    boxes = non_overlapping_boxes(3, 32, 32, torch.Generator().manual_seed(0))
    table = multi_table(["boxes", "segm"], 3, torch.device("cpu"))
    evaluate_multi_batch(model, table, ["boxes", "segm"], imgs, segm, msgs, boxes, "fp32")
    rows = table.rows("acc")
    assert [(r["source"], r["roll"], r["k"]) for r in rows][:4] == [("boxes", False, 1), ("boxes", False, 2),
                                                                   ("boxes", False, 3), ("boxes", True, 1)]
    assert len(rows) == 12 and all(r["images"] == 3 for r in rows)
    for r in rows:
        for name in ("bit_acc", "bit_acc_first", "miou", "acc"):
            assert 0.0 <= r[name] <= 1.0
    first = rows[0]
    assert first["bit_acc_first"] == pytest.approx(first["bit_acc"])  # k = 1: one message only
    # segm has 2 instances: the third watermark has an empty mask, so k = 3 equals k = 2.
    segm_rows = {(r["roll"], r["k"]): r for r in rows if r["source"] == "segm"}
    assert segm_rows[(False, 3)]["bit_acc"] == pytest.approx(segm_rows[(False, 2)]["bit_acc"])
