"""Using a trained checkpoint on real images (`wam-pipe embed` / `detect`).

| module | job |
|---|---|
| `api` | the Python API: `load(path)` -> `Watermarker` with `embed` / `detect` on PIL images or tensors (docs/api.md) |
| `scan` | `detect --images`: a folder or glob through a DataLoader, one JSON line per image |
| `export` | `wam-pipe export`: safetensors weights + JSON config, and loading them without pickle |
| `loading` | rebuild a `Watermarker` from a checkpoint: untrusted config validated against the allowlist first |
| `detect` | full-resolution embed, and detection / decoding of one watermark |
| `multi` | several messages in one image: bounded-time DBSCAN on per-pixel bit vectors |
| `image_io` | images, masks, label maps and messages in and out, with one-line errors |
"""
