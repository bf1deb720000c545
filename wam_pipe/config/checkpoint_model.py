"""Rebuild a `Watermarker` from a checkpoint file, safely.

A checkpoint carries its pipeline as YAML text (`config`). That text is untrusted input: it names callables. So the
model part (`stages.step.{embedder, extractor, jnd, scaling_w, scaling_i, img_size}`) is parsed with a safe YAML
loader, refused if it holds interpolations, and passed through the same validation as a pipeline file, with the
default allowlist plus only the patterns the *caller* trusts (never the checkpoint's own `allow_targets`). Only then
is it built, and the weights are loaded with `weights_only=True` and shape checks naming the mismatched module.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml

from wam_pipe.core import safe_yaml
from wam_pipe.core.errors import ConfigError, UserError
from wam_pipe.config import build_node
from wam_pipe.config.validate import validate
from wam_pipe.core.checkpoint import load_model_weights
from wam_pipe.models.reference_layout import load_model_checkpoint

MODEL_KEYS = ("embedder", "extractor", "jnd", "scaling_w", "scaling_i", "img_size")
WATERMARKER_TARGET = "wam_pipe.models.Watermarker"
MODEL_PATH = "stages.step"  # where the model node sits in the checkpoint's pipeline, and so in error lines


@dataclasses.dataclass
class LoadedModel:
    """A model rebuilt from a checkpoint, on its device, in eval mode."""

    model: Any  # wam_pipe.models.Watermarker
    path: Path
    epoch: int | None
    step: int | None

    @property
    def nbits(self) -> int:
        return int(self.model.nbits)

    @property
    def img_size(self) -> int:
        return int(self.model.img_size)


def _contains_interpolation(value: Any) -> bool:
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, dict):
        return any(_contains_interpolation(v) for v in value.values())
    if isinstance(value, list):
        return any(_contains_interpolation(v) for v in value)
    return False


def model_node(config_text: Any, source: str) -> dict[str, Any]:
    """The Watermarker `_target_` node described by a checkpoint's pipeline YAML (not yet validated)."""
    if not isinstance(config_text, str) or not config_text.strip():
        raise UserError(f"{source}: the checkpoint has no pipeline config, so its model cannot be rebuilt; use a "
                        "checkpoint written by wam-pipe training")
    try:
        config = safe_yaml.safe_load(config_text, f"{source}: the checkpoint's pipeline config")
    except yaml.YAMLError as err:
        raise UserError(f"{source}: the checkpoint's pipeline config is not valid YAML ({err})") from err
    stages = config.get("stages") if isinstance(config, dict) else None
    step = stages.get("step") if isinstance(stages, dict) else None
    if not isinstance(step, dict):
        raise UserError(f"{source}: the checkpoint's pipeline has no stages.step, so it names no model")
    node = {"_target_": WATERMARKER_TARGET, **{k: step[k] for k in MODEL_KEYS if k in step}}
    if _contains_interpolation(node):
        raise UserError(f"{source}: the checkpoint's model config contains '${{...}}' interpolations; a checkpoint "
                        "stores a resolved config, so this file was edited or not written by wam-pipe")
    for key, value in _sized_values(node, MODEL_PATH):
        name = key.rsplit(".", 1)[-1]
        low, high = SIZE_BOUNDS[name]
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise UserError(f"{source}: the checkpoint's {key} is {value!r}, outside {low}..{high}; this file was "
                            "edited or not written by wam-pipe, so nothing is built from it")
    return node


# What a checkpoint may claim about sizes: building a model of `img_size: 100000` would allocate ~120 GB.
SIZE_BOUNDS = {"img_size": (8, 4096), "nbits": (0, 1024)}


def _sized_values(node: Any, path: str) -> list[tuple[str, Any]]:
    """(dotted key, value) of every `img_size`/`nbits` in the model node, nested components included."""
    found: list[tuple[str, Any]] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key in SIZE_BOUNDS:
                found.append((f"{path}.{key}", value))
            found.extend(_sized_values(value, f"{path}.{key}"))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found.extend(_sized_values(value, f"{path}.{i}"))
    return found


def build_model(node: dict[str, Any], source: str, allow_targets: Sequence[str] = ()) -> Any:
    """Validate `node` (allowlist, signatures, types) as a pipeline's `stages.step`, then build it."""
    from omegaconf import OmegaConf

    # Validated under the key it had in the checkpoint, so error lines name stages.step.<key> as the user knows it.
    pipeline = {"version": 1, "name": "checkpoint-model", "allow_targets": list(allow_targets),
                "stages": {"step": node}}
    resolved, errors = validate(OmegaConf.create(pipeline), source)
    if errors:
        hint = (" (a custom component needs its import path trusted: --allow-target PATTERN, or eval.allow_targets)"
                if any("is not allowed" in e for e in errors) else "")
        raise ConfigError([f"{errors[0]}{hint}", *errors[1:]])
    return build_node(resolved["stages"]["step"], MODEL_PATH, source)


def load_watermarker(path: str | Path, device: torch.device | str = "cpu",
                     allow_targets: Sequence[str] = ()) -> LoadedModel:
    """Read a checkpoint (weights only), rebuild its `Watermarker`, load the weights, move it to `device`.

    A reference checkpoint (the released `wam_mit.pth` etc., recognised by its layout) is converted on load, with
    the `params.json` beside it or else the released configuration; one line on stderr says so.

    Args:
        path: a `.pt` file written by wam-pipe training or `wam-pipe import-wam`, or a reference checkpoint.
        device: where the model runs.
        allow_targets: extra import patterns to trust in the checkpoint's config (beyond the default
            allowlist of `wam_pipe.core.targets`), e.g. `["my_lab.*"]` for a model with custom components.
    """
    path = Path(path)
    checkpoint = load_model_checkpoint(path, map_location="cpu")
    model = build_model(model_node(checkpoint.get("config"), str(path)), str(path), allow_targets)
    load_model_weights(model, checkpoint["model"], path)
    model.to(device).eval()
    epoch, step = checkpoint.get("epoch"), checkpoint.get("step")
    return LoadedModel(model, path, int(epoch) if epoch is not None else None, int(step) if step is not None else None)
