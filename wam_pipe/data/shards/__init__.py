"""Write side of the data path: COCO images -> WebDataset shards + manifest (see `wam_pipe.data`)."""
