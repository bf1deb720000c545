"""Mixed precision: which autocast dtype a run uses, and the autocast context for a device."""

from __future__ import annotations

import contextlib

import torch

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX). Without it oneDNN emulates bf16, and a
    bf16-autocast conv is far slower than fp32: 35x on an AVX2-only EPYC, where a CPU with AVX512-BF16 ran the
    quickstart 1.64x faster in bf16 (benchmarks/RESULTS.md, "Precision on a CPU")."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    try:
        return any(bool(check()) for check in checks if check is not None)
    except RuntimeError:  # a torch build without these CPU probes
        return False


def resolve_precision(precision: str, device: torch.device) -> str:
    """"auto" -> bf16 on CUDA devices that support it and on CPUs with native bf16 (`cpu_has_native_bf16`), else
    fp32.

    An explicit "bf16" or "fp16" is honoured on every device (CPU autocast supports both; fp16 gets a GradScaler).
    """
    if precision == "auto":
        if device.type == "cuda" and torch.cuda.is_bf16_supported():
            return "bf16"
        if device.type == "cpu" and cpu_has_native_bf16():
            return "bf16"
        return "fp32"
    return precision


def autocast_for(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """torch.autocast for bf16/fp16, a no-op context for fp32."""
    if precision not in AUTOCAST_DTYPES:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=AUTOCAST_DTYPES[precision])
