"""The data path: COCO -> WebDataset shards (built once), and readers that stream batches from them.

Shared by both sides:
- `coco_index`: parse the instances JSON once (images in id order, annotations per image, unknown ids reported).
- `imageops`: the deterministic geometry (short-side resize + center crop) and mask resampling (PIL NEAREST).
- `rle`: COCO RLE helpers (pycocotools), with checks on untrusted RLEs.
- `synth`, `synth_shapes`: `wam-pipe data synth`, a synthetic COCO set.

Write side, `data.shards` (`wam-pipe shard build|verify|inspect|merge`, the `shard-build` stage):
- `prepare`: one image -> one stored sample (`<key>.jpg` + `<key>.json`), or a skip reason.
- `tar_io`: deterministic, atomic shard writing; a small USTAR reader for pieces of shards.
- `build_state`, `build`: settings, plan, resume state, the parallel build; `fingerprint` of the image folder.
- `manifest`, `manifest_summary`, `published`: the manifest written last, and what a reader may trust of it.
- `verify`, `inspect_shards`, `merge`: `shard verify|inspect|merge`.

Read side, `data.readers` (the `load` stage, eval data):
- `epoch_plan`: which samples each (rank, worker) reads per epoch (exact coverage, equal batch counts).
- `stream`: the per-worker WebDataset pipeline (shuffle encoded bytes -> decode -> batch) and the DataLoader.
- `shard_source` (shards), `per_file` (COCO files): the two sources; `decode`, `mask_select`: samples -> tensors.
- `batch_ring`: shared-memory batch slots between workers and the main process.

See docs/data.md for the sample format, the manifest and the loader's guarantees.
"""
