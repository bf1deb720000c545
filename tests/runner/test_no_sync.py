"""The training step never makes the host wait for the device between log lines.

The real `Step` (models, augment, losses, backward, optimizer) runs on the `meta` device, whose data cannot be read
at all, under `HostSyncGuard`, which also flags blocking host-to-device copies (a hidden sync on CUDA). Only
`MetricMeter.read()`, once per `run.log_every` steps, reads anything back. A GPU run checks the same with
`torch.cuda.set_sync_debug_mode("error")` (benchmarks/gpu_check.py).
"""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
import torch

from wam_pipe.bench.step_sync_guard import HostSyncError, HostSyncGuard
from wam_pipe.config import build_stages, compose
from wam_pipe.core.context import RunContext
from wam_pipe.core.settings import RunSettings
from wam_pipe.runner.meter import MetricMeter

# Every augmentation but JPEG (its codec needs real bytes on the host: the one documented sync, on CUDA only).
AUGS = ["identity", "hflip", "rotate", "resize", "crop", "perspective", "crop_resize_pad", "gaussian_blur",
        "median_filter", "brightness", "contrast", "saturation", "hue"]
PIPELINE = """\
version: 1
name: no-sync
run: {{seed: 0, tensorboard: false}}
stages:
  load: {{_target_: wam_pipe.stages.Load, shards: unused}}  # a step needs one; these tests feed batches themselves
  augment:
    _target_: wam_pipe.stages.Augment
    masks: {{_target_: wam_pipe.augment.MaskSampler, multiple: {multiple}, max_watermarks: 2}}
    cover_jitter: {{_target_: wam_pipe.augment.ColorJitter}}
    augs:
{augs}
  step:
    _target_: wam_pipe.stages.Step
    embedder: {{_target_: wam_pipe.models.ConvEmbedder, nbits: 8, channels: 8}}
    extractor: {{_target_: wam_pipe.models.ConvExtractor, nbits: 8, channels: 8, depth: 1}}
    img_size: 32
    roll_probability: 0.5
    optimizer: {{_target_: torch.optim.AdamW, _partial_: true, lr: 1.0e-3}}
    scheduler: {{_target_: wam_pipe.optim.CosineWarmup, _partial_: true, warmup: 2}}
    scheduler_every: step
    losses:
      _target_: wam_pipe.losses.WatermarkLosses
      perceptual: 0.5
      perceptual_kind: {perceptual}
      adversarial: {adversarial}
      balanced: {balanced}
    discriminator: {{_target_: wam_pipe.models.PatchDiscriminator, ndf: 8, norm_groups: 2}}
    grad_clip: {grad_clip}
    grad_accum: {grad_accum}
    jnd: {jnd}
"""

# Together they cover every loss term, perceptual kind, JND, gradient clipping, accumulation and multiple watermarks.
CASES = {
    "balanced+clip": dict(multiple="false", perceptual="mse", adversarial=0.0, balanced="true", grad_clip=1.0,
                          grad_accum=1, jnd="null"),
    "multi-wm+accum+ssim": dict(multiple="true", perceptual="ssim", adversarial=0.0, balanced="false",
                                grad_clip=0.0, grad_accum=2, jnd="null"),
    "finetune:adversarial+jnd+yuv": dict(multiple="false", perceptual="yuv", adversarial=0.1, balanced="true",
                                         grad_clip=0.0, grad_accum=1,
                                         jnd="{_target_: wam_pipe.models.jnd_1_3_blue}"),
}


def _stages(tmp_path: Path, **case: object) -> dict:
    from wam_pipe.augment import AUGMENTATIONS

    augs = "\n".join(f"      {name}: {{_target_: wam_pipe.augment.{AUGMENTATIONS[name].__name__}}}" for name in AUGS)
    path = tmp_path / "pipeline.yaml"
    path.write_text(PIPELINE.format(augs=augs, **case))
    pipeline = compose(path)
    return build_stages(pipeline.resolved, pipeline.file)


def _batch(device: str, batch: int = 4, size: int = 32) -> dict:
    """A loader batch (architecture.md): uint8 images and instance masks, already on `device`."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, size, size), dtype=torch.uint8, generator=generator)
    masks = (torch.rand(batch, 3, size, size, generator=generator) > 0.7).to(torch.uint8)
    return {"images": images.to(device), "masks": masks.to(device), "keys": [str(i) for i in range(batch)]}


@pytest.fixture
def autocast_off_on_meta(monkeypatch):
    """`torch.autocast(device_type="meta", enabled=False)` raises, though it means "nothing to do" (JND turns
    autocast off around its fp32 maths): on the meta device, enter a null context instead."""
    real = torch.autocast

    def autocast(device_type: str, *args, **kwargs):
        return contextlib.nullcontext() if device_type == "meta" else real(device_type, *args, **kwargs)

    monkeypatch.setattr(torch, "autocast", autocast)


@pytest.mark.parametrize("case", list(CASES))
def test_train_step_never_waits_for_the_device(tmp_path, case, autocast_off_on_meta):
    stages = _stages(tmp_path, **CASES[case])
    step, augment = stages["step"], stages["augment"]
    ctx = RunContext(run_dir=tmp_path, device=torch.device("meta"))
    step.setup(ctx, RunSettings(epochs=1, steps_per_epoch=8))
    step.train()
    batch = _batch("meta")
    torch.manual_seed(1)
    step.train_step(batch, augment, epoch=0)  # warm-up: builds per-device constants once (a one-off upload)
    meter = MetricMeter()
    with HostSyncGuard() as guard:
        for index in range(6):  # several updates and augmentation draws, all between two log lines
            metrics = step.train_step(batch, augment, epoch=0)
            meter.update(metrics, index)
    assert guard.events == [], f"host syncs in the training step: {guard.summary()}"
    assert metrics["loss"][0].device.type == "meta" and meter.sums["loss"].device.type == "meta"
    assert "bit_acc" in metrics and "psnr" in metrics
    if CASES[case]["adversarial"]:
        assert "loss_discriminator" in metrics and "loss_adversarial" in metrics


def test_reading_the_metrics_is_the_sync_the_guard_sees(tmp_path):
    stages = _stages(tmp_path, **CASES["balanced+clip"])
    step = stages["step"]
    step.setup(RunContext(run_dir=tmp_path, device=torch.device("meta")), RunSettings(epochs=1, steps_per_epoch=4))
    meter = MetricMeter()
    meter.update(step.train_step(_batch("meta"), stages["augment"], epoch=0), 0)
    with HostSyncGuard(raise_on_sync=True), pytest.raises(HostSyncError, match="tolist"):
        meter.read()  # the one read-back per log_every steps


@pytest.mark.parametrize(("fused", "case"), [(True, "balanced+clip"), (False, "balanced+clip"),
                                             (True, "finetune:adversarial+jnd+yuv")])
def test_fp16_update_reads_nothing_back_only_with_a_fused_optimizer(tmp_path, fused, case):
    # GradScaler.step reads the inf/NaN flag back (`.item()`) unless the optimizer takes it as a tensor (fused);
    # with the adversarial loss the discriminator's optimizer steps through the same scaler.
    stages = _stages(tmp_path, **CASES[case])
    step = stages["step"]
    ctx = RunContext(run_dir=tmp_path, device=torch.device("cpu"), precision="fp16")
    step.setup(ctx, RunSettings(epochs=1, steps_per_epoch=4, fused_optimizer=fused))
    assert step.scaler.is_enabled() and bool(step.optimizer.defaults.get("fused")) is fused
    if CASES[case]["adversarial"]:
        assert bool(step.disc_optimizer.defaults.get("fused")) is fused
    state, guards = step, []
    update = state.optimizer_step

    def observed_update(*args, **kwargs):
        with HostSyncGuard(cpu_counts=True) as guard:  # on the CPU every tensor stands for device data
            guards.append(guard)
            return update(*args, **kwargs)

    state.optimizer_step = observed_update
    for _ in range(2):
        metrics = step.train_step(_batch("cpu"), stages["augment"], epoch=0)
    assert len(guards) == 2 and torch.isfinite(metrics["loss"][0])
    events = [event for guard in guards for event in guard.events]
    if fused:
        assert events == [], f"fused fp16 update read back: {events}"
    else:
        assert any(event.startswith("item") for event in events), events
