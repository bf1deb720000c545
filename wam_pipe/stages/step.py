"""The `step` stage: models, losses and optimizers, and one training step (embed, augment, extract, update)."""

from __future__ import annotations

from typing import Any, Literal, Optional

import torch

from wam_pipe.core.imaging import normalize_uint8
from wam_pipe.losses.terms import hinge_discriminator_loss
from wam_pipe.core.context import RunContext
from wam_pipe.core.precision import autocast_for
from wam_pipe.stages._step_setup import StepSetup, build_step_state
from wam_pipe.core.signature import signature_of
from wam_pipe.core.targets import import_target


class Step:
    """One training step of a localized watermarking model: embed, splice, augment, extract, update.

    Per batch: random 0/1 messages (one per watermark), `imgs_w = scaling_i * x + scaling_w * delta` (+ JND)
    for each watermark, spliced into the cover by its mask (optionally rolled to the next image), one augmentation
    (the augment stage), the extractor on the result, the active loss terms, one optimizer update (after
    `grad_accum` micro-batches). Metrics stay on the device; nothing here waits for the GPU.

    Args:
        embedder: the embedder model (`wam_pipe.models.vae_small`, `ConvEmbedder`, ...).
        extractor: the extractor model (`wam_pipe.models.sam_base`, `ConvExtractor`, ...); same nbits.
        optimizer: a `_partial_: true` optimizer (e.g. `torch.optim.AdamW`); gets embedder+extractor parameters.
        losses: `wam_pipe.losses.WatermarkLosses` (weights of the loss terms).
        scheduler: optional `_partial_: true` LR scheduler (e.g. `wam_pipe.optim.CosineWarmup`). Default none.
        scheduler_every: step the scheduler every "epoch" (the reference) or every optimizer "step".
        jnd: optional JND attenuation (`wam_pipe.models.jnd_1_3_blue`). Default none.
        scaling_w: watermark strength (reference pre-training 0.3, fine-tuning 2.0 with JND). Default 0.3.
        scaling_i: weight of the cover image in the blend. Default 1.0.
        img_size: processing size of the embedder and extractor (images are resized to it). Default 256.
        roll_probability: probability per batch of splicing each image's watermark into the next image. Default 0.
        temperature: divides the extractor logits before the losses. Default 1.0.
        discriminator: PatchGAN for the adversarial loss (only built when `losses.adversarial > 0`).
        disc_optimizer: `_partial_` optimizer of the discriminator; default: the same as `optimizer`.
        grad_clip: clip the global gradient norm to this value (0 = off). Default 0.
        grad_accum: micro-batches per optimizer update (DDP syncs gradients only on the last). Default 1.
        init_from: checkpoint whose model weights initialise this run (fine-tuning); optimizers start fresh.
        compile: `torch.compile` the embedder and extractor (the random augmentation stays outside the graphs).
        compile_mode: torch.compile mode (null, "reduce-overhead", "max-autotune"). Default null.
    """

    def __init__(self, embedder: Any, extractor: Any, optimizer: Any, losses: Any, scheduler: Any = None,
                 scheduler_every: Literal["epoch", "step"] = "epoch", jnd: Any = None, scaling_w: float = 0.3,
                 scaling_i: float = 1.0, img_size: int = 256, roll_probability: float = 0.0,
                 temperature: float = 1.0, discriminator: Any = None, disc_optimizer: Any = None,
                 grad_clip: float = 0.0, grad_accum: int = 1, init_from: Optional[str] = None,
                 compile: bool = False, compile_mode: Optional[str] = None):
        if getattr(embedder, "nbits", None) != getattr(extractor, "nbits", None):
            raise ValueError(f"embedder has nbits={getattr(embedder, 'nbits', None)} but extractor has "
                             f"nbits={getattr(extractor, 'nbits', None)}; set the same nbits on both")
        if losses.uses_discriminator and discriminator is None:
            raise ValueError("losses.adversarial > 0 needs a discriminator (e.g. wam_pipe.models.PatchDiscriminator)")
        if grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {grad_accum}")
        self.config = StepSetup(
            embedder=embedder, extractor=extractor, optimizer=optimizer, losses=losses, scheduler=scheduler,
            scheduler_every=scheduler_every, jnd=jnd, scaling_w=scaling_w, scaling_i=scaling_i, img_size=img_size,
            roll_probability=roll_probability, temperature=temperature, discriminator=discriminator,
            disc_optimizer=disc_optimizer, grad_clip=grad_clip, grad_accum=grad_accum, init_from=init_from,
            compile=compile, compile_mode=compile_mode)
        self.losses = losses
        self.state = None  # built by setup(): models on device, DDP wrappers, optimizers, scaler

    @classmethod
    def check_config(cls, node: dict) -> list[tuple[str, str]]:
        """Cheap cross-field checks for `wam-pipe validate` (before anything is built)."""
        def nbits_of(key: str) -> Any:
            child = node.get(key)
            if not isinstance(child, dict) or "_target_" not in child:
                return None
            if "nbits" in child:
                return child["nbits"]
            sig = signature_of(import_target(child["_target_"]))
            param = sig.params.get("nbits") if sig else None
            return None if param is None or param.required else param.default

        a, b = nbits_of("embedder"), nbits_of("extractor")
        if a is not None and b is not None and a != b:
            return [("extractor.nbits", f"embedder has nbits={a} but extractor has nbits={b}; they must match")]
        return []

    @property
    def watermarker(self) -> torch.nn.Module:
        """The (unwrapped) model: embedder + extractor + JND, what checkpoints store."""
        return self.state.model

    def setup(self, ctx: RunContext, epochs: int, steps_per_epoch: int, static_graph: bool | None = None,
              bucket_view: bool = True, channels_last: bool = False, fused_optimizer: bool | None = None,
              find_unused: bool = False) -> None:
        """Move models to the device, wrap in DDP, build optimizers, scheduler and scaler."""
        self.ctx = ctx
        self.state = build_step_state(self.config, ctx, epochs, steps_per_epoch, static_graph, bucket_view,
                                      channels_last, fused_optimizer, find_unused)
        self.micro_step = 0

    def train(self) -> None:
        self.state.model.train()
        if self.state.discriminator is not None:
            self.state.discriminator.train()

    def end_epoch(self) -> None:
        if self.state.scheduler is not None and self.config.scheduler_every == "epoch":
            self.state.scheduler.step()

    def current_lr(self) -> float:
        return float(self.state.optimizer.param_groups[0]["lr"])

    def train_step(self, batch: dict[str, Any], augment: Any, epoch: int) -> dict[str, torch.Tensor]:
        """One micro-batch: forward, losses, backward; an optimizer update every `grad_accum` micro-batches.

        Returns detached on-device metrics (losses, bit accuracy, detection IoU, PSNR); no host sync.
        """
        s, cfg = self.state, self.config
        device = self.ctx.device
        imgs = normalize_uint8(batch["images"].to(device, non_blocking=True))   # (B, 3, H, W) model space
        segm = batch["masks"].to(device, non_blocking=True)                      # (B, Ks, H, W) instance masks
        if augment is not None:
            imgs = augment.jitter(imgs)
            masks = augment.sample_masks(segm)                                     # (B, K, H, W) 0/1
        else:
            masks = torch.ones_like(imgs[:, :1])
        # The layout the models run in is run.channels_last's, whatever the loader delivered (a no-op when equal).
        imgs = imgs.contiguous(memory_format=torch.channels_last if s.channels_last else torch.contiguous_format)
        msgs = torch.randint(0, 2, (imgs.shape[0], masks.shape[1], s.model.nbits), device=device)  # (B, K, nbits)
        roll = bool(torch.rand(()) < cfg.roll_probability)                         # CPU RNG: no device sync
        update = (self.micro_step + 1) % cfg.grad_accum == 0
        adversarial = self.losses.adversarial_on(epoch)

        with s.sync_context(update), autocast_for(device, s.precision):
            out = s.forward(imgs, masks, msgs, augment, roll)
            # With roll, imgs_w holds image i+1's content inside the masks: the unwatermarked reference of the
            # perceptual loss, the discriminator and PSNR is the same splice of the covers (out["cover"]).
            cover = out["cover"]                                                   # (B, 3, H, W)
            preds = out["preds"] / cfg.temperature                                 # (B, 1+nbits, h, w)
            fake_logits = s.discriminator_forward(out["imgs_w"]) if adversarial else None
            terms = self.losses.terms(cover, out["imgs_w"], preds, out["msgs"], out["masks"], fake_logits)
        total, scales = self.losses.combine(terms, s.last_layer, s.grad_scale())
        s.scaler.scale(total / cfg.grad_accum).backward()
        # The discriminator's backward comes before the update, so that one GradScaler update covers both steps.
        disc_loss = self._discriminator_backward(cover, out["imgs_w"], update) if adversarial else None
        grad_norm = s.optimizer_step(discriminator=adversarial) if update else None
        self.micro_step += 1
        return s.step_metrics(terms, scales, total, out, preds, cover, update, grad_norm, disc_loss)

    def _discriminator_backward(self, real: torch.Tensor, fake: torch.Tensor, update: bool) -> torch.Tensor:
        """Hinge loss of the discriminator on real (unwatermarked) and fake (watermarked) images, backward with
        the fp16 loss scale; its optimizer steps in `optimizer_step`."""
        s = self.state
        with s.disc_sync_context(update), autocast_for(self.ctx.device, s.precision):
            loss = hinge_discriminator_loss(*s.discriminator_real_fake(real.detach(), fake.detach()))
        s.scaler.scale(loss / self.config.grad_accum).backward()
        return loss.detach()

    def state_dict(self) -> dict[str, Any]:
        return self.state.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.state.load_state_dict(state)

