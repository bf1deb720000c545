"""Watermarking models: embedders, extractors, JND attenuation, the PatchGAN discriminator and `Watermarker`.

Every name in `__all__` can be named in a pipeline file, e.g. `_target_: wam_pipe.models.vae_small` (the component
catalogue lists exactly `__all__`). `count_training_flops` is importable from here too, but it is a helper for MFU
reports, not a component; so are the `Embedder` / `Extractor` protocols and the `EMBEDDERS` / `EXTRACTORS`
registries that `@register_model` fills (`wam_pipe.models.protocols`).

Adding a model: a builder decorated with `@register_model("embedder")` (or "extractor") in `embedders.py` /
`extractors.py`, its name in this file's imports and `__all__`, then `wam-pipe schema` to regenerate
schemas/pipeline.schema.json. The contract test covers it without being edited.

| name | what |
|---|---|
| `VAEEmbedder`, `vae_small`, `vae_big` | reference VAE-style embedder and its presets (1.11M / 5.64M params) |
| `ConvEmbedder` | small fast conv embedder for CPU runs |
| `SamExtractor`, `sam_tiny`, `sam_small`, `sam_base` | reference ViT + pixel decoder (6.03M / 23.58M / 93.31M) |
| `ConvExtractor` | small fast U-Net-ish conv extractor for CPU runs |
| `JND`, `jnd_1_1`, `jnd_3_3`, `jnd_1_3`, `jnd_1_3_blue`, `jnd_3_1` | just-noticeable-difference attenuation |
| `PatchDiscriminator` | PatchGAN discriminator for the adversarial loss |
| `Watermarker` | embedder + extractor (+ JND) at a fixed processing size; the checkpoint's `model` |
"""

from __future__ import annotations

from wam_pipe.models.discriminator import PatchDiscriminator
from wam_pipe.models.embedders import ConvEmbedder, VAEEmbedder, vae_big, vae_small
from wam_pipe.models.extractors import ConvExtractor, SamExtractor, sam_base, sam_small, sam_tiny
from wam_pipe.models.flops import count_training_flops
from wam_pipe.models.protocols import EMBEDDERS, EXTRACTORS, Embedder, Extractor  # helpers, not components
from wam_pipe.models.protocols import register_model  # helper
from wam_pipe.models.jnd import JND, jnd_1_1, jnd_1_3, jnd_1_3_blue, jnd_3_1, jnd_3_3
from wam_pipe.models.watermarker import Watermarker

__all__ = [
    "ConvEmbedder",
    "ConvExtractor",
    "JND",
    "PatchDiscriminator",
    "SamExtractor",
    "VAEEmbedder",
    "Watermarker",
    "jnd_1_1",
    "jnd_1_3",
    "jnd_1_3_blue",
    "jnd_3_1",
    "jnd_3_3",
    "sam_base",
    "sam_small",
    "sam_tiny",
    "vae_big",
    "vae_small",
]
