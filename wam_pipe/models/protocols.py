"""What an embedder and an extractor are, as `typing.Protocol`s, and the registry of the models that fulfil them.

    embedder(imgs (B, 3, H, W) float model space, msgs (B, nbits) of 0/1) -> delta (B, 3, H, W), same dtype
    extractor(imgs (B, 3, H, W) float model space) -> logits (B, 1 + nbits, H, W): channel 0 detection, then bits

Both carry `nbits`. `Watermarker` takes any object of these shapes (a custom model named in a pipeline with
`allow_targets` too); `@register_model("embedder")` on a builder adds it to `EMBEDDERS` / `EXTRACTORS`, and the
contract test (tests/models/test_model_contract.py) then checks its shapes, dtype and nbits without being edited.
"""

from __future__ import annotations

from typing import Callable, Literal, Protocol, TypeVar, runtime_checkable

import torch


@runtime_checkable
class Embedder(Protocol):
    """`(imgs (B, 3, H, W), msgs (B, nbits)) -> delta (B, 3, H, W)`; the watermark added to the image."""

    nbits: int

    def __call__(self, imgs: torch.Tensor, msgs: torch.Tensor) -> torch.Tensor: ...


@runtime_checkable
class Extractor(Protocol):
    """`imgs (B, 3, H, W) -> logits (B, 1 + nbits, H, W)`: per-pixel detection logit, then one logit per bit."""

    nbits: int

    def __call__(self, imgs: torch.Tensor) -> torch.Tensor: ...


EMBEDDERS: dict[str, Callable[..., Embedder]] = {}
EXTRACTORS: dict[str, Callable[..., Extractor]] = {}
F = TypeVar("F", bound=Callable)


def register_model(kind: Literal["embedder", "extractor"]) -> Callable[[F], F]:
    """Decorator on a model class or builder (callable with `nbits=` and defaults for the rest): registers it by
    its `__name__` in `EMBEDDERS` or `EXTRACTORS`."""
    registry = {"embedder": EMBEDDERS, "extractor": EXTRACTORS}[kind]

    def register(builder: F) -> F:
        registry[builder.__name__] = builder
        return builder

    return register
