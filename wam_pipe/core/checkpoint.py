"""Checkpoints: written atomically (temp name, fsync, rename), read with `weights_only=True` (no pickled code).

Layout of a training checkpoint: `{format, model, optimizer, scheduler?, scaler?, discriminator?,
disc_optimizer?, epoch, step, rng, config}`; `config` is the resolved pipeline as YAML text, so a checkpoint alone
is enough to rebuild its model (`wam-pipe embed/detect --checkpoint`).
"""

from __future__ import annotations

import os
import random
import re
import signal
import warnings
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch

from wam_pipe.core.atomic import atomic_open
from wam_pipe.core.errors import UserError

FORMAT = 1
# Test hook: SIGKILL this process in the middle of its Nth checkpoint write (1-based), after the bytes are written
# and before the rename (crash-safety tests of DDP runs).
KILL_HOOK_ENV = "WAM_PIPE_TEST_KILL_IN_CHECKPOINT"
_saves = 0


def save_checkpoint(path: str | Path, payload: dict[str, Any]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:  # temp, fsync, rename, fsync dir; a full disk is one line naming `path`
        torch.save({"format": FORMAT, **payload}, f)
        f.flush()
        _kill_hook()


_CALLABLE_MODULES = ("posix", "nt", "os", "subprocess", "builtins", "__builtin__", "sys", "shutil", "importlib",
                     "runpy", "pty", "socket", "ctypes", "code", "pickle", "marshal", "types")


def _kill_hook() -> None:
    global _saves
    _saves += 1
    if os.environ.get(KILL_HOOK_ENV) == str(_saves):
        os.kill(os.getpid(), signal.SIGKILL)


def _is_callable_global(name: str) -> bool:
    """A global that runs code when unpickled (os.system, eval, ...) rather than a plain foreign class."""
    module, _, attr = name.rpartition(".")
    return bool(attr) and module.split(".")[0] in _CALLABLE_MODULES


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
    # torch words the refusal of a pickled callable in two ways, by version and by what the global is.
    foreign = re.search(r"[Uu]nsupported (?:global: )?GLOBAL ([\w.]+)", str(err))
    if foreign and _is_callable_global(foreign.group(1)):
        return (f"it holds code ({foreign.group(1)}) that loading would run; safe loading refused it, nothing ran. "
                "Do not load this file; give a .pt file written by wam-pipe training")
    if foreign:
        return (f"it stores Python objects ({foreign.group(1)}) that safe loading refuses, so wam-pipe did not write "
                "it; give a .pt file written by wam-pipe training")
    if head == b"PK\x03\x04":  # torch.save's zip archive
        return "the archive is truncated or damaged (an interrupted save or copy?); use another checkpoint"
    return "this is not a PyTorch checkpoint file; give a .pt file written by wam-pipe training"


def read_checkpoint_file(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> Any:
    """`torch.load(weights_only=True)` of any checkpoint file (ours or the reference's); never runs pickled code.
    A missing or unreadable file is a one-line UserError. `mmap=True` maps the tensors instead of reading them."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such checkpoint; give the path of a .pt file written by wam-pipe")
    try:
        with warnings.catch_warnings():
            # torch warns about pickle protocols of foreign files before failing; the error below says it all.
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True, mmap=mmap)
    except Exception as err:
        raise UserError(f"{path}: not a readable wam-pipe checkpoint ({type(err).__name__}); "
                        f"{_why_unreadable(path, err)}") from err


_STATE_DICT_KEYS = ("model", "state_dict", "wam")  # where a resume-style dict may hold the state_dict


def looks_like_reference(state: Any) -> bool:
    """A state_dict in the reference WAM's layout: `embedder.*` and `detector.*` entries (ours say `extractor`)."""
    if not isinstance(state, Mapping) or not state or not all(isinstance(k, str) for k in state):
        return False
    return any(k.startswith("embedder.") for k in state) and any(k.startswith("detector.") for k in state)


def is_wam_pipe_checkpoint(data: Any) -> bool:
    return isinstance(data, dict) and "model" in data and "config" in data


def find_reference_state(data: Any) -> Optional[dict[str, Any]]:
    """The reference-layout state_dict in `data` (bare, or under `model`/`state_dict`/`wam`), unless `data` is one
    of our checkpoints; else None. (Converting it needs the models: `wam_pipe.models.reference_layout`.)"""
    if is_wam_pipe_checkpoint(data):
        return None
    if looks_like_reference(data):
        return dict(data)
    if isinstance(data, Mapping):
        for key in _STATE_DICT_KEYS:
            if looks_like_reference(data.get(key)):
                return dict(data[key])
    return None


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", mmap: bool = False) -> dict[str, Any]:
    """Read one of our checkpoints safely; a missing, unreadable or foreign file is a one-line UserError.
    `mmap=True` maps the tensors instead of reading them (cheap when only the small entries are needed)."""
    data = read_checkpoint_file(path, map_location, mmap)
    if find_reference_state(data) is not None:
        raise UserError(f"{path}: a Watermark Anything reference checkpoint (weights only), which cannot resume a "
                        "run; use it as step.init_from, or import it once: wam-pipe import-wam")
    # A mapped read wants only the small entries: checking every value would read every tensor.
    return checked_checkpoint(data, path, weights=not mmap)


def checked_checkpoint(data: Any, path: str | Path, weights: bool = True) -> dict[str, Any]:
    """`data` read from one of our checkpoint files, checked: a dict with a `model` entry whose weights are finite
    tensors (`check_weights`, unless `weights` is False). Every reader of our checkpoints goes through this."""
    if not isinstance(data, dict) or "model" not in data:
        raise UserError(f"{path}: not a wam-pipe checkpoint (no 'model' entry)")
    if weights:
        check_weights(data["model"], path)
    return data


def save_atomic(path: str | Path, obj: Any) -> None:
    """`torch.save(obj)` through a temp file and a rename (core.atomic): a crash never leaves half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_open(path) as f:
        torch.save(obj, f)

def check_weights(state: Any, path: str | Path) -> None:
    """Raise `UserError` unless `state` is a mapping of names to tensors whose floating values are all finite.

    A checkpoint is untrusted input: a `model` stored as a list gave an AttributeError deep in loading, and NaN
    weights gave a detection result followed by a ValueError. Both are refused before anything is built.
    """
    if not isinstance(state, dict) or not all(isinstance(k, str) and isinstance(v, torch.Tensor)
                                              for k, v in state.items()):
        raise UserError(f"{path}: the checkpoint's 'model' is a {type(state).__name__}, not a mapping of weight names "
                        "to tensors; this file was not written by wam-pipe training")
    for name, tensor in state.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise UserError(f"{path}: weight {name} holds NaN or infinite values (a diverged run?); use an earlier "
                            "checkpoint")


def checkpoint_step(path: str | Path) -> int:
    """The training step a checkpoint was written at (tensors mapped, not read)."""
    return int(load_checkpoint(path, mmap=True).get("step") or 0)


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
