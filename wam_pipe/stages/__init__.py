"""The stages a pipeline names in its five slots under `stages:` (`_target_: wam_pipe.stages.<Name>`).

The slots (keys, fields, classes, jobs) and the typed `Stages` object are in `wam_pipe.stages.slots`, the one place
that names them. Stage classes are imported lazily so that `import wam_pipe.stages` stays cheap and each stage
module loads only when named.
"""

from __future__ import annotations

import importlib
from typing import Any

from wam_pipe.stages.slots import SLOTS

# Each slot's class lives in the module named like its field: `Stages.shard_build` -> `stages/shard_build.py`.
_STAGE_MODULES = {slot.class_name: f"wam_pipe.stages.{slot.field}" for slot in SLOTS}

__all__ = list(_STAGE_MODULES)


def __getattr__(name: str) -> Any:
    if name in _STAGE_MODULES:
        return getattr(importlib.import_module(_STAGE_MODULES[name]), name)
    raise AttributeError(f"module 'wam_pipe.stages' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + __all__)
