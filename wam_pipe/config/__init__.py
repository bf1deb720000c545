"""Pipeline files: load -> apply overrides -> resolve -> validate (all errors at once) -> build stages.

    pipeline = compose("pipelines/train.yaml", ["step.optimizer.lr=1e-4"])   # raises ConfigError listing every problem
    stages = build_stages(pipeline.resolved, pipeline.file)                   # cheap constructors, no I/O
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from wam_pipe.config import resolvers  # noqa: F401  (registers ${mul:...} & co. on import)
from wam_pipe.config.build import build_node, build_stages
from wam_pipe.config.overrides import apply_overrides
from wam_pipe.config.pipeline_file import TOP_LEVEL_KEYS, load_yaml
from wam_pipe.config.validate import check, errors_for
from wam_pipe.stages.slots import SLOT_KEYS
from wam_pipe.core.errors import ConfigError

__all__ = ["Pipeline", "compose", "build_stages", "build_node", "TOP_LEVEL_KEYS"]


@dataclasses.dataclass
class Pipeline:
    """A composed and validated pipeline.

    Attributes:
        file: the path as the user gave it (prefix of every error line).
        cfg: the composed config, overrides applied, interpolations kept (what `config.yaml` stores).
        resolved: the same with every interpolation resolved, as plain dicts and lists.
        overrides: the raw command-line overrides.
    """

    file: str
    cfg: DictConfig
    resolved: dict[str, Any]
    overrides: list[str]

    @property
    def name(self) -> str:
        return self.resolved["name"]

    def to_yaml(self, resolved: bool = False) -> str:
        data = self.resolved if resolved else OmegaConf.to_container(self.cfg, resolve=False)
        return OmegaConf.to_yaml(OmegaConf.create(data), sort_keys=False)


def compose(path: str | Path, overrides: list[str] | None = None) -> Pipeline:
    """Load, override and validate a pipeline file; raise ConfigError with every problem found.

    When there are errors, the stages without any are built too (unless a target was refused by the allowlist), so
    their constructor errors come in the same report; a valid pipeline is not built here (see `build_stages`).
    """
    file = str(path)
    overrides = list(overrides or [])
    cfg = load_yaml(path)
    errors = apply_overrides(cfg, overrides, file)
    report = check(cfg, file)
    errors.extend(report.errors)
    if errors:
        if not report.refused:
            errors.extend(_build_errors(report.resolved, file, errors))
        raise ConfigError(errors)
    return Pipeline(file=file, cfg=cfg, resolved=report.resolved, overrides=overrides)


def _build_errors(resolved: dict[str, Any], file: str, errors: list[str]) -> list[str]:
    """Constructor errors of the stages that validation found nothing wrong with."""
    stages = resolved.get("stages")
    if not isinstance(stages, dict):
        return []
    clean = [kind for kind, node in stages.items()
             if kind in SLOT_KEYS and isinstance(node, dict) and "_target_" in node
             and not errors_for(f"stages.{kind}", errors)]  # an unresolved value inside has its error line
    try:
        build_stages(resolved, file, kinds=clean)
    except ConfigError as err:
        return err.errors
    return []
