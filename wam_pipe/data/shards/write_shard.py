"""Write one planned shard from its images' outcomes (shared by the COCO/folder build and the SA-1B tar build)."""

from __future__ import annotations

import os
import signal
from collections import Counter
from typing import Any, Iterator

from wam_pipe.data.shards.build_state import BuildConfig, PlannedShard
from wam_pipe.data.shards.prepare import encode_sample
from wam_pipe.data.shards.tar_io import ShardWriter


def write_shard(config: BuildConfig, shard: PlannedShard, outcomes: Iterator, bar: Any = None,
                kill_now: bool = False) -> dict:
    """Write `shard` atomically; returns its done-marker (counts, sha256, skipped images).

    `outcomes` yields, for each image of the shard in order, its tar members (with `__stats__`) or a
    `(kind, reason)` tuple when it is skipped. `kill_now` is the crash test's hook (SIGKILL after one sample).
    """
    skipped, instances, empty, categories = [], 0, 0, Counter()
    with ShardWriter(config.out / shard.name) as writer:
        for record in shard.images:
            outcome = next(outcomes)
            if bar is not None:
                bar.update(1)
            if isinstance(outcome, tuple):  # (kind, reason): skipped
                skipped.append({"image_id": record.id, "file_name": record.file_name, "kind": outcome[0],
                                "reason": outcome[1]})
                continue
            stats = outcome.pop("__stats__")
            writer.write(outcome)
            instances += stats["instances"]
            empty += stats["instances"] == 0
            categories.update({str(k): v for k, v in stats["categories"].items()})
            if kill_now:
                writer.flush()
                os.kill(os.getpid(), signal.SIGKILL)
    info = writer.info
    assert info is not None
    return {**info.as_dict(), "skipped": skipped, "instances": instances,
            "images_without_annotations": empty, "category_counts": dict(sorted(categories.items()))}


def sample_outcome(sample: Any, image_format: str, quality: int) -> dict[str, Any]:
    """A prepared sample -> its tar members plus the `__stats__` the marker counts."""
    encoded = encode_sample(sample, image_format, quality)
    categories = Counter(ann["category_id"] for ann in sample.annotations)
    encoded["__stats__"] = {"instances": len(sample.annotations), "categories": dict(categories)}
    return encoded
