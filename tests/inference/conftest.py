"""Inference tests run torch on one intra-op thread: on a shared 2-core machine two threads contend with other
processes and the many small ops of an evaluation run up to 100x slower."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
