"""The step stage on its own: cross-field validation, weights-only init, refusal of mismatched checkpoints,
the adversarial branch (discriminator stepped and checkpointed, `disc_start` respected)."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from wam_pipe.augment import Identity, MaskSampler
from wam_pipe.config import compose
from wam_pipe.errors import ConfigError, UserError
from wam_pipe.losses import WatermarkLosses
from wam_pipe.models import ConvEmbedder, ConvExtractor, PatchDiscriminator
from wam_pipe.runner.checkpoint import save_checkpoint
from wam_pipe.runner.context import RunContext
from wam_pipe.stages import Augment, Step

SIZE = 32



def make_step(nbits: int = 8, **kw) -> Step:
    defaults = dict(embedder=ConvEmbedder(nbits=nbits, channels=8), extractor=ConvExtractor(nbits=nbits, channels=8),
                    optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
                    losses=WatermarkLosses(decoding=1.0, balanced=False), img_size=SIZE)
    defaults.update(kw)
    step = Step(**defaults)
    step.setup(RunContext(run_dir=Path("."), log=lambda m: None), epochs=2, steps_per_epoch=4)
    step.train()
    return step


def batch(n: int = 4) -> dict:
    return {"images": torch.randint(0, 256, (n, 3, SIZE, SIZE), dtype=torch.uint8),
            "masks": torch.ones(n, 1, SIZE, SIZE, dtype=torch.uint8)}


AUGMENT = Augment(masks=MaskSampler(full=1.0, box=0.0, irregular=0.0, segm=0.0, invert_proba=0.0),
                  augs={"identity": Identity()})


def test_nbits_mismatch_is_a_validation_error(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text("""\
version: 1
name: x
stages:
  step:
    _target_: wam_pipe.stages.Step
    embedder: {_target_: wam_pipe.models.ConvEmbedder, nbits: 16}
    extractor: {_target_: wam_pipe.models.sam_tiny}
    optimizer: {_target_: torch.optim.AdamW, _partial_: true}
    losses: {_target_: wam_pipe.losses.WatermarkLosses}
""")
    with pytest.raises(ConfigError) as info:
        compose(path)
    assert info.value.errors == [f"{path}: stages.step.extractor.nbits: embedder has nbits=16 but extractor has "
                                 f"nbits=32; they must match"]


def test_init_from_loads_the_weights_and_fresh_optimizers(tmp_path):
    source = make_step()
    for _ in range(2):
        source.train_step(batch(), AUGMENT, epoch=0)
    path = tmp_path / "pre.pt"
    save_checkpoint(path, {**source.state_dict(), "epoch": 1, "step": 2, "config": ""})
    target = make_step(init_from=str(path))
    for key, value in source.watermarker.state_dict().items():
        assert torch.equal(value, target.watermarker.state_dict()[key]), key
    assert not target.state.optimizer.state                               # optimizer starts fresh


def test_mismatched_checkpoint_is_refused_naming_the_module(tmp_path):
    path = tmp_path / "pre.pt"
    save_checkpoint(path, {**make_step(nbits=8).state_dict(), "epoch": 1, "step": 1, "config": ""})
    with pytest.raises(UserError, match=r"checkpoint does not fit this model: module (embedder|extractor)\.\w+"):
        make_step(nbits=16, init_from=str(path))


def test_adversarial_branch_steps_the_discriminator_from_disc_start():
    losses = WatermarkLosses(decoding=1.0, adversarial=0.5, disc_start=1, balanced=False)
    step = make_step(losses=losses, discriminator=PatchDiscriminator(ndf=8, n_layers=1))
    before = {k: v.clone() for k, v in step.state.discriminator.state_dict().items()}
    metrics = step.train_step(batch(), AUGMENT, epoch=0)                 # before disc_start: no adversarial terms
    assert "loss_adversarial" not in metrics and "loss_discriminator" not in metrics
    assert all(torch.equal(v, step.state.discriminator.state_dict()[k]) for k, v in before.items())
    metrics = step.train_step(batch(), AUGMENT, epoch=1)
    assert "loss_adversarial" in metrics and "loss_discriminator" in metrics
    assert any(not torch.equal(v, step.state.discriminator.state_dict()[k]) for k, v in before.items())
    state = step.state_dict()
    assert "discriminator" in state and "disc_optimizer" in state        # the reference forgot to save it


def test_adversarial_weight_needs_a_discriminator():
    with pytest.raises(ValueError, match="needs a discriminator"):
        Step(embedder=ConvEmbedder(nbits=8), extractor=ConvExtractor(nbits=8), optimizer=None,
             losses=WatermarkLosses(adversarial=0.1))


def test_gradient_accumulation_updates_every_n_micro_batches():
    step = make_step(grad_accum=2)
    weights = [p.clone() for p in step.watermarker.parameters()]
    step.train_step(batch(), AUGMENT, epoch=0)
    assert all(torch.equal(a, b) for a, b in zip(weights, step.watermarker.parameters()))
    step.train_step(batch(), AUGMENT, epoch=0)
    assert any(not torch.equal(a, b) for a, b in zip(weights, step.watermarker.parameters()))
