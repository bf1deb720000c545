"""wam-pipe: declarative, fast training pipelines for Watermark-Anything-style models.

A pipeline YAML names five stage kinds (shard-build, load, augment, step, eval); the runner validates the whole
file, instantiates every stage, writes a run directory and runs one explicit training loop.
"""

__version__ = "0.1.0"
