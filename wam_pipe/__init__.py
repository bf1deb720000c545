"""wam-pipe: declarative, fast training pipelines for Watermark-Anything-style models.

A pipeline YAML names five stage kinds (shard-build, load, augment, step, eval); the runner validates the whole
file, instantiates every stage, writes a run directory and runs one explicit training loop.
"""

import importlib

__version__ = "0.1.0"

# `import wam_pipe` stays cheap (no torch): the Python API is imported on first use of `wam_pipe.load` /
# `wam_pipe.Watermarker` (wam_pipe/inference/api.py).
_API = {"load", "Watermarker", "EmbedResult", "DetectResult"}


def __getattr__(name: str):
    if name in _API:
        return getattr(importlib.import_module("wam_pipe.inference.api"), name)
    raise AttributeError(f"module 'wam_pipe' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
