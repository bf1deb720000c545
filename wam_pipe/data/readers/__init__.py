"""Read side of the data path: shards (or COCO files) -> batches, split exactly by rank and worker."""
