"""`pick_device`: the same device rule as `run:` validation (`parse_device`), with the same messages."""

from __future__ import annotations

import pytest
import torch

from wam_pipe.core.errors import UserError
from wam_pipe.core.distributed import pick_device
from wam_pipe.core.settings import parse_device, value_problems


@pytest.mark.parametrize("device", ["cudafoo", "cuda:", "cpu:0", "auto:1", "tpu", "CUDA"])
def test_a_device_validation_refuses_is_refused_at_run_time_too(device):
    assert value_problems({"device": device}) == [
        ("device", f"unknown device '{device}'; use auto, cpu, cuda or cuda:N")]
    with pytest.raises(UserError, match=rf"^run\.device: unknown device '{device}'; use auto, cpu, cuda or cuda:N$"):
        pick_device(device, local_rank=0)


def test_accepted_devices():
    assert [parse_device(d) for d in ("auto", "cpu", "cuda", "cuda:3")] == [
        ("auto", None), ("cpu", None), ("cuda", None), ("cuda", 3)]
    assert pick_device("cpu", local_rank=1) == torch.device("cpu")
    if torch.cuda.is_available():
        assert pick_device("cuda", local_rank=0) == torch.device("cuda", 0)
        assert pick_device("cuda:0", local_rank=5) == torch.device("cuda", 0)
    else:
        assert pick_device("auto", local_rank=1) == torch.device("cpu")
        with pytest.raises(UserError, match=r"^run\.device: 'cuda:1' but no CUDA device is visible"):
            pick_device("cuda:1", local_rank=0)
