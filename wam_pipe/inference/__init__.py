"""Using a trained checkpoint on real images (`wam-pipe embed` / `detect`).

| module | job |
|---|---|
| `loading` | rebuild a `Watermarker` from a checkpoint: untrusted config validated against the allowlist first |
| `detect` | full-resolution embed, and detection / decoding of one watermark |
| `multi` | several messages in one image: bounded-time DBSCAN on per-pixel bit vectors |
| `image_io` | images, masks, label maps and messages in and out, with one-line errors |
"""
