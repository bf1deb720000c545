"""`MetricMeter`: averages between reads, and the NaN/inf failure naming the step and the loss terms."""

from __future__ import annotations

import math

import pytest
import torch

from wam_pipe.core.errors import RunFailure
from wam_pipe.runner.meter import MetricMeter

ONE = torch.ones(())


def losses(total: float, **terms: float) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    metrics = {"loss": (torch.tensor(total), ONE)}
    metrics.update({f"loss_{name}": (torch.tensor(value), ONE) for name, value in terms.items()})
    metrics["bit_acc"] = (torch.tensor(3.0), torch.tensor(4.0))
    return metrics


def test_averages_leave_non_finite_values_out():
    meter = MetricMeter(tolerate_nonfinite=5, precision="fp16")
    meter.update(losses(1.0, detection=0.5), step=1)
    meter.update(losses(math.inf, detection=math.nan), step=2)   # one skipped fp16 step: tolerated
    meter.update(losses(3.0, detection=1.5), step=3)
    values = meter.read()
    assert values == {"loss": 2.0, "loss_detection": 1.0, "bit_acc": 0.75}


def test_failure_names_every_bad_term_at_the_first_bad_step():
    meter = MetricMeter()
    meter.update(losses(1.0, detection=0.5, decoding=0.2), step=7)
    meter.update(losses(math.nan, detection=0.5, decoding=math.inf, perceptual=math.nan), step=8)
    meter.update(losses(math.nan, detection=math.nan, decoding=math.nan), step=9)   # later: not reported
    with pytest.raises(RunFailure) as info:
        meter.read()
    message = str(info.value)
    assert message.startswith("step 8: the loss terms 'decoding' and 'perceptual' became NaN or inf")
    assert "detection" not in message and "total loss" not in message


def test_total_loss_is_named_only_when_no_term_is_bad():
    meter = MetricMeter()
    meter.update(losses(math.inf, detection=0.5), step=1)
    with pytest.raises(RunFailure, match=r"^step 1: the total loss became NaN or inf"):
        meter.read()


def test_precision_advice_only_for_fp16():
    for precision, advised in (("fp16", True), ("bf16", False), ("fp32", False)):
        meter = MetricMeter(precision=precision)
        meter.update(losses(math.nan, decoding=math.nan), step=3)
        with pytest.raises(RunFailure) as info:
            meter.read()
        message = str(info.value)
        assert ("run.precision=bf16" in message) is advised, message
        assert "stages.step.optimizer.lr" in message and "stages.step.grad_clip" in message


def test_fp16_fails_on_a_streak_longer_than_tolerated_naming_its_first_step():
    meter = MetricMeter(tolerate_nonfinite=2, precision="fp16")
    meter.update(losses(math.inf, detection=math.inf), step=1)      # an isolated overflow: the scaler skips it
    meter.update(losses(1.0, detection=1.0), step=2)
    assert meter.read()["loss"] == 1.0
    for step in range(3, 6):                                          # 3 bad steps in a row > 2 tolerated
        meter.update(losses(math.nan, decoding=math.nan), step=step)
    with pytest.raises(RunFailure) as info:
        meter.read()
    assert str(info.value).startswith("step 3: the loss term 'decoding' became NaN or inf and stayed so for "
                                      "3 steps in a row (more than run.max_nonfinite_steps=2)")


def test_a_streak_continues_across_reads():
    meter = MetricMeter(tolerate_nonfinite=2, precision="fp16")
    meter.update(losses(math.nan, adversarial=math.nan), step=10)
    meter.update(losses(math.nan, adversarial=math.nan), step=11)
    meter.read()                                                      # 2 in a row: still tolerated
    meter.update(losses(math.nan, adversarial=math.nan), step=12)
    with pytest.raises(RunFailure, match=r"^step 10: the loss term 'adversarial'"):
        meter.read()


def test_a_meter_sharing_the_watch_reports_its_failures_without_watching_again():
    """The per-epoch meter beside the per-log one: the watch counts each step once, both reads report it."""
    meter = MetricMeter(tolerate_nonfinite=2, precision="fp16")
    epoch_meter = MetricMeter.sharing_watch(meter)
    for step in (1, 2):                                               # 2 in a row: tolerated (a second watch
        for m in (meter, epoch_meter):                                # counting them would make it 4)
            m.update(losses(math.nan, decoding=math.nan), step=step)
    assert meter.read() == {"bit_acc": 0.75}
    meter.update(losses(1.0, decoding=1.0), step=3)
    epoch_meter.update(losses(1.0, decoding=1.0), step=3)
    assert epoch_meter.read() == {"loss": 1.0, "loss_decoding": 1.0, "bit_acc": 0.75}
    for step in (4, 5, 6):                                            # the epoch's tail, after the last log read
        for m in (meter, epoch_meter):
            m.update(losses(math.nan, perceptual=math.inf), step=step)
    with pytest.raises(RunFailure, match=r"^step 4: the loss term 'perceptual' became NaN or inf and stayed so"):
        epoch_meter.read()
