"""`HostSyncGuard`: catch every call that makes the host wait for the accelerator, on any machine.

On a GPU, `torch.cuda.set_sync_debug_mode("error")` is the ground truth, but it needs a GPU. This guard is a
`TorchFunctionMode` that recognises the same calls at the Python level, so a CPU test can prove the training step
sync-free by running it on a device whose data cannot be read (the `meta` device) or on tensors marked as device
data. It flags:

- read-backs of device data: `.item()`, `.tolist()`, `bool()/int()/float()`, `.cpu()`, `.numpy()`, `.to("cpu")`;
- data-dependent shapes, which read a count back: `nonzero`, `masked_select`, `unique`, boolean-mask indexing;
- blocking host-to-device copies (`cudaMemcpy` + stream sync in PyTorch): `cpu_tensor.to(device)` or `.copy_()`
  without `non_blocking=True`, and `torch.tensor(data, device=...)` / `x.new_tensor(data)` built from host data.

Explicit `torch.cuda.synchronize()` calls are not torch functions and are not seen here; the GPU check catches them.
"""

from __future__ import annotations

import traceback
from pathlib import Path
from typing import Any, Callable

import torch
from torch.overrides import TorchFunctionMode

_T = torch.Tensor
READ_BACKS = {_T.item, _T.tolist, _T.__bool__, _T.__int__, _T.__float__, _T.__index__, _T.numpy, _T.cpu}
DATA_DEPENDENT_SHAPES = {_T.nonzero, torch.nonzero, _T.argwhere, torch.argwhere, _T.masked_select,
                         torch.masked_select, _T.unique, torch.unique, torch.unique_consecutive}
FROM_HOST_DATA = {torch.tensor, torch.as_tensor, torch.asarray, _T.new_tensor}


class HostSyncError(AssertionError):
    """Raised by a `HostSyncGuard(raise_on_sync=True)` at the first host sync."""


def _name(func: Callable) -> str:
    return getattr(func, "__name__", repr(func))


def _on_device(tensor: Any, cpu_counts: bool) -> bool:
    return isinstance(tensor, torch.Tensor) and (cpu_counts or tensor.device.type != "cpu")


def _move(func: Callable, args: tuple, kwargs: dict) -> tuple[torch.device | None, bool]:
    """(target device or None when it stays, non_blocking) of a `Tensor.to` / `Tensor.cuda` call."""
    if func is _T.cuda:
        device = args[1] if len(args) > 1 else kwargs.get("device")
        non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
        target = torch.device("cuda", device) if isinstance(device, int) else torch.device(device or "cuda")
        return target, bool(non_blocking)
    parse_kwargs = {k: v for k, v in kwargs.items() if k != "copy"}  # `copy` is Tensor.to's, not the parser's
    device, _, non_blocking, _ = torch._C._nn._parse_to(*args[1:], **parse_kwargs)
    return device, bool(non_blocking)


def _copy_reason(func: Callable, args: tuple, kwargs: dict) -> str | None:
    """A blocking copy between host and device (either direction), or None."""
    if func in (_T.to, _T.cuda):
        source = args[0]
        target, non_blocking = _move(func, args, kwargs)
        if target is None or target.type == source.device.type:
            return None
        if source.device.type == "cpu" and not non_blocking:
            return f"{_name(func)}: blocking host-to-{target.type} copy (use non_blocking=True from pinned memory)"
        if target.type == "cpu":
            return f"{_name(func)}: reads a {source.device.type} tensor back to the host"
        return None
    if func is _T.copy_ and len(args) > 1 and isinstance(args[1], torch.Tensor):
        dst, src = args[0], args[1]
        non_blocking = args[2] if len(args) > 2 else kwargs.get("non_blocking", False)
        if dst.device.type != src.device.type and not non_blocking:
            return f"Tensor.copy_: blocking copy {src.device.type} -> {dst.device.type}"
    return None


def _host_data_reason(func: Callable, args: tuple, kwargs: dict) -> str | None:
    """`torch.tensor(host data, device=...)` and `device_tensor.new_tensor(host data)`: a blocking upload."""
    if func not in FROM_HOST_DATA:
        return None
    if func is _T.new_tensor:
        data = args[1] if len(args) > 1 else kwargs.get("data")
        device = torch.device(kwargs["device"]) if kwargs.get("device") is not None else args[0].device
    else:
        data = args[0] if args else kwargs.get("data")
        device = torch.device(kwargs["device"]) if kwargs.get("device") is not None else None
    if device is None or device.type == "cpu":
        return None
    if isinstance(data, torch.Tensor) and data.device.type != "cpu":
        return None  # already on a device: no host data involved
    return f"{_name(func)}: builds a {device.type} tensor from host data (a blocking upload); use torch.full / " \
           f"a cached constant"


def host_sync_reason(func: Callable, args: tuple, kwargs: dict, cpu_counts: bool = False) -> str | None:
    """Why calling `func(*args, **kwargs)` would make the host wait for the device, or None.

    Args:
        cpu_counts: treat CPU tensors as device data too (to count read-backs in a CPU-only computation).
    """
    tensors = [a for a in args if isinstance(a, torch.Tensor)]
    if func in READ_BACKS and any(_on_device(t, cpu_counts) for t in tensors[:1]):
        return f"{_name(func)}: reads a {tensors[0].device.type} tensor back to the host"
    if func in DATA_DEPENDENT_SHAPES and any(_on_device(t, cpu_counts) for t in tensors[:1]):
        return f"{_name(func)}: output shape depends on {tensors[0].device.type} data (reads a count back)"
    if func is _T.__getitem__ and _on_device(args[0], cpu_counts):
        index = args[1] if len(args) > 1 else None
        parts = index if isinstance(index, tuple) else (index,)
        if any(isinstance(p, torch.Tensor) and p.dtype == torch.bool for p in parts):
            return "Tensor.__getitem__: boolean-mask indexing (output shape depends on device data)"
    reason = _copy_reason(func, args, kwargs) if tensors else None
    return reason or _host_data_reason(func, args, kwargs)


def _caller() -> str:
    """`file:line` of the innermost wam_pipe frame that made the call (else the innermost non-torch frame)."""
    frames = [f for f in traceback.extract_stack() if not f.filename.endswith("step_sync_guard.py")]
    ours = [f for f in frames if "wam_pipe" in Path(f.filename).parts]
    outside_torch = [f for f in frames if "torch" not in Path(f.filename).parts]
    frame = (ours or outside_torch or frames)[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"


class HostSyncGuard(TorchFunctionMode):
    """Records (or raises at) every host sync inside `with HostSyncGuard() as guard:`; see `guard.events`.

    Args:
        raise_on_sync: raise `HostSyncError` at the first sync instead of recording it. Default False.
        cpu_counts: count read-backs of CPU tensors too (for CPU-only code such as a fused optimizer step on the
            CPU). Default False: only non-CPU tensors (cuda, meta, ...) are device data.
    """

    def __init__(self, raise_on_sync: bool = False, cpu_counts: bool = False):
        super().__init__()
        self.raise_on_sync = raise_on_sync
        self.cpu_counts = cpu_counts
        self.events: list[str] = []

    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001, ANN204 (torch's protocol)
        kwargs = kwargs or {}
        reason = host_sync_reason(func, args, kwargs, self.cpu_counts)
        if reason is not None:
            reason = f"{reason} [{_caller()}]"
            if self.raise_on_sync:
                raise HostSyncError(f"host sync: {reason}")
            self.events.append(reason)
        return func(*args, **kwargs)

    def summary(self) -> dict[str, int]:
        """Each distinct reason and how many times it happened."""
        counts: dict[str, int] = {}
        for event in self.events:
            counts[event] = counts.get(event, 0) + 1
        return counts
