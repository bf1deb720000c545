"""The step stage on its own: cross-field validation, weights-only init, refusal of mismatched checkpoints,
the adversarial branch (discriminator stepped and checkpointed, `disc_start` respected, stepped through the fp16
GradScaler), the rolled reference image, multi-watermark splicing."""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from wam_pipe.augment import Identity, MaskSampler
from wam_pipe.config import compose
from wam_pipe.core.errors import ConfigError, UserError
from wam_pipe.losses import WatermarkLosses
from wam_pipe.models import ConvEmbedder, ConvExtractor, PatchDiscriminator
from wam_pipe.core.checkpoint import save_checkpoint
from wam_pipe.core.context import RunContext
from wam_pipe.core.settings import RunSettings
from wam_pipe.stages import Augment, Step
from wam_pipe.stages.train_forward import TrainForward

SIZE = 32



def make_step(nbits: int = 8, precision: str = "fp32", **kw) -> Step:
    defaults = dict(embedder=ConvEmbedder(nbits=nbits, channels=8), extractor=ConvExtractor(nbits=nbits, channels=8),
                    optimizer=functools.partial(torch.optim.AdamW, lr=1e-3),
                    losses=WatermarkLosses(decoding=1.0, balanced=False), img_size=SIZE)
    defaults.update(kw)
    step = Step(**defaults)
    step.setup(RunContext(run_dir=Path("."), log=lambda m: None, precision=precision),
               RunSettings(epochs=2, steps_per_epoch=4))
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
  load: {_target_: wam_pipe.stages.Load, shards: unused}
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
    assert not target.optimizer.state                               # optimizer starts fresh


def test_mismatched_checkpoint_is_refused_naming_the_module(tmp_path):
    path = tmp_path / "pre.pt"
    save_checkpoint(path, {**make_step(nbits=8).state_dict(), "epoch": 1, "step": 1, "config": ""})
    with pytest.raises(UserError, match=r"checkpoint does not fit this model: module (embedder|extractor)\.\w+"):
        make_step(nbits=16, init_from=str(path))


def test_adversarial_branch_steps_the_discriminator_from_disc_start():
    losses = WatermarkLosses(decoding=1.0, adversarial=0.5, disc_start=1, balanced=False)
    step = make_step(losses=losses, discriminator=PatchDiscriminator(ndf=8, n_layers=1))
    before = {k: v.clone() for k, v in step.discriminator.state_dict().items()}
    metrics = step.train_step(batch(), AUGMENT, epoch=0)                 # before disc_start: no adversarial terms
    assert "loss_adversarial" not in metrics and "loss_discriminator" not in metrics
    assert all(torch.equal(v, step.discriminator.state_dict()[k]) for k, v in before.items())
    metrics = step.train_step(batch(), AUGMENT, epoch=1)
    assert "loss_adversarial" in metrics and "loss_discriminator" in metrics
    assert any(not torch.equal(v, step.discriminator.state_dict()[k]) for k, v in before.items())
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


def _disc_update(precision: str) -> list[torch.Tensor]:
    """The change of the discriminator's weights in one step (plain SGD: the update is lr x gradient)."""
    torch.manual_seed(0)
    step = make_step(precision=precision, losses=WatermarkLosses(decoding=1.0, adversarial=0.5, balanced=False),
                     discriminator=PatchDiscriminator(ndf=8, n_layers=1),
                     disc_optimizer=functools.partial(torch.optim.SGD, lr=1e-3))
    assert step.scaler.is_enabled() is (precision == "fp16")
    before = [p.detach().clone() for p in step.discriminator.parameters()]
    torch.manual_seed(1)
    step.train_step(batch(), AUGMENT, epoch=0)
    return [p.detach() - b for p, b in zip(step.discriminator.parameters(), before)]


def test_fp16_discriminator_update_is_unscaled():
    """With fp16 the discriminator's loss is scaled (x65536) like the model's; its step must unscale it."""
    fp32 = torch.cat([d.flatten() for d in _disc_update("fp32")])
    fp16 = torch.cat([d.flatten() for d in _disc_update("fp16")])
    assert fp32.norm() > 0
    # The same update up to fp16 rounding of the activations (unscaled it would be 65536 times larger).
    assert (fp16 - fp32).norm() <= 0.1 * fp32.norm()
    assert abs(fp16.norm() / fp32.norm() - 1) < 0.05


def test_fp16_overflow_skips_both_updates_and_backs_off_once():
    """Inf gradients: the GradScaler skips the model's and the discriminator's step, and its one update per
    iteration halves the scale once."""
    step = make_step(precision="fp16", losses=WatermarkLosses(decoding=1.0, adversarial=0.5, balanced=False),
                     discriminator=PatchDiscriminator(ndf=8, n_layers=1))
    scaler = step.scaler
    scaler.update(2.0**100)                                               # fp16 gradients overflow at this scale
    model = [p.detach().clone() for p in step.watermarker.parameters()]
    disc = [p.detach().clone() for p in step.discriminator.parameters()]
    step.train_step(batch(), AUGMENT, epoch=0)
    assert scaler.get_scale() == 2.0**99
    assert all(torch.equal(a, b) for a, b in zip(disc, step.discriminator.parameters()))
    assert all(torch.equal(a, b) for a, b in zip(model, step.watermarker.parameters()))
    step.train_step(batch(), AUGMENT, epoch=0)                            # and training goes on


def test_roll_compares_the_watermarked_splice_with_the_same_splice_of_covers():
    """With roll, image i holds image i+1's pixels inside the mask: the perceptual loss and PSNR must compare it
    with that splice of the covers, not with cover i (a near-invisible watermark scores ~0 and a high PSNR)."""
    boxes = Augment(masks=MaskSampler(full=0.0, box=1.0, irregular=0.0, segm=0.0, invert_proba=0.0),
                    augs={"identity": Identity()})
    for roll in (0.0, 1.0):
        torch.manual_seed(0)
        step = make_step(scaling_w=1e-4, roll_probability=roll, optimizer=functools.partial(torch.optim.SGD, lr=0.0),
                         losses=WatermarkLosses(decoding=1.0, perceptual=1.0, balanced=False))
        metrics = step.train_step(batch(), boxes, epoch=0)
        psnr = (metrics["psnr"][0] / metrics["psnr"][1]).item()
        assert metrics["loss_perceptual"][0].item() < 1e-7 and psnr > 80, (roll, psnr)


class _Painter(torch.nn.Module):
    """A stand-in watermarker: `embed` paints the message's bits, read as a number, over the whole image."""

    nbits = 4

    def embed(self, imgs: torch.Tensor, msgs: torch.Tensor) -> torch.Tensor:
        value = (msgs.float() * 2.0 ** torch.arange(self.nbits)).sum(-1)  # (B,)
        return value.view(-1, 1, 1, 1).expand_as(imgs)

    def detect(self, imgs: torch.Tensor) -> torch.Tensor:
        return imgs.new_zeros(imgs.shape[0], 1 + self.nbits, *imgs.shape[-2:])


def test_multi_watermark_masks_say_where_each_watermark_ends_up():
    """Overlapping COCO instances as K = 3 watermarks: after splicing, pixel p shows watermark k exactly where
    mask channel k is 1, and the cover where no channel is, with and without roll."""
    segm = torch.zeros(2, 3, SIZE, SIZE, dtype=torch.uint8)
    segm[:, 0, 0:20, 0:20] = 1
    segm[:, 1, 10:30, 10:30] = 1
    segm[1, 2, 15:25, :] = 1
    masks = MaskSampler(segm=1.0, full=0.0, box=0.0, irregular=0.0, multiple=True, max_watermarks=3)(segm)
    codes = torch.tensor([[1, 0, 0, 0], [0, 1, 0, 0], [1, 1, 0, 0]])      # watermark k paints the value k + 1
    msgs = codes.expand(2, -1, -1)                                         # (B, K, nbits)
    imgs = torch.full((2, 3, SIZE, SIZE), -1.0)
    imgs[1] = -2.0
    for roll in (False, True):
        out = TrainForward(_Painter())(imgs, masks, msgs, None, roll)
        shown = out["masks"]                                               # (B, K, H, W): rolled with the images
        painted = out["imgs_w"][:, 0]                                      # (B, H, W)
        expected = out["cover"][:, 0].clone()
        for k in range(3):
            expected = torch.where(shown[:, k] > 0, float(k + 1), expected)
        assert shown.sum(dim=1).max() == 1 and torch.equal(painted, expected), roll
        host = imgs.roll(-1, dims=0) if roll else imgs
        union = shown.amax(dim=1, keepdim=True)
        assert torch.equal(out["cover"], imgs * (1 - union) + host * union)

