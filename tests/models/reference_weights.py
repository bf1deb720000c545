"""Deterministic weights in the reference's layout (the rule of ../shared/reference/wam-parity/README.md).

Every entry except `attenuation.*` is `det_tensor(key, shape)`; `attenuation.*` are the JND's constant kernels. Used by
the parity test (with the parity data's shapes) and by the import/export/fine-tune tests (shapes from our own
`expected_layout`, so they run without ../shared).
"""

from __future__ import annotations

import math
import zlib
from pathlib import Path

import torch

from wam_pipe.models.reference_layout import RELEASED, ReferenceParams, attenuation_constants, expected_layout

PARITY_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "wam-parity"


def det_tensor(key: str, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    z = torch.randn(shape, generator=g, dtype=torch.float32)
    if len(shape) >= 2:
        return z / math.sqrt(math.prod(shape[1:]))
    return 1.0 + 0.1 * z if key.endswith("weight") else 0.1 * z


def deterministic_state(shapes: dict[str, tuple[int, ...]], params: ReferenceParams = RELEASED) -> dict:
    """{reference key: tensor} for these shapes; attenuation.* from our JND's constants."""
    constants = attenuation_constants(params.build_jnd())
    return {k: constants[k] if k.startswith("attenuation.") else det_tensor(k, shape) for k, shape in shapes.items()}


def reference_state(params: ReferenceParams = RELEASED) -> dict:
    """A reference-layout state_dict for `params` with deterministic weights."""
    _, shapes = expected_layout(params)
    return deterministic_state(shapes, params)


def write_reference_file(path: Path, params: ReferenceParams = RELEASED) -> Path:
    torch.save(reference_state(params), path)
    return path
