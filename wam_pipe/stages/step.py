"""The `step` stage: models, losses and optimizers, and one training step (embed, augment, extract, update).

Shaped like a torchtune recipe: `Step(...)` only stores its config (the YAML keys); `setup(ctx, settings)` builds
the run-time state in order (`_setup_model`, `_setup_ddp`, `_setup_optimizers`, `_setup_scheduler`); then the loop
calls `train_step` per micro-batch (which calls `optimizer_step` every `grad_accum` micro-batches), `end_epoch`,
and `state_dict`/`load_state_dict` for checkpoints. The differentiable part of a step is one module, `TrainForward`
(stages/train_forward.py), because DDP prepares gradient reduction only when its wrapped module's `forward` runs.
"""

from __future__ import annotations

import contextlib
import inspect
import types
from typing import Any, Literal, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from wam_pipe.core.context import RunContext
from wam_pipe.core.errors import UserError
from wam_pipe.core.imaging import normalize_uint8
from wam_pipe.core.metrics import bit_accuracy_counts, detection_stats, psnr
from wam_pipe.core.precision import autocast_for
from wam_pipe.core.settings import RunSettings
from wam_pipe.core.signature import signature_of
from wam_pipe.core.targets import import_target
from wam_pipe.losses.terms import hinge_discriminator_loss
from wam_pipe.models import Watermarker
from wam_pipe.models.checks import nbits_mismatch
from wam_pipe.models.reference_layout import load_init_weights
from wam_pipe.core.checkpoint import load_model_weights
from wam_pipe.stages.train_forward import TrainForward

_DDP_PARAMETERS = set(inspect.signature(DDP.__init__).parameters)


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

    # The `run:` keys `setup` reads (besides epochs and steps_per_epoch); a step built with other values differs.
    RUN_SETTINGS = ("channels_last", "fused_optimizer", "ddp_static_graph", "ddp_bucket_view", "ddp_find_unused")

    def __init__(self, embedder: Any, extractor: Any, optimizer: Any, losses: Any, scheduler: Any = None,
                 scheduler_every: Literal["epoch", "step"] = "epoch", jnd: Any = None, scaling_w: float = 0.3,
                 scaling_i: float = 1.0, img_size: int = 256, roll_probability: float = 0.0,
                 temperature: float = 1.0, discriminator: Any = None, disc_optimizer: Any = None,
                 grad_clip: float = 0.0, grad_accum: int = 1, init_from: Optional[str] = None,
                 compile: bool = False, compile_mode: Optional[str] = None):
        # The config, as given: the arguments by name (`locals()` holds exactly them here), so that each one is
        # written once in the signature and once in the docstring above. Nothing is built before `setup`.
        self.cfg = types.SimpleNamespace(**{k: v for k, v in locals().items() if k not in ("self", "__class__")})
        embedder_nbits, extractor_nbits = getattr(embedder, "nbits", None), getattr(extractor, "nbits", None)
        if nbits_mismatch(embedder_nbits, extractor_nbits):
            raise ValueError(f"embedder has nbits={embedder_nbits} but extractor has nbits={extractor_nbits}; set "
                             f"the same nbits on both")
        if losses.uses_discriminator and discriminator is None:
            raise ValueError("losses.adversarial > 0 needs a discriminator (e.g. wam_pipe.models.PatchDiscriminator)")
        if grad_accum < 1:
            raise ValueError(f"grad_accum must be >= 1, got {grad_accum}")
        self.model = None  # built by setup()

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
        if nbits_mismatch(a, b):
            return [("extractor.nbits", f"embedder has nbits={a} but extractor has nbits={b}; they must match")]
        return []

    # --- setup --------------------------------------------------------------------------------------------------
    def setup(self, ctx: RunContext, settings: RunSettings) -> None:
        """Build the run-time state: models on the device, DDP wrappers, optimizers and scaler, scheduler.

        Reads from `settings` (the pipeline's `run:` block, `wam_pipe.core.settings.RunSettings`): `epochs` and
        `steps_per_epoch` (the steps of one epoch as the loop runs them: the runner resolves null to the loader's
        count) for the scheduler, and the `RUN_SETTINGS` keys. The precision and device come from `ctx`.
        """
        self.ctx, self.precision, self.channels_last = ctx, ctx.precision, settings.channels_last
        self._setup_model(ctx, settings)
        self._setup_ddp(ctx, settings)
        self._setup_optimizers(ctx, settings)
        self._setup_scheduler(settings)
        self.micro_step = 0

    def _setup_model(self, ctx: RunContext, settings: RunSettings) -> None:
        """The Watermarker (weights from `init_from`), on the device, in the run's memory layout, compiled if asked;
        the discriminator on the device when the adversarial loss is on."""
        cfg = self.cfg
        self.model = Watermarker(cfg.embedder, cfg.extractor, jnd=cfg.jnd, scaling_w=cfg.scaling_w,
                                 scaling_i=cfg.scaling_i, img_size=cfg.img_size)
        if cfg.init_from:
            load_model_weights(self.model, load_init_weights(cfg.init_from, self.model), cfg.init_from)
        self.model.to(ctx.device)
        if settings.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if cfg.compile:
            # In-place `nn.Module.compile` keeps parameter names (and so checkpoints) unchanged.
            for module in (self.model.embedder, self.model.extractor):
                module.compile(**({"mode": cfg.compile_mode} if cfg.compile_mode else {}))
        self.last_layer = self.model.embedder.last_layer() if cfg.losses.balanced else None
        self.discriminator = cfg.discriminator.to(ctx.device) if cfg.losses.uses_discriminator else None

    def _setup_ddp(self, ctx: RunContext, settings: RunSettings) -> None:
        """`model_ddp` (the one training forward) and `disc_ddp`: DDP-wrapped when distributed, else unwrapped."""
        balanced, grad_accum = bool(getattr(self.cfg.losses, "balanced", False)), self.cfg.grad_accum
        static_graph = settings.ddp_static_graph
        if static_graph and ctx.distributed and (grad_accum > 1 or balanced):
            # Both break DDP's static graph silently: after the first update the ranks stop all-reducing and drift
            # apart. no_sync() (pytorch/pytorch#143580); the balanced loss's autograd.grad calls through DDP's output
            # before backward count as extra backward passes (tests/runner/test_ddp.py shows the drift).
            why = f"step.grad_accum: {grad_accum}" if grad_accum > 1 else "step.losses.balanced: true"
            raise UserError(f"run.ddp_static_graph: true does not work with {why} under DDP (the ranks stop "
                            f"all-reducing after the first update); set run.ddp_static_graph: null")
        if static_graph is None:
            # The set of parameters used never changes between steps (K watermarks only repeat the embedder, the
            # discriminator has its own DDP), but no_sync and the balancing gradients need the dynamic graph.
            static_graph = grad_accum == 1 and not balanced
        self.model_ddp = _wrap_ddp(TrainForward(self.model), ctx, settings, static_graph)
        self.disc_ddp = (_wrap_ddp(self.discriminator, ctx, settings, static_graph)
                         if self.discriminator is not None else None)
        # With bucket views, zeroing keeps each gradient aliased to its all-reduce bucket; freeing it (set_to_none)
        # would make the next backward allocate a fresh gradient and DDP copy it into the bucket again.
        self.grads_to_none = not (isinstance(self.model_ddp, DDP) and settings.ddp_bucket_view)

    def _setup_optimizers(self, ctx: RunContext, settings: RunSettings) -> None:
        """The model's and the discriminator's optimizers (fused when `run.fused_optimizer` says so) and the
        GradScaler (enabled for fp16) that both step through."""
        cfg, fused = self.cfg, settings.fused_optimizer
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = cfg.optimizer(params, **_optimizer_kwargs(cfg.optimizer, ctx.device, fused))
        self.disc_optimizer = None
        if self.discriminator is not None:
            disc_partial = cfg.disc_optimizer or cfg.optimizer
            self.disc_optimizer = disc_partial(list(self.discriminator.parameters()),
                                               **_optimizer_kwargs(disc_partial, ctx.device, fused))
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.precision == "fp16")
        if self.scaler.is_enabled():
            # The scale tensor is created lazily by the first scale(); the balanced loss reads it (_grad_scale())
            # before that, so create it now, on the device.
            self.scaler.scale(torch.zeros((), device=ctx.device))

    def _setup_scheduler(self, settings: RunSettings) -> None:
        """The LR scheduler; a `CosineWarmup` without `total` gets the run's length in its own unit."""
        cfg = self.cfg
        self.scheduler = cfg.scheduler(self.optimizer) if cfg.scheduler is not None else None
        if self.scheduler is not None and getattr(self.scheduler, "total", 0) is None:
            updates_per_epoch = max(1, settings.steps_per_epoch // cfg.grad_accum)
            self.scheduler.total = (settings.epochs if cfg.scheduler_every == "epoch"
                                    else settings.epochs * updates_per_epoch)

    # --- the loop's calls ---------------------------------------------------------------------------------------
    @property
    def watermarker(self) -> torch.nn.Module:
        """The (unwrapped) model: embedder + extractor + JND, what checkpoints store."""
        return self.model

    def train(self) -> None:
        self.model.train()
        if self.discriminator is not None:
            self.discriminator.train()

    def end_epoch(self) -> None:
        if self.scheduler is not None and self.cfg.scheduler_every == "epoch":
            self.scheduler.step()

    def current_lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def train_step(self, batch: dict[str, Any], augment: Any, epoch: int) -> dict[str, torch.Tensor]:
        """One micro-batch: forward, losses, backward; an optimizer update every `grad_accum` micro-batches.

        Returns detached on-device metrics (losses, bit accuracy, detection IoU, PSNR); no host sync.
        """
        cfg, losses, device = self.cfg, self.cfg.losses, self.ctx.device
        imgs = normalize_uint8(batch["images"].to(device, non_blocking=True))   # (B, 3, H, W) model space
        segm = batch["masks"].to(device, non_blocking=True)                      # (B, Ks, H, W) instance masks
        if augment is not None:
            imgs = augment.jitter(imgs)
            masks = augment.sample_masks(segm)                                     # (B, K, H, W) 0/1
        else:
            masks = torch.ones_like(imgs[:, :1])
        # The layout the models run in is run.channels_last's, whatever the loader delivered (a no-op when equal).
        imgs = imgs.contiguous(memory_format=torch.channels_last if self.channels_last else torch.contiguous_format)
        msgs = torch.randint(0, 2, (imgs.shape[0], masks.shape[1], self.model.nbits), device=device)  # (B, K, nbits)
        roll = bool(torch.rand(()) < cfg.roll_probability)                         # CPU RNG: no device sync
        update = (self.micro_step + 1) % cfg.grad_accum == 0
        adversarial = losses.adversarial_on(epoch)

        with _sync_context(self.model_ddp, update), autocast_for(device, self.precision):
            out = self.model_ddp(imgs, masks, msgs, augment, roll)
            # With roll, imgs_w holds image i+1's content inside the masks: the unwatermarked reference of the
            # perceptual loss, the discriminator and PSNR is the same splice of the covers (out["cover"]).
            cover = out["cover"]                                                   # (B, 3, H, W)
            preds = out["preds"] / cfg.temperature                                 # (B, 1+nbits, h, w)
            fake_logits = self._discriminator_logits(out["imgs_w"]) if adversarial else None
            terms = losses.terms(cover, out["imgs_w"], preds, out["msgs"], out["masks"], fake_logits)
        total, scales = losses.combine(terms, self.last_layer, self._grad_scale())
        self.scaler.scale(total / cfg.grad_accum).backward()
        # The discriminator's backward comes before the update, so that one GradScaler update covers both steps.
        disc_loss = self._discriminator_backward(cover, out["imgs_w"], update) if adversarial else None
        grad_norm = self.optimizer_step(discriminator=adversarial) if update else None
        self.micro_step += 1
        return self._metrics(terms, scales, total, out, preds, cover, grad_norm, disc_loss)

    def optimizer_step(self, discriminator: bool = False) -> torch.Tensor | None:
        """Unscale, clip, step, zero the gradients, step a per-iteration scheduler. Returns the grad norm.

        With `discriminator`, the discriminator's optimizer steps too, through the same GradScaler: its loss was
        scaled like the model's, so `scaler.step` unscales its gradients and skips its update when they hold
        inf/NaN, and the one `scaler.update()` of the iteration sees both optimizers' inf checks.
        """
        grad_norm = None
        if self.cfg.grad_clip > 0:
            self.scaler.unscale_(self.optimizer)
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.scaler.step(self.optimizer)
        if discriminator:
            self.scaler.step(self.disc_optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=self.grads_to_none)
        if discriminator:
            self.disc_optimizer.zero_grad(set_to_none=self.grads_to_none)
        if self.scheduler is not None and self.cfg.scheduler_every == "step":
            self.scheduler.step()
        return grad_norm

    @torch.no_grad()
    def _metrics(self, terms: dict[str, torch.Tensor], scales: dict[str, torch.Tensor], total: torch.Tensor,
                 out: dict[str, torch.Tensor], preds: torch.Tensor, cover: torch.Tensor,
                 grad_norm: torch.Tensor | None, disc_loss: torch.Tensor | None) -> dict[str, tuple]:
        """On-device metrics as name -> (sum, count); averages over many steps are sum(sums) / sum(counts)."""
        one = total.new_ones(())
        metrics: dict[str, tuple] = {"loss": (total.detach().float(), one)}
        metrics.update({name: (value, one) for name, value in self.cfg.losses.metrics(terms, scales).items()})
        metrics["bit_acc"] = bit_accuracy_counts(preds[:, 1:], out["msgs"], out["masks"])
        stats = detection_stats(preds[:, 0], out["masks"].amax(dim=1))
        for name in ("acc", "iou_0", "iou_1", "miou"):
            metrics[name] = (stats[name].sum(), one * stats[name].numel())
        # PSNR of the images that carry a watermark (an untouched image has infinite PSNR and would skew the mean).
        marked = out["marked"].float()                                          # (B,)
        image_psnr = torch.nan_to_num(psnr(out["imgs_w"], cover), posinf=0.0)
        metrics["psnr"] = ((image_psnr * marked).sum(), marked.sum())
        if grad_norm is not None:
            metrics["grad_norm"] = (grad_norm.detach().float(), one)
        if disc_loss is not None:
            metrics["loss_discriminator"] = (disc_loss.float(), one)
        return metrics

    def _grad_scale(self) -> torch.Tensor | float:
        """The fp16 loss scale as a device tensor (reading it as a float would sync), 1.0 otherwise."""
        return self.scaler._get_scale_async() if self.scaler.is_enabled() else 1.0

    def _discriminator_logits(self, imgs_w: torch.Tensor) -> torch.Tensor:
        """Discriminator logits for the generator loss: gradients reach imgs_w, never the discriminator's weights."""
        for p in self.discriminator.parameters():
            p.requires_grad_(False)
        try:
            return self.discriminator(imgs_w)
        finally:
            for p in self.discriminator.parameters():
                p.requires_grad_(True)

    def _discriminator_backward(self, real: torch.Tensor, fake: torch.Tensor, update: bool) -> torch.Tensor:
        """Hinge loss of the discriminator on real (unwatermarked) and fake (watermarked) images, backward with
        the fp16 loss scale; its optimizer steps in `optimizer_step`.

        Real and fake go through one forward of the (DDP-wrapped) discriminator: DDP's reducer expects one forward
        per backward, and one larger batch is faster. The PatchGAN's GroupNorm is per image, so the logits equal
        those of two separate calls.
        """
        real, fake = real.detach(), fake.detach()
        with _sync_context(self.disc_ddp, update), autocast_for(self.ctx.device, self.precision):
            logits = self.disc_ddp(torch.cat([real, fake]))                       # (2B, 1, h, w)
            loss = hinge_discriminator_loss(logits[: real.shape[0]], logits[real.shape[0] :])
        self.scaler.scale(loss / self.cfg.grad_accum).backward()
        return loss.detach()

    # --- checkpoints --------------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scaler": self.scaler.state_dict()}
        if self.scheduler is not None:
            state["scheduler"] = self.scheduler.state_dict()
        if self.discriminator is not None:
            state["discriminator"] = self.discriminator.state_dict()
            state["disc_optimizer"] = self.disc_optimizer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        load_model_weights(self.model, state["model"], source)
        self.optimizer.load_state_dict(state["optimizer"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.scheduler is not None and "scheduler" in state:
            self.scheduler.load_state_dict(state["scheduler"])
        if self.discriminator is not None and "discriminator" in state:
            self.discriminator.load_state_dict(state["discriminator"])
            self.disc_optimizer.load_state_dict(state["disc_optimizer"])


def _wrap_ddp(module: nn.Module, ctx: RunContext, settings: RunSettings, static_graph: bool) -> nn.Module:
    if not ctx.distributed:
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # No buffer broadcast before each forward: the only buffers are JND's constant kernels, identical on every rank.
    # torch >= 2.13 names this `forward_sync_buffers` (and deprecates `broadcast_buffers`).
    no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in _DDP_PARAMETERS
                      else {"broadcast_buffers": False})
    return DDP(module, device_ids=device_ids, find_unused_parameters=settings.ddp_find_unused,
               gradient_as_bucket_view=settings.ddp_bucket_view, static_graph=static_graph, **no_buffer_sync)


def _sync_context(module: nn.Module | None, update: bool) -> contextlib.AbstractContextManager:
    """DDP all-reduces gradients only on the micro-batch that updates (gradient accumulation)."""
    if update or not isinstance(module, DDP):
        return contextlib.nullcontext()
    return module.no_sync()


def _optimizer_kwargs(partial: Any, device: torch.device, fused: Optional[bool]) -> dict[str, Any]:
    """`{"fused": True}` when `run.fused_optimizer` asks for it (true) or allows it (null, on CUDA), else `{}`.

    The fused kernels update every parameter in one launch, and with a GradScaler they take the inf/NaN flag as a
    device tensor, so an fp16 step no longer reads it back to the host (`GradScaler.step` syncs otherwise).
    """
    keywords = getattr(partial, "keywords", None) or {}
    if fused is False or "fused" in keywords or keywords.get("foreach"):
        return {}  # the optimizer's own config decides
    target = getattr(partial, "func", partial)
    try:
        has_fused = "fused" in inspect.signature(target).parameters
    except (TypeError, ValueError):
        has_fused = False
    if fused is None:
        return {"fused": True} if has_fused and device.type == "cuda" else {}
    if not has_fused:
        name = getattr(target, "__qualname__", repr(target))
        raise UserError(f"run.fused_optimizer: true, but {name} has no fused implementation; use AdamW/Adam/SGD or "
                        f"set run.fused_optimizer: null")
    return {"fused": True}
