"""The data path: COCO -> WebDataset shards (built once), and loaders that stream batches from them.

Build side (`wam-pipe shard build`, the `shard-build` stage):
- `coco_index`: parse the instances JSON once (images in id order, annotations per image, unknown ids reported).
- `imageops`: the deterministic geometry (short-side resize + center crop) and mask resampling (PIL NEAREST).
- `rle`: COCO RLE helpers (pycocotools), with checks on untrusted RLEs.
- `prepare`: one image -> one stored sample (`<key>.jpg` + `<key>.json`), or a skip reason.
- `tar_io`: deterministic, atomic shard writing; a small USTAR reader for pieces of shards.
- `build_state`, `build`: settings, plan, resume state, the parallel build; `manifest`, `manifest_summary`.
- `verify`, `inspect_shards`, `merge`: `shard verify|inspect|merge`.
- `synth`, `synth_shapes`: `wam-pipe data synth`, a synthetic COCO set.

Load side (the `load` stage):
- `plan`: which samples each (rank, worker) reads per epoch (exact coverage, equal batch counts).
- `stream`: the per-worker WebDataset pipeline (shuffle encoded bytes -> decode -> batch) and the DataLoader.
- `webdataset_loader` (shards), `per_file` (COCO files): the two sources; `decode`, `mask_select`: samples -> tensors.

See docs/data.md for the sample format, the manifest and the loader's guarantees.
"""
