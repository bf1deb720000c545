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


def test_resume_keeps_this_runs_total_and_reapplies_the_lr():
    """A run of 4 epochs that ends at min_lr, resumed with 8 epochs: the step stage fills `total` = 8 and the
    loaded position (t = 4) lands in the middle of the stretched cosine, on the optimizer too."""
    opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    short = CosineWarmup(opt, warmup=0, min_lr=0.0)
    short.total = 4                                                       # as the step stage fills a null total
    lrs(short, opt, 4)
    assert opt.param_groups[0]["lr"] == 0.0                               # the 4-epoch schedule is over
    state = {"optimizer": opt.state_dict(), "scheduler": short.state_dict()}

    opt2 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    longer = CosineWarmup(opt2, warmup=0, min_lr=0.0)
    longer.total = 8
    opt2.load_state_dict(state["optimizer"])                              # optimizer first, as the step stage
    longer.load_state_dict(state["scheduler"])
    assert longer.total == 8 and longer.last_epoch == 4
    assert math.isclose(opt2.param_groups[0]["lr"], 0.5) and longer.get_last_lr() == [opt2.param_groups[0]["lr"]]
    values = lrs(longer, opt2, 4)
    assert math.isclose(values[0], 0.5) and values[1] < values[0] and values[-1] > 0.0   # the cosine goes on

    opt3 = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    same = CosineWarmup(opt3, total=4, warmup=0, min_lr=0.0)             # an explicit total stays as written
    opt3.load_state_dict(state["optimizer"])
    same.load_state_dict(state["scheduler"])
    assert same.total == 4 and opt3.param_groups[0]["lr"] == 0.0
