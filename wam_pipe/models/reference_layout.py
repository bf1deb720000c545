"""The reference's checkpoint layout (facebookresearch/watermark-anything, `Wam.state_dict()`), in and out.

The released files (`wam_mit.pth`, `wam_coco.pth`, the Hugging Face `checkpoint.pth`) are a bare `state_dict` of
the reference's `Wam`: `embedder.*` (VAE embedder), `detector.*` (SAM extractor), `attenuation.conv_{x,y,lum}.weight`
(the JND's constant kernels). Every tensor maps one-to-one onto a `Watermarker` weight by a rename, no reshaping;
the renames are computed from the model's own module structure (`reference_names`), so they follow any preset
(vae_small/vae_big, sam_tiny/small/base, any nbits and img_size).

`ReferenceParams` is the reference's `params.json` (the fields that build the model): embedder, extractor, nbits,
img_size, attenuation, scaling_w, scaling_i. `RELEASED` is the released configuration (`checkpoints/params.json`:
vae_small, sam_base, 32 bits, 256 px, jnd_1_3_blue, scaling_w 2.0, scaling_i 1.0).
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch
import yaml
from torch import nn

from wam_pipe.core.checkpoint import (
    FORMAT, checked_checkpoint, find_reference_state, is_wam_pipe_checkpoint, read_checkpoint_file,
)
from wam_pipe.core.errors import UserError
from wam_pipe.models.embedders import VAEEmbedder, vae_big, vae_small
from wam_pipe.models.extractors import SamExtractor, sam_base, sam_small, sam_tiny
from wam_pipe.models.jnd import JND, jnd_1_1, jnd_1_3, jnd_1_3_blue, jnd_3_1, jnd_3_3
from wam_pipe.models.vae import Downsample, ResnetBlock, Upsample
from wam_pipe.models.watermarker import Watermarker

EMBEDDERS: dict[str, Callable[..., VAEEmbedder]] = {"vae_small": vae_small, "vae_big": vae_big}
EXTRACTORS: dict[str, Callable[..., SamExtractor]] = {"sam_tiny": sam_tiny, "sam_small": sam_small,
                                                       "sam_base": sam_base}
ATTENUATIONS: dict[str, Callable[[], JND]] = {"jnd_1_1": jnd_1_1, "jnd_3_3": jnd_3_3, "jnd_1_3": jnd_1_3,
                                              "jnd_1_3_blue": jnd_1_3_blue, "jnd_3_1": jnd_3_1}
# The reference's Wam runs its embedder and extractor at 256 px when built by load_model_from_checkpoint.
REFERENCE_PROCESSING_SIZE = 256
# How the reference's inference code finds its configs (relative to its repository root), for params.json.
_CONFIG_FILES = {"embedder_config": "configs/embedder.yaml", "extractor_config": "configs/extractor.yaml",
                 "augmentation_config": "configs/all_augs_multi_wm.yaml",
                 "attenuation_config": "configs/attenuation.yaml"}
_PARAMS_HINT = "import-wam --params, or a params.json beside the file"


class ReferenceLayoutError(UserError):
    """A file or model that does not fit the reference layout (one line, exit 2)."""


@dataclasses.dataclass(frozen=True)
class ReferenceParams:
    """The model-building part of the reference's `params.json`."""

    embedder: str = "vae_small"
    extractor: str = "sam_base"
    nbits: int = 32
    img_size: int = 256
    attenuation: Optional[str] = "jnd_1_3_blue"
    scaling_w: float = 2.0
    scaling_i: float = 1.0

    @classmethod
    def from_json(cls, data: Any, source: str) -> "ReferenceParams":
        """Read a params.json dict (the reference's key names `embedder_model`, `extractor_model`, or the short
        `embedder`, `extractor`); missing keys take the released values."""
        if not isinstance(data, dict):
            raise ReferenceLayoutError(f"{source}: params must be a JSON object like the reference's "
                                       "checkpoints/params.json")
        values = {
            "embedder": data.get("embedder_model", data.get("embedder", RELEASED.embedder)),
            "extractor": data.get("extractor_model", data.get("extractor", RELEASED.extractor)),
            "nbits": data.get("nbits", RELEASED.nbits),
            "img_size": data.get("img_size", RELEASED.img_size),
            "attenuation": data.get("attenuation", RELEASED.attenuation),
            "scaling_w": data.get("scaling_w", RELEASED.scaling_w),
            "scaling_i": data.get("scaling_i", RELEASED.scaling_i),
        }
        if values["attenuation"] in (None, "None", "none", ""):
            values["attenuation"] = None
        checks = [
            ("embedder_model", "embedder", values["embedder"] in EMBEDDERS, f"one of {sorted(EMBEDDERS)}"),
            ("extractor_model", "extractor", values["extractor"] in EXTRACTORS, f"one of {sorted(EXTRACTORS)}"),
            ("nbits", "nbits", isinstance(values["nbits"], int) and values["nbits"] > 0, "a positive integer"),
            ("img_size", "img_size", isinstance(values["img_size"], int) and values["img_size"] > 0
             and values["img_size"] % 16 == 0, "a positive multiple of 16"),
            ("attenuation", "attenuation", values["attenuation"] is None or values["attenuation"] in ATTENUATIONS,
             f"\"None\" or one of {sorted(ATTENUATIONS)}"),
            ("scaling_w", "scaling_w", isinstance(values["scaling_w"], (int, float)), "a number"),
            ("scaling_i", "scaling_i", isinstance(values["scaling_i"], (int, float)), "a number"),
        ]
        for key, field, ok, want in checks:
            if not ok:
                raise ReferenceLayoutError(f"{source}: {key}={values[field]!r}: must be {want}")
        values["scaling_w"], values["scaling_i"] = float(values["scaling_w"]), float(values["scaling_i"])
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        """A params.json the reference's `load_model_from_checkpoint` reads (run from its repository root)."""
        return {**_CONFIG_FILES, "embedder_model": self.embedder, "extractor_model": self.extractor,
                "nbits": self.nbits, "img_size": self.img_size, "img_size_extractor": REFERENCE_PROCESSING_SIZE,
                "attenuation": self.attenuation or "None", "scaling_w": self.scaling_w, "scaling_i": self.scaling_i}

    def describe(self) -> str:
        return (f"{self.embedder} + {self.extractor}, nbits {self.nbits}, img_size {self.img_size}, "
                f"attenuation {self.attenuation or 'none'}")

    def model_config(self) -> dict[str, Any]:
        """The `stages.step` model keys that rebuild this model (what a wam-pipe checkpoint's config holds)."""
        return {
            "embedder": {"_target_": f"wam_pipe.models.{self.embedder}", "nbits": self.nbits},
            "extractor": {"_target_": f"wam_pipe.models.{self.extractor}", "nbits": self.nbits,
                          "img_size": self.img_size},
            "jnd": {"_target_": f"wam_pipe.models.{self.attenuation}"} if self.attenuation else None,
            "scaling_w": self.scaling_w,
            "scaling_i": self.scaling_i,
            "img_size": self.img_size,
        }

    def build_jnd(self) -> Optional[JND]:
        return ATTENUATIONS[self.attenuation]() if self.attenuation else None

    def build(self) -> Watermarker:
        """The `Watermarker` (build it under `torch.device("meta")` when only names and shapes matter)."""
        jnd = self.build_jnd()
        return Watermarker(EMBEDDERS[self.embedder](self.nbits), EXTRACTORS[self.extractor](self.nbits, self.img_size),
                           jnd, self.scaling_w, self.scaling_i, self.img_size)


RELEASED = ReferenceParams()


# ---- key names ---------------------------------------------------------------------------------------------------

def _level_names(layers: nn.Sequential, first_level: int, step: int, sample: str) -> dict[str, str]:
    """Our flat `down`/`up` index -> the reference's `{level}.block.{i}` / `{level}.{sample}` prefix.

    The reference nests resnet blocks per resolution level and ends each level but the last with a resampler;
    ours is one flat Sequential in execution order. The encoder walks levels 0, 1, ...; the decoder walks them
    from the deepest down (reference index n-1 first), hence `first_level` and `step`.
    """
    names, level, block = {}, first_level, 0
    for index, layer in enumerate(layers):
        if isinstance(layer, ResnetBlock):
            names[str(index)] = f"{level}.block.{block}"
            block += 1
        elif isinstance(layer, (Downsample, Upsample)):
            names[str(index)] = f"{level}.{sample}"
            level, block = level + step, 0
    return names


_MID = {"0": "block_1", "1": "attn_1", "2": "block_2"}
_MLP = {"0": "lin1", "2": "lin2"}


def reference_names(model: Watermarker) -> dict[str, str]:
    """Every persistent weight of `model` except the JND's -> its reference key (same shape, same values).

    Raises ReferenceLayoutError for models the reference cannot express (anything but the VAE embedder and the
    SAM extractor).
    """
    if not isinstance(model.embedder, VAEEmbedder) or not isinstance(model.extractor, SamExtractor):
        raise ReferenceLayoutError(
            f"the reference layout holds only the VAE embedder + SAM extractor (vae_small/vae_big + "
            f"sam_tiny/sam_small/sam_base); this model has {type(model.embedder).__name__} + "
            f"{type(model.extractor).__name__}, which the reference code cannot build")
    n_up = sum(isinstance(layer, Upsample) for layer in model.embedder.decoder.up)
    down = _level_names(model.embedder.encoder.down, 0, 1, "downsample")
    up = _level_names(model.embedder.decoder.up, n_up, -1, "upsample")
    names = {}
    for key in model.state_dict():
        if key.startswith("jnd."):
            continue
        ref = key
        ref = re.sub(r"^embedder\.encoder\.down\.(\d+)\.", lambda m: f"embedder.encoder.down.{down[m[1]]}.", ref)
        ref = re.sub(r"^embedder\.decoder\.up\.(\d+)\.", lambda m: f"embedder.decoder.up.{up[m[1]]}.", ref)
        ref = re.sub(r"^(embedder\.(?:en|de)coder\.mid)\.(\d)\.", lambda m: f"{m[1]}.{_MID[m[2]]}.", ref)
        ref = re.sub(r"\.shortcut\.", ".nin_shortcut.", ref)
        ref = ref.replace("embedder.msg_processor.embedding.", "embedder.msg_processor.msg_embeddings.")
        ref = re.sub(r"^extractor\.", "detector.", ref)
        ref = ref.replace("image_encoder.patch_embed.", "image_encoder.patch_embed.proj.")
        ref = re.sub(r"\.mlp\.(\d)\.", lambda m: f".mlp.{_MLP[m[1]]}.", ref)
        ref = re.sub(r"pixel_decoder\.upscale\.(\d+)\.(\d+)\.", r"pixel_decoder.output_upscaling.\1.upsample_block.\2.",
                     ref)
        ref = ref.replace("pixel_decoder.head.", "pixel_decoder.last_layer.")
        names[key] = ref
    return names


def attenuation_constants(jnd: Optional[JND]) -> dict[str, torch.Tensor]:
    """The reference JND's frozen kernels (`attenuation.conv_{x,y,lum}.weight`, one copy per input channel)."""
    if jnd is None:
        return {}
    groups = jnd.in_channels
    kernels = {"conv_x": jnd.kernel_x, "conv_y": jnd.kernel_y, "conv_lum": jnd.kernel_lum * 32}  # ours is /32
    return {f"attenuation.{name}.weight": k.detach().float().cpu().view(1, 1, *k.shape).repeat(groups, 1, 1, 1)
            for name, k in kernels.items()}


# ---- reading a reference file -------------------------------------------------------------------------------------

def _first(items: list[str], count: int = 3) -> str:
    return ", ".join(items[:count]) + (f" (+{len(items) - count} more)" if len(items) > count else "")


def expected_layout(params: ReferenceParams) -> tuple[dict[str, str], dict[str, tuple[int, ...]]]:
    """(our key -> reference key, reference key -> shape) for `params`, from a model built on the meta device."""
    with torch.device("meta"):
        model = params.build()
    names = reference_names(model)
    own = model.state_dict()
    shapes = {ref: tuple(own[key].shape) for key, ref in names.items()}
    shapes.update({k: tuple(v.shape) for k, v in attenuation_constants(params.build_jnd()).items()})
    return names, shapes


def convert_reference_state(state: Mapping[str, Any], params: ReferenceParams, source: str) -> dict[str, torch.Tensor]:
    """Check a reference state_dict key by key and shape by shape against `params`; return it in our names.

    Raises ReferenceLayoutError naming `source` and the first unexpected/missing keys or the first mismatched shape.
    """
    names, shapes = expected_layout(params)
    unexpected = [k for k in state if k not in shapes]
    missing = [k for k in shapes if k not in state]
    if unexpected or missing:
        parts = ([f"unexpected keys {_first(unexpected)}"] if unexpected else []) + (
            [f"missing keys {_first(missing)}"] if missing else [])
        raise ReferenceLayoutError(f"{source}: not the reference layout of {params.describe()}: {'; '.join(parts)}; "
                                   f"give the released file or the params.json it was trained with ({_PARAMS_HINT})")
    for key, shape in shapes.items():
        value = state[key]
        if not isinstance(value, torch.Tensor):
            raise ReferenceLayoutError(f"{source}: {key} is a {type(value).__name__}, not a tensor")
        if tuple(value.shape) != shape:
            raise ReferenceLayoutError(
                f"{source}: {key} has shape {tuple(value.shape)} but {params.describe()} needs {shape}; "
                f"give the params.json this file was trained with ({_PARAMS_HINT})")
        if not value.is_floating_point():
            raise ReferenceLayoutError(f"{source}: {key} has dtype {value.dtype}; the reference weights are floats")
    for key, constant in attenuation_constants(params.build_jnd()).items():
        if not torch.allclose(state[key].float().cpu(), constant):
            raise ReferenceLayoutError(f"{source}: {key} differs from the reference JND's fixed kernel; this file's "
                                       "attenuation was modified, so wam-pipe's JND would not reproduce it")
    return {ours: state[ref] for ours, ref in names.items()}


def to_reference_state(model: Watermarker) -> dict[str, torch.Tensor]:
    """`model`'s weights in the reference layout (plus the JND constants when it has a JND), on the CPU."""
    names = reference_names(model)
    own = model.state_dict()
    state = {ref: own[key].detach().cpu() for key, ref in names.items()}
    state.update(attenuation_constants(model.jnd))
    return state


def reference_params_of(model: Watermarker) -> ReferenceParams:
    """The params.json that rebuilds `model` in the reference code; ReferenceLayoutError if none does."""
    reference_names(model)  # refuses non-reference architectures
    sizes = {int(model.img_size), int(model.extractor.img_size)}
    if sizes != {REFERENCE_PROCESSING_SIZE}:
        raise ReferenceLayoutError(
            f"this model runs at img_size {max(sizes - {REFERENCE_PROCESSING_SIZE})}; the reference's "
            f"load_model_from_checkpoint always runs at {REFERENCE_PROCESSING_SIZE} px, so it cannot express it")
    own = {k: tuple(v.shape) for k, v in model.state_dict().items() if not k.startswith("jnd.")}
    attenuation = _jnd_name(model.jnd)
    for embedder in EMBEDDERS:
        for extractor in EXTRACTORS:
            params = ReferenceParams(embedder, extractor, model.nbits, int(model.extractor.img_size), attenuation,
                                     float(model.scaling_w), float(model.scaling_i))
            with torch.device("meta"):
                candidate = params.build()
            shapes = {k: tuple(v.shape) for k, v in candidate.state_dict().items() if not k.startswith("jnd.")}
            if shapes == own and _same_vit(candidate.extractor, model.extractor):
                return params
    raise ReferenceLayoutError(
        "this model's embedder/extractor are not one of the reference presets (vae_small/vae_big, "
        "sam_tiny/sam_small/sam_base at their default depth and window), which is all its configs can build")


def _same_vit(a: SamExtractor, b: SamExtractor) -> bool:
    """Shapes do not show the window size of a block that has one; compare it and the global blocks directly."""
    return [blk.window for blk in a.image_encoder.blocks] == [blk.window for blk in b.image_encoder.blocks]


def _jnd_name(jnd: Optional[JND]) -> Optional[str]:
    if jnd is None:
        return None
    for name, make in ATTENUATIONS.items():
        preset = make()
        if (preset.in_channels, preset.out_channels, preset.blue) == (jnd.in_channels, jnd.out_channels, jnd.blue):
            if not jnd.blue or (jnd.in_channels, jnd.out_channels) == (1, 3):
                return name
    raise ReferenceLayoutError(f"this model's JND (in_channels {jnd.in_channels}, out_channels {jnd.out_channels}, "
                               f"blue {jnd.blue}) is not one of the reference presets {sorted(ATTENUATIONS)}")


def parameter_count(state: Mapping[str, torch.Tensor]) -> int:
    return sum(math.prod(v.shape) for v in state.values())


def convert_for_model(state: Mapping[str, Any], model: Watermarker, source: str) -> dict[str, torch.Tensor]:
    """A reference state_dict renamed onto `model`'s own weights (its structure decides the names), for
    `step.init_from`: the JND constants are skipped (ours are rebuilt by the constructor, with or without a JND).

    Raises ReferenceLayoutError naming `source` and the first unexpected/missing key or mismatched shape.
    """
    try:
        names = reference_names(model)
    except ReferenceLayoutError as err:
        raise ReferenceLayoutError(f"{source}: cannot initialise this model from a reference checkpoint: {err}") from err
    own = model.state_dict()
    wanted = {ref: ours for ours, ref in names.items()}
    unexpected = [k for k in state if k not in wanted and not k.startswith("attenuation.")]
    missing = [k for k in wanted if k not in state]
    if unexpected or missing:
        parts = ([f"unexpected keys {_first(unexpected)}"] if unexpected else []) + (
            [f"missing keys {_first(missing)}"] if missing else [])
        raise ReferenceLayoutError(f"{source}: does not fit this pipeline's model: {'; '.join(parts)}; "
                                   "check the step's embedder/extractor presets")
    for ref, ours in wanted.items():
        value = state[ref]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != tuple(own[ours].shape):
            got = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ReferenceLayoutError(f"{source}: {ref} has shape {got} in the file but this pipeline's model needs "
                                       f"{tuple(own[ours].shape)} ({ours}); check the step's embedder/extractor "
                                       "presets and nbits")
    return {ours: state[ref] for ref, ours in wanted.items()}


# ---- files: reading a reference checkpoint for the loaders -------------------------------------------------------

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
    state = find_reference_state(data)
    if state is None:
        if is_wam_pipe_checkpoint(data):
            raise UserError(f"{path}: already a wam-pipe checkpoint; use it as it is")
        raise ReferenceLayoutError(f"{path}: not a Watermark Anything reference checkpoint: {_layout_problem(data, params)}")
    return reference_checkpoint(state, params, path)


def load_model_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """What embed/detect/calibrate/eval read: one of our checkpoints, or a reference checkpoint converted on load
    (recognised by its layout; one line on stderr says so)."""
    path = Path(path)
    data = read_checkpoint_file(path, map_location)
    state = find_reference_state(data)
    if state is not None:
        params, where = params_beside(path)
        _announce(f"{path}: a Watermark Anything reference checkpoint, read with {where} ({params.describe()}); "
                  "`wam-pipe import-wam` converts it once")
        return reference_checkpoint(state, params, path)
    return checked_checkpoint(data, path)


def load_init_weights(path: str | Path, model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The weights `step.init_from` loads into `model`: a checkpoint's `model`, or a reference checkpoint renamed
    onto `model`'s structure (one line on stderr says so)."""
    path = Path(path)
    data = read_checkpoint_file(path)
    state = find_reference_state(data)
    if state is not None:
        _announce(f"{path}: a Watermark Anything reference checkpoint; initialising from its weights")
        return convert_for_model(state, model, str(path))
    return checked_checkpoint(data, path)["model"]
