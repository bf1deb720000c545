"""The five stage kinds a pipeline names under `stages:` (`_target_: wam_pipe.stages.<Name>`).

| key          | class        | job |
|--------------|--------------|-----|
| shard-build  | ShardBuild   | pack COCO images + instance masks into WebDataset shards (no-op when up to date) |
| load         | Load         | stream batches of uint8 images and instance masks, split by rank and worker |
| augment      | Augment      | sample watermark masks and apply one augmentation per batch, on the training device |
| step         | Step         | models, losses, optimizers: one training step (embed, augment, extract, update) |
| eval         | Eval         | robustness grid of masks x augmentations, metrics.json, pictures |

Imported lazily so that `import wam_pipe.stages` stays cheap and each stage module loads only when named.
"""

from __future__ import annotations

import importlib
from typing import Any

_STAGE_MODULES = {
    "ShardBuild": "wam_pipe.stages.shard_build",
    "Load": "wam_pipe.stages.load",
    "Augment": "wam_pipe.stages.augment",
    "Step": "wam_pipe.stages.step",
    "Eval": "wam_pipe.stages.eval",
}

# The pipeline key each stage class belongs under.
STAGE_KEYS = {
    "shard-build": "ShardBuild",
    "load": "Load",
    "augment": "Augment",
    "step": "Step",
    "eval": "Eval",
}

__all__ = list(_STAGE_MODULES)


def __getattr__(name: str) -> Any:
    if name in _STAGE_MODULES:
        return getattr(importlib.import_module(_STAGE_MODULES[name]), name)
    raise AttributeError(f"module 'wam_pipe.stages' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
