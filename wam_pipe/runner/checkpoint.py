"""Checkpoints: written atomically (temp name, fsync, rename), read with `weights_only=True` (no pickled code).

Layout of a training checkpoint: `{format, model, optimizer, scheduler?, scaler?, discriminator?,
disc_optimizer?, epoch, step, rng, config}`; `config` is the resolved pipeline as YAML text, so a checkpoint alone
is enough to rebuild its model (`wam-pipe embed/detect --checkpoint`).
"""

from __future__ import annotations

import json
import os
import random
import re
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
import yaml

from wam_pipe.core.errors import UserError
from wam_pipe.models.reference_layout import (RELEASED, ReferenceLayoutError, ReferenceParams, convert_for_model,
                                              convert_reference_state, expected_layout, find_reference_state)

FORMAT = 1


def save_atomic(path: str | Path, obj: Any) -> None:
    """`torch.save(obj)` to a temp name in the same folder, fsync, rename: a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    save_atomic(path, {"format": FORMAT, **payload})


def _why_unreadable(path: Path, err: Exception) -> str:
    """Our own words for a failed `torch.load`: torch's text suggests `weights_only=False`, i.e. running the file's
    pickled code, which is the wrong advice for a damaged or foreign file."""
    if isinstance(err, PermissionError):
        return "permission denied; check the file's permissions"
    try:
        with open(path, "rb") as f:
            head = f.read(4)
    except OSError:
        head = b""
    if not head:
        return "the file is empty (an interrupted save or copy?); use another checkpoint"
    foreign = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(err))
    if foreign:
        return (f"it stores Python objects ({foreign.group(1)}) that safe loading refuses, so wam-pipe did not write "
                "it; give a .pt file written by wam-pipe training")
    if head == b"PK\x03\x04":  # torch.save's zip archive
        return "the archive is truncated or damaged (an interrupted save or copy?); use another checkpoint"
    return "this is not a PyTorch checkpoint file; give a .pt file written by wam-pipe training"


def read_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu") -> Any:
    """`torch.load(weights_only=True)` of any checkpoint file (ours or the reference's); never runs pickled code.
    A missing or unreadable file is a one-line UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint; give the path of a .pt file written by wam-pipe")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols of foreign files before failing; the error below says it all.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        raise UserError(f"{path}: not a readable wam-pipe checkpoint ({type(err).__name__}); "
                        f"{_why_unreadable(path, err)}") from err


def _is_ours(data: Any) -> bool:
    return isinstance(data, dict) and "model" in data and "config" in data


def _reference_state(data: Any) -> Optional[dict[str, Any]]:
    """The reference-layout state_dict in `data`, unless `data` is one of our checkpoints."""
    return None if _is_ours(data) else find_reference_state(data)


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read one of our checkpoints safely; a missing, unreadable or foreign file is a one-line UserError."""
    data = read_checkpoint_file(path, map_location)
    if _reference_state(data) is not None:
        raise UserError(f"{path}: a Watermark Anything reference checkpoint (weights only), which cannot resume a "
                        "run; use it as step.init_from, or import it once: wam-pipe import-wam")
    if not isinstance(data, dict) or "model" not in data:
        raise UserError(f"{path}: not a wam-pipe checkpoint (no 'model' entry)")
    return data


def _announce(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def params_beside(path: Path) -> tuple[ReferenceParams, str]:
    """The reference's configuration for a checkpoint: `params.json` in its folder (the reference repository keeps
    `checkpoints/params.json` next to the weights), else the released configuration."""
    params_file = path.parent / "params.json"
    if params_file.is_file():
        return read_reference_params(params_file), f"configuration from {params_file}"
    return RELEASED, "the released configuration"


def read_reference_params(path: str | Path) -> ReferenceParams:
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not a readable params.json ({err})") from err
    return ReferenceParams.from_json(data, str(path))


def _layout_problem(data: Any, params: ReferenceParams) -> str:
    """Why `data` is not a reference checkpoint, naming its first unexpected/missing keys."""
    inner = data
    if isinstance(data, dict) and not any(isinstance(v, torch.Tensor) for v in data.values()):
        inner = next((data[k] for k in ("model", "state_dict") if isinstance(data.get(k), dict)), data)
    if not isinstance(inner, dict) or not inner:
        return f"it holds a {type(data).__name__}, not a state_dict of tensors"
    _, shapes = expected_layout(params)
    unexpected = [str(k) for k in inner if k not in shapes]
    missing = [k for k in shapes if k not in inner]
    return (f"unexpected keys {', '.join(unexpected[:3])}" + (f" (+{len(unexpected) - 3} more)" if len(unexpected) > 3
                                                               else "")
            + (f"; missing keys {', '.join(missing[:3])}" if missing else ""))


def reference_checkpoint(state: dict[str, Any], params: ReferenceParams, source: str | Path) -> dict[str, Any]:
    """One of our checkpoints (weights in our names + the config that rebuilds the model) from a reference
    state_dict, after checking every key and shape against `params`."""
    model = convert_reference_state(state, params, str(source))
    config = {"version": 1, "name": "imported-wam",
              "stages": {"step": {k: v for k, v in params.model_config().items() if v is not None}}}
    return {"format": FORMAT, "model": model, "config": yaml.safe_dump(config, sort_keys=False), "epoch": None,
            "step": None, "imported_from": {"file": Path(source).name, "params": params.to_json()}}


def import_reference_checkpoint(path: str | Path, params: Optional[ReferenceParams] = None) -> dict[str, Any]:
    """Read a reference checkpoint file (bare state_dict, or one under `model`/`state_dict`) and convert it."""
    path = Path(path)
    params = params or RELEASED
    data = read_checkpoint_file(path)
    state = _reference_state(data)
    if state is None:
        if _is_ours(data):
            raise UserError(f"{path}: already a wam-pipe checkpoint; use it as it is")
        raise ReferenceLayoutError(f"{path}: not a Watermark Anything reference checkpoint: {_layout_problem(data, params)}")
    return reference_checkpoint(state, params, path)


def load_model_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """What embed/detect/calibrate/eval read: one of our checkpoints, or a reference checkpoint converted on load
    (recognised by its layout; one line on stderr says so)."""
    path = Path(path)
    data = read_checkpoint_file(path, map_location)
    state = _reference_state(data)
    if state is not None:
        params, where = params_beside(path)
        _announce(f"{path}: a Watermark Anything reference checkpoint, read with {where} ({params.describe()}); "
                  "`wam-pipe import-wam` converts it once")
        return reference_checkpoint(state, params, path)
    if not isinstance(data, dict) or "model" not in data:
        raise UserError(f"{path}: not a wam-pipe checkpoint (no 'model' entry)")
    return data


def load_init_weights(path: str | Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights `step.init_from` loads into `model`: a checkpoint's `model`, or a reference checkpoint renamed
    onto `model`'s structure (one line on stderr says so)."""
    path = Path(path)
    data = read_checkpoint_file(path)
    state = _reference_state(data)
    if state is not None:
        _announce(f"{path}: a Watermark Anything reference checkpoint; initialising from its weights")
        return convert_for_model(state, model, str(path))
    if not isinstance(data, dict) or "model" not in data:
        raise UserError(f"{path}: not a wam-pipe checkpoint (no 'model' entry)")
    return data["model"]


def _module_of(key: str) -> str:
    parts = key.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 else parts[0]


def load_model_weights(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str | Path) -> None:
    """Load `state` into `model`, refusing (UserError) with the mismatched module named when shapes do not fit."""
    own = model.state_dict()
    buffers = {name for name, _ in model.named_buffers()}
    # JND kernels are constants rebuilt by the constructor: a pre-training checkpoint (no JND) initialises a
    # fine-tuning model (with JND), and the other way round.
    state = {k: v for k, v in state.items() if k in own or not k.startswith("jnd.")}
    problems = []
    for key, value in state.items():
        if key not in own:
            problems.append(f"unexpected weight {key}")
        elif tuple(own[key].shape) != tuple(value.shape):
            problems.append(f"module {_module_of(key)}: {key} has shape {tuple(value.shape)} in the checkpoint "
                            f"but {tuple(own[key].shape)} in this config")
    missing = [k for k in own if k not in state and k not in buffers]
    if missing:
        problems.append(f"module {_module_of(missing[0])}: {len(missing)} weights missing from the checkpoint "
                        f"(first: {missing[0]})")
    if problems:
        raise UserError(f"{source}: checkpoint does not fit this model: {problems[0]}"
                        + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
                        + "; check embedder/extractor presets and nbits")
    model.load_state_dict(state, strict=False)


def rng_state() -> dict[str, Any]:
    """RNG states of this process as plain tensors/lists (loadable with weights_only=True)."""
    np_state = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "python": random.getstate(),
        "numpy": [np_state[0], np_state[1].tolist(), int(np_state[2]), int(np_state[3]), float(np_state[4])],
    }


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    random.setstate(tuple(v if not isinstance(v, list) else tuple(v) for v in state["python"]))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
