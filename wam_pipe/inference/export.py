"""Model files for sharing: the weights as safetensors plus a JSON config, readable without pickle.

`wam-pipe export CKPT --format safetensors --out DIR` writes:
- `DIR/model.safetensors`: the `Watermarker`'s state dict (tensors only; the format cannot hold code);
- `DIR/wam_pipe.json`: `{"format": "wam-pipe/safetensors", "version": 1, "model": <the Watermarker node>, "nbits",
  "img_size", "source": {"checkpoint", "epoch", "step"}}`; the model node is the `_target_` tree of the
  checkpoint's `stages.step` model keys.

Reading (`wam_pipe.load(DIR)` or `wam_pipe.load(DIR / "model.safetensors")`) parses the JSON, validates the node
exactly as a checkpoint's config is validated (allowlist, signatures; `loading.build_model`), builds it, and loads
the tensors with `safetensors.torch.load_file` and the shape checks of checkpoints. No `torch.load`, no pickle.
Both files are written to temporary names and renamed, the config last: a folder with a config is complete.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from wam_pipe.core.errors import UserError
from wam_pipe.config.checkpoint_model import LoadedModel, build_model, model_node
from wam_pipe.core.checkpoint import load_model_weights
from wam_pipe.models.reference_layout import load_model_checkpoint

FORMAT = "wam-pipe/safetensors"
VERSION = 1
CONFIG_NAME = "wam_pipe.json"
WEIGHTS_NAME = "model.safetensors"


def _folder(path: str | Path) -> Path:
    path = Path(path)
    return path.parent if path.suffix == ".safetensors" or path.name == CONFIG_NAME else path


def is_export(path: str | Path) -> bool:
    """An exported folder, its weights file or its config (else: a checkpoint)."""
    path = Path(path)
    return path.suffix == ".safetensors" or path.name == CONFIG_NAME or (path.is_dir() and (path / CONFIG_NAME).exists())


def export_safetensors(checkpoint: str | Path, out: str | Path, allow_targets: Sequence[str] = ()) -> Path:
    """Write `out/model.safetensors` and `out/wam_pipe.json` from a checkpoint; return `out`.

    The checkpoint is one of ours or a reference `.pth` (converted on load, as `wam-pipe detect` reads it). The
    model is rebuilt and its weights loaded first (the same checks as `wam-pipe detect`), so only a checkpoint that
    loads is exported; the weights written are the rebuilt model's state dict.
    """
    checkpoint, out = Path(checkpoint), Path(out)
    data = load_model_checkpoint(checkpoint, map_location="cpu")
    node = model_node(data.get("config"), str(checkpoint))
    model = build_model(node, str(checkpoint), allow_targets)
    load_model_weights(model, data["model"], checkpoint)
    # safetensors refuses tensors that share storage: each one is written from its own contiguous copy.
    tensors = {key: value.detach().contiguous().clone() for key, value in model.state_dict().items()}
    epoch, step = data.get("epoch"), data.get("step")
    config = {"format": FORMAT, "version": VERSION, "model": node, "nbits": int(model.nbits),
              "img_size": int(model.img_size),
              "source": {"checkpoint": checkpoint.name, "epoch": None if epoch is None else int(epoch),
                         "step": None if step is None else int(step)}}
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a folder; give a folder for --out")
    out.mkdir(parents=True, exist_ok=True)
    weights_tmp, config_tmp = out / f".{WEIGHTS_NAME}.tmp", out / f".{CONFIG_NAME}.tmp"
    save_file(tensors, str(weights_tmp), metadata={"format": FORMAT})
    os.replace(weights_tmp, out / WEIGHTS_NAME)
    config_tmp.write_text(json.dumps(config, indent=1) + "\n")
    os.replace(config_tmp, out / CONFIG_NAME)
    return out


def _read_config(folder: Path) -> dict[str, Any]:
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise UserError(f"{path}: missing; an exported model is a folder with {CONFIG_NAME} and {WEIGHTS_NAME} "
                        "(written by wam-pipe export)")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise UserError(f"{path}: not readable JSON ({err}); re-export the model") from err
    if not isinstance(config, dict) or config.get("format") != FORMAT:
        raise UserError(f"{path}: not a wam-pipe export (format is not {FORMAT!r}); re-export the model")
    if config.get("version") != VERSION:
        raise UserError(f"{path}: export version {config.get('version')!r}, this wam-pipe reads version {VERSION}; "
                        "upgrade wam-pipe or re-export")
    if not isinstance(config.get("model"), dict):
        raise UserError(f"{path}: 'model' is not a model config; re-export the model")
    return config


def load_export(path: str | Path, device: torch.device | str = "cpu", allow_targets: Sequence[str] = ()) -> LoadedModel:
    """Rebuild the model of an exported folder (or its weights / config file) on `device`, in eval mode."""
    folder = _folder(path)
    config = _read_config(folder)
    source = str(folder / CONFIG_NAME)
    model = build_model(config["model"], source, allow_targets)
    weights = folder / WEIGHTS_NAME
    if not weights.is_file():
        raise UserError(f"{weights}: missing; an exported model needs its weights next to {CONFIG_NAME}")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError) as err:
        raise UserError(f"{weights}: not a readable safetensors file ({err}); re-export the model") from err
    load_model_weights(model, state, weights)
    model.to(device).eval()
    found = config.get("source") or {}
    epoch, step = found.get("epoch"), found.get("step")
    return LoadedModel(model, weights, int(epoch) if epoch is not None else None,
                       int(step) if step is not None else None)
