"""Building the step's run-time state (device placement, DDP, optimizers, scaler) and its per-step bookkeeping."""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
from typing import Any, Optional

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from wam_pipe.core.errors import UserError
from wam_pipe.core.metrics import bit_accuracy_counts, detection_stats, psnr
from wam_pipe.runner.checkpoint import load_checkpoint, load_init_weights, load_model_weights
from wam_pipe.core.context import RunContext
from wam_pipe.stages._train_forward import TrainForward


@dataclasses.dataclass
class StepSetup:
    """The step stage's constructor arguments (see `wam_pipe.stages.Step` for their meaning)."""

    embedder: Any
    extractor: Any
    optimizer: Any
    losses: Any
    scheduler: Any
    scheduler_every: str
    jnd: Any
    scaling_w: float
    scaling_i: float
    img_size: int
    roll_probability: float
    temperature: float
    discriminator: Any
    disc_optimizer: Any
    grad_clip: float
    grad_accum: int
    init_from: Optional[str]
    compile: bool
    compile_mode: Optional[str]


_DDP_PARAMETERS = set(inspect.signature(DDP.__init__).parameters)


def _wrap_ddp(module: nn.Module, ctx: RunContext, static_graph: bool, bucket_view: bool,
              find_unused: bool = False) -> nn.Module:
    if not ctx.distributed:
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    # No buffer broadcast before each forward: the only buffers are JND's constant kernels, identical on every rank.
    # torch >= 2.13 names this `forward_sync_buffers` (and deprecates `broadcast_buffers`).
    no_buffer_sync = ({"forward_sync_buffers": False} if "forward_sync_buffers" in _DDP_PARAMETERS
                      else {"broadcast_buffers": False})
    return DDP(module, device_ids=device_ids, find_unused_parameters=find_unused,
               gradient_as_bucket_view=bucket_view, static_graph=static_graph, **no_buffer_sync)


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


def _build_scheduler(cfg: StepSetup, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int) -> Any:
    if cfg.scheduler is None:
        return None
    scheduler = cfg.scheduler(optimizer)
    if getattr(scheduler, "total", 0) is None:  # CosineWarmup left `total` to us
        updates_per_epoch = max(1, steps_per_epoch // cfg.grad_accum)
        scheduler.total = epochs if cfg.scheduler_every == "epoch" else epochs * updates_per_epoch
    return scheduler


class StepState:
    """Everything `Step.setup` builds; the step stage reads and updates it once per micro-batch."""

    def __init__(self, cfg: StepSetup, ctx: RunContext, model: nn.Module, static_graph: bool, bucket_view: bool,
                 channels_last: bool, epochs: int, steps_per_epoch: int, fused_optimizer: Optional[bool] = None,
                 find_unused: bool = False):
        self.cfg, self.ctx, self.model = cfg, ctx, model
        self.precision = ctx.precision
        self.channels_last = channels_last
        self.forward = _wrap_ddp(TrainForward(model), ctx, static_graph, bucket_view, find_unused)
        # With bucket views, zeroing keeps each gradient aliased to its all-reduce bucket; freeing it (set_to_none)
        # would make the next backward allocate a fresh gradient and DDP copy it into the bucket again.
        self.grads_to_none = not (isinstance(self.forward, DDP) and bucket_view)
        params = [p for p in model.parameters() if p.requires_grad]
        self.optimizer = cfg.optimizer(params, **_optimizer_kwargs(cfg.optimizer, ctx.device, fused_optimizer))
        self.scheduler = _build_scheduler(cfg, self.optimizer, epochs, steps_per_epoch)
        self.scaler = torch.amp.GradScaler(ctx.device.type, enabled=self.precision == "fp16")
        if self.scaler.is_enabled():
            # The scale tensor is created lazily by the first scale(); the balanced loss reads it (grad_scale())
            # before that, so create it now, on the device.
            self.scaler.scale(torch.zeros((), device=ctx.device))
        self.last_layer = model.embedder.last_layer() if cfg.losses.balanced else None
        self.discriminator = self.disc_ddp = self.disc_optimizer = None
        if cfg.losses.uses_discriminator:
            self.discriminator = cfg.discriminator.to(ctx.device)
            self.disc_ddp = _wrap_ddp(self.discriminator, ctx, static_graph, bucket_view, find_unused)
            disc_partial = cfg.disc_optimizer or cfg.optimizer
            self.disc_optimizer = disc_partial([p for p in self.discriminator.parameters()],
                                               **_optimizer_kwargs(disc_partial, ctx.device, fused_optimizer))

    # --- contexts -------------------------------------------------------------------------------------------
    def sync_context(self, update: bool) -> contextlib.AbstractContextManager:
        """DDP all-reduces gradients only on the micro-batch that updates (gradient accumulation)."""
        if update or not isinstance(self.forward, DDP):
            return contextlib.nullcontext()
        return self.forward.no_sync()

    def disc_sync_context(self, update: bool) -> contextlib.AbstractContextManager:
        if update or not isinstance(self.disc_ddp, DDP):
            return contextlib.nullcontext()
        return self.disc_ddp.no_sync()

    def grad_scale(self) -> torch.Tensor | float:
        """The fp16 loss scale as a device tensor (reading it as a float would sync), 1.0 otherwise."""
        return self.scaler._get_scale_async() if self.scaler.is_enabled() else 1.0

    # --- forward pieces -------------------------------------------------------------------------------------
    def discriminator_forward(self, imgs_w: torch.Tensor) -> torch.Tensor:
        """Discriminator logits for the generator loss: gradients reach imgs_w, never the discriminator's weights."""
        for p in self.discriminator.parameters():
            p.requires_grad_(False)
        try:
            return self.discriminator(imgs_w)
        finally:
            for p in self.discriminator.parameters():
                p.requires_grad_(True)

    def discriminator_real_fake(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Discriminator logits of real and fake images in one forward of the (DDP-wrapped) discriminator.

        One call per step gives DDP's reducer the one forward per backward it expects, and one larger batch is
        faster. The PatchGAN's GroupNorm is per image, so the logits equal those of two separate calls.
        """
        logits = self.disc_ddp(torch.cat([real, fake]))                                  # (2B, 1, h, w)
        return logits[: real.shape[0]], logits[real.shape[0] :]

    # --- updates --------------------------------------------------------------------------------------------
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

    # --- metrics --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def step_metrics(self, terms: dict[str, torch.Tensor], scales: dict[str, torch.Tensor], total: torch.Tensor,
                     out: dict[str, torch.Tensor], preds: torch.Tensor, imgs: torch.Tensor, update: bool,
                     grad_norm: torch.Tensor | None, disc_loss: torch.Tensor | None) -> dict[str, tuple]:
        """On-device metrics as name -> (sum, count); averages over many steps are sum(sums) / sum(counts)."""
        one = total.new_ones(())
        metrics: dict[str, tuple] = {"loss": (total.detach().float(), one)}
        for name in ("detection", "decoding", "perceptual", "adversarial"):
            if name in terms:
                metrics[f"loss_{name}"] = (terms[name].detach().float(), one)
                if self.cfg.losses.balanced:
                    metrics[f"scale_{name}"] = (scales[name].float(), one)
        metrics["bit_acc"] = bit_accuracy_counts(preds[:, 1:], out["msgs"], out["masks"])
        stats = detection_stats(preds[:, 0], out["masks"].amax(dim=1))
        for name in ("acc", "iou_0", "iou_1", "miou"):
            metrics[name] = (stats[name].sum(), one * stats[name].numel())
        # PSNR of the images that carry a watermark (an untouched image has infinite PSNR and would skew the mean).
        marked = out["marked"].float()                                          # (B,)
        image_psnr = torch.nan_to_num(psnr(out["imgs_w"], imgs), posinf=0.0)
        metrics["psnr"] = ((image_psnr * marked).sum(), marked.sum())
        if grad_norm is not None:
            metrics["grad_norm"] = (grad_norm.detach().float(), one)
        if disc_loss is not None:
            metrics["loss_discriminator"] = (disc_loss.float(), one)
        return metrics

    # --- checkpoints ----------------------------------------------------------------------------------------
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


def _compile(module: nn.Module, mode: Optional[str]) -> None:
    """In-place `nn.Module.compile` keeps parameter names (and so checkpoints) unchanged."""
    kwargs = {"mode": mode} if mode else {}
    module.compile(**kwargs)


def build_step_state(cfg: StepSetup, ctx: RunContext, epochs: int, steps_per_epoch: int,
                     static_graph: bool | None, bucket_view: bool, channels_last: bool,
                     fused_optimizer: Optional[bool] = None, find_unused: bool = False) -> StepState:
    from wam_pipe.models import Watermarker

    balanced = bool(getattr(cfg.losses, "balanced", False))
    if static_graph and ctx.distributed and (cfg.grad_accum > 1 or balanced):
        # Both break DDP's static graph silently: after the first update the ranks stop all-reducing and drift
        # apart. no_sync() (pytorch/pytorch#143580); the balanced loss's autograd.grad calls through DDP's output
        # before backward count as extra backward passes (tests/runner/test_ddp.py shows the drift).
        why = f"step.grad_accum: {cfg.grad_accum}" if cfg.grad_accum > 1 else "step.losses.balanced: true"
        raise UserError(f"run.ddp_static_graph: true does not work with {why} under DDP (the ranks stop "
                        f"all-reducing after the first update); set run.ddp_static_graph: null")
    model = Watermarker(cfg.embedder, cfg.extractor, jnd=cfg.jnd, scaling_w=cfg.scaling_w,
                        scaling_i=cfg.scaling_i, img_size=cfg.img_size)
    if cfg.init_from:
        load_model_weights(model, load_init_weights(cfg.init_from, model), cfg.init_from)
    model.to(ctx.device)
    if channels_last:
        model.to(memory_format=torch.channels_last)
    if cfg.compile:
        _compile(model.embedder, cfg.compile_mode)
        _compile(model.extractor, cfg.compile_mode)
    if static_graph is None:
        # The set of parameters used never changes between steps (K watermarks only repeat the embedder, the
        # discriminator has its own DDP), but no_sync and the balancing gradients need the dynamic graph.
        static_graph = cfg.grad_accum == 1 and not balanced
    return StepState(cfg, ctx, model, static_graph, bucket_view, channels_last, epochs, steps_per_epoch,
                     fused_optimizer, find_unused)
