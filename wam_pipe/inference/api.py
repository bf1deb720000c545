"""The Python API: `wam_pipe.load(path)` -> a `Watermarker` that embeds and detects on images of any size.

    import wam_pipe
    from PIL import Image

    wm = wam_pipe.load("runs/quickstart/checkpoints/last.pt")    # or an exported folder (`wam-pipe export`)
    marked = wm.embed(Image.open("photo.jpg"), "0110...")          # EmbedResult; .image is a PIL image
    found = wm.detect(marked.image)                               # DetectResult
    found.present, found.confidence, found.message_bits, found.bit_confidence, found.mask

Inputs, single or batched: a PIL image; a `(3, H, W)` or `(B, 3, H, W)` torch tensor, uint8 in [0, 255] or float in
[0, 1]; a `(H, W, 3)` uint8 numpy array; or a list of any of these (sizes may differ). A single input gives one
result, a batch (list or 4-D tensor) a list of results, in order. `embed` returns the watermarked image in the
input's own kind (PIL in, PIL out; uint8 tensor in, uint8 tensor out; float in, float in [0, 1] out) and size.

The object holds only the model, its device and precision: no global state, so several models can live in one
process, and `embed` / `detect` may be called from several threads at once (each call runs under
`torch.inference_mode` and its own autocast context, which are thread-local). The CLI's `embed` and `detect` call
this same class.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from PIL import Image

from wam_pipe.core.distributed import pick_device
from wam_pipe.core.errors import UserError
from wam_pipe.core.imaging import from_unit, normalize_uint8, to_uint8, to_unit
from wam_pipe.core.metrics import psnr
from wam_pipe.core.precision import autocast_for, resolve_precision
from wam_pipe.inference.detect import DEFAULT_MIN_FRACTION, read_logits
from wam_pipe.inference.export import is_export, load_export
from wam_pipe.inference.image_io import format_message
from wam_pipe.config.checkpoint_model import LoadedModel, load_watermarker
from wam_pipe.models.watermarker import resize

PRECISIONS = ("fp32", "bf16", "fp16", "auto")


@dataclasses.dataclass(frozen=True)
class EmbedResult:
    """One watermarked image.

    Attributes:
        image: the watermarked image, same kind and size as the input (PIL image, uint8 `(3, H, W)` tensor, or
            float `(3, H, W)` tensor in [0, 1]).
        message: the embedded bits, float `(nbits,)` of 0/1.
        psnr: of the output against the input, dB (on the output's own values: after rounding to uint8 for
            uint8 and PIL outputs).
    """

    image: Any
    message: torch.Tensor
    psnr: float

    @property
    def message_bits(self) -> str:
        """The message as a string of 0/1 characters."""
        return format_message(self.message)


@dataclasses.dataclass(frozen=True)
class DetectResult:
    """What `detect` found in one image (the rule is docs/eval.md's: a pixel is watermarked when its detection
    probability is > 0.5; the image is when the largest connected region of such pixels covers >= min_fraction).

    Attributes:
        present: the image holds a watermark (largest predicted region >= min_fraction of the image).
        confidence: mean detection probability over the pixels predicted watermarked, in [0.5, 1] (0 when none is).
        region: share of the image covered by the largest connected predicted region (what `present` tests).
        fraction: share of the image's pixels predicted watermarked.
        message: the decoded bits, float `(nbits,)` 0/1: the bit logits averaged over the predicted pixels (over
            the whole image when none is), thresholded at 0. Meaningful when `present`.
        bit_confidence: per bit, sigmoid(|averaged logit|), float `(nbits,)` from 0.5 (a guess) to 1.
        mask: the predicted watermarked pixels, bool `(H, W)` at the input's size.
        logits: the extractor's raw output, float `(1 + nbits, s, s)` at the model's `img_size` (channel 0:
            detection, then one per bit); for clustering several messages (`wam-pipe detect --multi`).
    """

    present: bool
    confidence: float
    region: float
    fraction: float
    message: torch.Tensor
    bit_confidence: torch.Tensor
    mask: torch.Tensor
    logits: torch.Tensor

    @property
    def message_bits(self) -> str:
        """The decoded message as a string of 0/1 characters."""
        return format_message(self.message)


@dataclasses.dataclass
class _Input:
    """One image as float `(3, H, W)` in [0, 1] on the CPU, and how to give it back."""

    unit: torch.Tensor
    kind: str  # "pil" | "uint8" | "float"


def _from_pil(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image.convert("RGB")).copy()).permute(2, 0, 1)  # uint8 (3, H, W)


def _one(image: Any, where: str) -> _Input:
    if isinstance(image, Image.Image):
        return _Input(_from_pil(image).float().div_(255), "pil")
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise UserError(f"{where}: a numpy image must be uint8 (H, W, 3); got {image.dtype} {image.shape}")
        return _Input(torch.from_numpy(image.copy()).permute(2, 0, 1).float().div_(255), "uint8")
    if isinstance(image, torch.Tensor):
        if image.ndim != 3 or image.shape[0] not in (1, 3):
            raise UserError(f"{where}: an image tensor must be (3, H, W) (or (B, 3, H, W) for a batch); got "
                            f"{tuple(image.shape)}")
        image = image.detach().cpu().expand(3, -1, -1)
        if image.dtype == torch.uint8:
            return _Input(image.float().div_(255), "uint8")
        if not image.is_floating_point():
            raise UserError(f"{where}: image tensors are uint8 in [0, 255] or float in [0, 1]; got {image.dtype}")
        return _Input(image.float(), "float")
    raise UserError(f"{where}: cannot use a {type(image).__name__} as an image; give a PIL image, a (3, H, W) "
                    "uint8/float tensor or a (H, W, 3) uint8 numpy array")


def as_inputs(images: Any) -> tuple[list[_Input], bool]:
    """The images of one call, and whether the call was batched (a list/tuple or a 4-D tensor)."""
    if isinstance(images, torch.Tensor) and images.ndim == 4:
        return [_one(image, f"images[{i}]") for i, image in enumerate(images)], True
    if isinstance(images, (list, tuple)):
        return [_one(image, f"images[{i}]") for i, image in enumerate(images)], True
    return [_one(images, "image")], False


def _give_back(unit: torch.Tensor, kind: str) -> Any:
    """float `(3, H, W)` in [0, 1] (uint8-exact for pil/uint8 kinds) -> the caller's kind."""
    if kind == "float":
        return unit
    pixels = unit.mul(255).round_().to(torch.uint8)
    if kind == "uint8":
        return pixels
    return Image.fromarray(np.ascontiguousarray(pixels.permute(1, 2, 0).numpy()))


def prepare_for_detection(unit: torch.Tensor, img_size: int) -> torch.Tensor:
    """float `(3, H, W)` in [0, 1] -> `(3, img_size, img_size)` in [0, 1]: the extractor's input before
    normalisation. The folder scan runs this in its loader workers; `detect` runs it in process."""
    return resize(unit[None].float(), (img_size, img_size))[0]


def load(path: str | Path, device: str | torch.device = "auto", precision: str = "fp32",
         allow_targets: Sequence[str] = ()) -> "Watermarker":
    """A `Watermarker` from a wam-pipe checkpoint (`.pt`) or an exported model (`wam-pipe export`: a folder, or its
    `model.safetensors`).

    Args:
        path: the file or folder.
        device: "auto" (default: the first GPU when one is visible, else CPU), "cpu", "cuda" or "cuda:N".
        precision: "fp32" (default), "bf16", "fp16", or "auto" (bf16 on GPUs that support it, else fp32).
        allow_targets: extra import patterns to trust in the model's config (custom components), e.g. ["my_lab.*"].
    """
    if precision not in PRECISIONS:
        raise UserError(f"precision: unknown value {precision!r}; use one of {', '.join(PRECISIONS)}")
    where = pick_device(str(device), 0)
    loaded = load_export(path, where, allow_targets) if is_export(path) else load_watermarker(path, where, allow_targets)
    return Watermarker(loaded, precision)


class Watermarker:
    """A loaded model, ready to embed and detect (build it with `wam_pipe.load`).

    Attributes:
        nbits: bits per message.
        img_size: side at which the model runs (inputs of any size are resized for it; outputs keep their size).
        device: where the model runs.
        precision: "fp32", "bf16" or "fp16" (autocast).
        module: the underlying `torch.nn.Module` (`wam_pipe.models.Watermarker`), in eval mode.
    """

    def __init__(self, loaded: LoadedModel, precision: str = "fp32"):
        self.module = loaded.model
        self.source = loaded.path
        self.device = next(self.module.parameters()).device
        self.precision = resolve_precision(precision, self.device)
        self.nbits = loaded.nbits
        self.img_size = loaded.img_size

    def __repr__(self) -> str:
        return (f"Watermarker({str(self.source)!r}, nbits={self.nbits}, img_size={self.img_size}, "
                f"device={str(self.device)!r}, precision={self.precision!r})")

    def _context(self) -> Any:
        return autocast_for(self.device, self.precision)

    def random_messages(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """`count` random messages, float `(count, nbits)` of 0/1 (from `generator`, else freshly seeded)."""
        if generator is None:
            generator = torch.Generator()
            generator.seed()
        return torch.randint(0, 2, (count, self.nbits), generator=generator).float()

    def _messages(self, messages: Any, count: int, generator: torch.Generator | None) -> torch.Tensor:
        """float `(count, nbits)` from None (random), one message for all, or one per image."""
        if messages is None:
            return self.random_messages(count, generator)
        if isinstance(messages, str):
            messages = [messages] * count
        if isinstance(messages, torch.Tensor) and messages.ndim == 1:
            messages = messages[None].expand(count, -1)
        rows = []
        for i, message in enumerate(messages):
            if isinstance(message, str):
                bits = message.replace(" ", "").replace("_", "")
                if set(bits) - {"0", "1"}:
                    raise UserError(f"messages[{i}]: {message!r} is not a string of 0/1 characters")
                message = [float(c) for c in bits]
            row = torch.as_tensor(message, dtype=torch.float32).flatten()
            if row.numel() != self.nbits:
                raise UserError(f"messages[{i}]: {row.numel()} bits given but this model carries {self.nbits}")
            if bool(((row != 0) & (row != 1)).any()):
                raise UserError(f"messages[{i}]: bits must be 0 or 1")
            rows.append(row)
        if len(rows) != count:
            raise UserError(f"messages: {len(rows)} messages for {count} images; give one, or one per image")
        return torch.stack(rows)  # (count, nbits)

    def embed(self, images: Any, messages: Any = None, masks: Any = None,
              generator: torch.Generator | None = None) -> EmbedResult | list[EmbedResult]:
        """Watermark `images` (any size; the result keeps it).

        Args:
            images: one image or a batch (see the module's docstring for the accepted kinds).
            messages: None (default: a random message per image, from `generator`), one message for every image
                (a "0110..." string, a list of 0/1, or a `(nbits,)` tensor), or one per image (a list, or a
                `(B, nbits)` tensor).
            masks: watermark only inside these pixels: None (whole image), or one per image, each a `(H, W)` or
                `(1, H, W)` tensor / PIL image, nonzero (above half intensity for PIL) = watermarked.
            generator: the torch.Generator of random messages (default: freshly seeded).
        """
        inputs, batched = as_inputs(images)
        bits = self._messages(messages, len(inputs), generator)  # (B, nbits)
        mask_list = self._masks(masks, inputs)
        results = []
        for index, item in enumerate(inputs):
            with torch.inference_mode(), self._context():
                unit, quality = self._embed_one(item, bits[index], mask_list[index])
            # Cloned outside inference mode: the caller gets ordinary tensors it may change in place.
            results.append(EmbedResult(_give_back(unit.clone(), item.kind), bits[index].clone(), quality))
        return results if batched else results[0]

    def _masks(self, masks: Any, inputs: list[_Input]) -> list[torch.Tensor | None]:
        if masks is None:
            return [None] * len(inputs)
        if not isinstance(masks, (list, tuple)):
            masks = [masks] if len(inputs) == 1 else list(masks)
        if len(masks) != len(inputs):
            raise UserError(f"masks: {len(masks)} masks for {len(inputs)} images; give one per image")
        out: list[torch.Tensor | None] = []
        for i, (mask, item) in enumerate(zip(masks, inputs)):
            if mask is None:
                out.append(None)
                continue
            if isinstance(mask, Image.Image):
                mask = torch.from_numpy(np.asarray(mask.convert("L")).copy()) > 127
            mask = torch.as_tensor(mask).reshape(-1, *torch.as_tensor(mask).shape[-2:])[:1].float()  # (1, H, W)
            if tuple(mask.shape[-2:]) != tuple(item.unit.shape[-2:]):
                raise UserError(f"masks[{i}]: {tuple(mask.shape[-2:])} but the image is {tuple(item.unit.shape[-2:])}"
                                "; give a mask of the image's size")
            out.append((mask != 0).float())
        return out

    def _embed_one(self, item: _Input, message: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, float]:
        """-> the watermarked image, float `(3, H, W)` in [0, 1] on the CPU, and its PSNR."""
        # uint8 inputs go through normalize_uint8, so that the CLI's output is bit-exact with training's pixels.
        if item.kind == "float":
            covers = from_unit(item.unit[None].to(self.device))  # (1, 3, H, W) model space
        else:
            covers = normalize_uint8(item.unit[None].mul(255).round_().to(torch.uint8).to(self.device))
        marked = self.module.embed(covers, message[None].to(self.device)).float()  # (1, 3, H, W)
        if mask is not None:
            m = mask[None].to(self.device)  # (1, 1, H, W)
            marked = covers * (1 - m) + marked * m
        if item.kind == "float":
            unit = to_unit(marked).clamp_(0, 1)  # (1, 3, H, W)
            quality = psnr(from_unit(unit), covers)
        else:
            pixels = to_uint8(marked)  # (1, 3, H, W) uint8
            quality = psnr(normalize_uint8(pixels), covers)
            unit = pixels.float().div_(255)
        return unit[0].cpu(), float(quality[0])

    def detect(self, images: Any, min_fraction: float = DEFAULT_MIN_FRACTION,
               batch_size: int = 32) -> DetectResult | list[DetectResult]:
        """Detect and decode the watermark of each image.

        Args:
            images: one image or a batch (see the module's docstring).
            min_fraction: the image holds a watermark when its largest connected predicted region covers at least
                this share of it (default 0.08; docs/eval.md measures it).
            batch_size: images per forward pass (default 32).
        """
        if not 0.0 <= min_fraction <= 1.0:
            raise UserError(f"min_fraction: {min_fraction} is not in [0, 1]")
        inputs, batched = as_inputs(images)
        results: list[DetectResult] = []
        for start in range(0, len(inputs), batch_size):
            chunk = inputs[start:start + batch_size]
            prepared = torch.stack([prepare_for_detection(item.unit.to(self.device), self.img_size)
                                    for item in chunk])  # (b, 3, s, s)
            results.extend(self.detect_prepared(prepared, [tuple(i.unit.shape[-2:]) for i in chunk], min_fraction))
        return results if batched else results[0]

    def detect_prepared(self, prepared: torch.Tensor, sizes: Sequence[tuple[int, int]],
                        min_fraction: float = DEFAULT_MIN_FRACTION) -> list[DetectResult]:
        """Detection on a batch already passed through `prepare_for_detection` (a loader's output).

        Args:
            prepared: float `(B, 3, img_size, img_size)` in [0, 1].
            sizes: the (H, W) of each original image (the masks come back at that size).
        """
        with torch.inference_mode(), self._context():
            logits = self.module.detect(from_unit(prepared.to(self.device).float())).float()  # (B, 1 + nbits, s, s)
        # Read outside inference mode (cloned): the caller gets ordinary tensors.
        return list(self._read(logits.cpu().clone(), sizes, min_fraction))

    @staticmethod
    def _read(logits: torch.Tensor, sizes: Sequence[tuple[int, int]], min_fraction: float) -> Iterator[DetectResult]:
        for preds, size in zip(logits, sizes):
            found = read_logits(preds, size, min_fraction)
            det = preds[0]
            flagged = torch.sigmoid(det[det > 0])
            yield DetectResult(present=found.present, confidence=float(flagged.mean()) if flagged.numel() else 0.0,
                               region=found.region, fraction=found.fraction, message=found.message,
                               bit_confidence=found.confidence, mask=found.mask, logits=found.preds)
