"""Multiple-watermark evaluation: k = 1..K messages spliced into one image, detected after each addition.

As the reference's multi-watermark evaluation: for each mask source (`boxes`: K non-overlapping boxes shared by
the batch; `segm`: the image's first K COCO instances) and roll off/on (with roll, image i receives the watermarked
region of image i + 1, i.e. a watermark moved between images), the k-th watermark (its own message) is spliced
over the previous ones and the extractor runs on the result, without augmentation.

Row metrics: `bit_acc_first` (first message, on its visible pixels), `bit_acc` (all k messages, each on its visible
pixels), `msg_bit_acc` / `word_acc` (each message decoded from the bit logits averaged over its visible region that
is also predicted watermarked), detection `acc`, `iou_0`, `iou_1`, `miou` against the union of the k masks.
"""

from __future__ import annotations

from typing import Any

import torch

from wam_pipe.augment.masks import exclusive_in_splice_order
from wam_pipe.eval.accumulate import MetricTable
from wam_pipe.eval.single import to_prediction_size
from wam_pipe.core.metrics import bit_accuracy_counts, detection_stats
from wam_pipe.core.precision import autocast_for

MULTI_SOURCES = ("boxes", "segm")
MULTI_METRICS = ("bit_acc_first", "bit_acc", "msg_bit_acc", "word_acc", "acc", "iou_0", "iou_1", "miou")


def multi_table(sources: list[str], max_watermarks: int, device: torch.device) -> MetricTable:
    cells = [{"source": source, "roll": roll, "k": k} for source in sources for roll in (False, True)
             for k in range(1, max_watermarks + 1)]
    return MetricTable(cells, MULTI_METRICS, device)


def decode_per_region(bits: torch.Tensor, det: torch.Tensor,
                      regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One decoded message per (image, region): bit logits averaged over the region's predicted-watermarked pixels
    (the whole region when none is predicted), thresholded at 0.

    Args:
        bits: (B, nbits, h, w). det: (B, h, w). regions: (B, k, h, w) 0/1.
    Returns:
        decoded (B, k, nbits) 0/1 and non-empty (B, k) 0/1 (regions with at least one pixel).
    """
    predicted = (det > 0).float()[:, None]  # (B, 1, h, w)
    weight = regions * predicted  # (B, k, h, w)
    empty = weight.flatten(2).sum(-1, keepdim=True)[..., None] == 0  # (B, k, 1, 1)
    weight = torch.where(empty, regions, weight)
    norm = weight.flatten(2).sum(-1).clamp_min(1)  # (B, k)
    mean_logits = torch.einsum("bkhw,bnhw->bkn", weight, bits) / norm[..., None]  # (B, k, nbits)
    return (mean_logits > 0).float(), (regions.flatten(2).amax(-1) > 0).float()


def _add_step(table: MetricTable, cell: int, preds: torch.Tensor, msgs: torch.Tensor, masks: torch.Tensor) -> None:
    """Metrics after the k-th splice. preds (B, 1+nbits, h, w); msgs (B, k, nbits); masks (B, k, h, w) visible."""
    bits, det = preds[:, 1:], preds[:, 0]
    table.add(cell, "bit_acc_first", *bit_accuracy_counts(bits, msgs[:, :1], masks[:, :1]))
    table.add(cell, "bit_acc", *bit_accuracy_counts(bits, msgs, masks))
    decoded, present = decode_per_region(bits, det, masks)
    agree = (decoded == msgs.float()).float()  # (B, k, nbits)
    table.add(cell, "msg_bit_acc", (agree.mean(-1) * present).sum(), present.sum())
    table.add(cell, "word_acc", (agree.amin(-1) * present).sum(), present.sum())
    stats = detection_stats(det, masks.amax(dim=1))
    for name in ("acc", "iou_0", "iou_1", "miou"):
        table.add_per_image(cell, name, stats[name])


def source_masks(source: str, segm: torch.Tensor, boxes: torch.Tensor, max_watermarks: int) -> torch.Tensor:
    """The K masks `(B, K, H, W)` float of a source for a batch whose loader masks are `segm` `(B, Ks, H, W)`."""
    batch = segm.shape[0]
    if source == "boxes":
        return boxes.expand(batch, -1, -1, -1)  # (B, K, H, W)
    instances = (segm[:, :max_watermarks] > 0).float()
    missing = max_watermarks - instances.shape[1]
    if missing > 0:
        instances = torch.cat([instances, instances.new_zeros(batch, missing, *instances.shape[-2:])], dim=1)
    return instances  # (B, K, H, W)


@torch.no_grad()
def evaluate_multi_batch(model: Any, table: MetricTable, sources: list[str], imgs: torch.Tensor, segm: torch.Tensor,
                         msgs: torch.Tensor, boxes: torch.Tensor, precision: str) -> None:
    """Add one batch to the multi-watermark `table`.

    Args:
        model: a `Watermarker` in eval mode. imgs: (B, 3, H, W) model space. segm: (B, Ks, H, W) loader masks.
        msgs: (B, K, nbits) one message per watermark. boxes: (1, K, H, W) non-overlapping boxes.
        precision: autocast mode.
    """
    device, max_watermarks = imgs.device, msgs.shape[1]
    with autocast_for(device, precision):
        # Each watermark's embedding comes from the original cover, as in training; computed once for all sources.
        marked = [model.embed(imgs, msgs[:, k]).float() for k in range(max_watermarks)]  # K x (B, 3, H, W)
    cell = 0
    for source in sources:
        masks = source_masks(source, segm, boxes, max_watermarks)
        for roll in (False, True):
            shift = (lambda t: t.roll(-1, dims=0)) if roll else (lambda t: t)
            spliced = imgs
            for k in range(max_watermarks):
                mask = shift(masks[:, k : k + 1])
                spliced = spliced * (1 - mask) + shift(marked[k]) * mask
                with autocast_for(device, precision):
                    preds = model.detect(spliced).float()  # (B, 1 + nbits, h, w)
                # The pixels that still carry each message: later splices cover earlier ones.
                visible = to_prediction_size(exclusive_in_splice_order(shift(masks[:, : k + 1])), preds.shape[-2:])
                _add_step(table, cell, preds, shift(msgs[:, : k + 1]), visible)
                cell += 1
