"""`run.precision: auto`: bf16 where the hardware computes it natively, fp32 where bf16 would be emulated."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.core import precision
from wam_pipe.core.precision import autocast_for, cpu_has_native_bf16, resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize("avx512_bf16, amx, expected", [(False, False, "fp32"), (True, False, "bf16"),
                                                        (False, True, "bf16")])
def test_auto_on_a_cpu_follows_its_bf16_hardware(monkeypatch, avx512_bf16, amx, expected):
    """An AVX2-only CPU emulates bf16 (a bf16-autocast conv measured 35x slower than fp32): auto keeps fp32 there."""
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert cpu_has_native_bf16() is (expected == "bf16")
    assert resolve_precision("auto", CPU) == expected


def test_explicit_precisions_are_honoured_and_probes_may_be_missing(monkeypatch):
    for value in ("fp32", "bf16", "fp16"):
        assert resolve_precision(value, CPU) == value
    monkeypatch.delattr(torch.cpu, "_is_avx512_bf16_supported")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")
    assert precision.cpu_has_native_bf16() is False and resolve_precision("auto", CPU) == "fp32"


def test_autocast_for_fp32_is_a_no_op():
    with autocast_for(CPU, "fp32"):
        assert not torch.is_autocast_enabled("cpu")
    with autocast_for(CPU, "bf16"):
        assert torch.is_autocast_enabled("cpu")
