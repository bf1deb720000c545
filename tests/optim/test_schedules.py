import math

import pytest
import torch

from wam_pipe.optim import CosineWarmup


def lrs(scheduler, optimizer, n):
    out = []
    for _ in range(n):
        out.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return out


def test_reference_recipe_shape():
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=5e-5)
    values = lrs(CosineWarmup(opt, total=300, warmup=10, min_lr=1e-6, warmup_lr=1e-6), opt, 305)
    assert values[0] == 1e-6
    assert math.isclose(values[5], 1e-6 + 5 * (5e-5 - 1e-6) / 10)
    assert values[10] < 5e-5 and values[10] > 4.9e-5                      # cosine already running
    assert math.isclose(values[150], 1e-6 + (5e-5 - 1e-6) / 2)
    assert values[300] == values[304] == 1e-6                              # flat after total


def test_state_dict_round_trip():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched = CosineWarmup(opt, total=10, warmup=2)
    lrs(sched, opt, 4)
    state = sched.state_dict()
    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    sched2 = CosineWarmup(opt2, total=10, warmup=2)
    sched2.load_state_dict(state)
    assert sched2.get_last_lr() == sched.get_last_lr()


def test_bad_arguments():
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    with pytest.raises(ValueError):
        CosineWarmup(opt, total=0)
