"""`WatermarkLosses`: the weighted sum of the watermarking loss terms, with optional gradient-norm balancing."""

from __future__ import annotations

from typing import Literal

import torch

from wam_pipe.losses.terms import decoding_loss, detection_loss, hinge_generator_loss, perceptual_loss

# The loss terms of the embedder+extractor update, in the order they are computed, summed and logged: the one list
# that the weights, `terms`, `combine`, the step's metrics (`loss_<name>`, `scale_<name>`) and the tests derive from.
# To add a term: its function in terms.py, its name here, its weight argument below and its line in `terms`.
LOSS_TERMS = ("detection", "decoding", "perceptual", "adversarial")


class WatermarkLosses:
    """Loss terms of the embedder+extractor update and their weights; terms with weight 0 are not computed.

    Args:
        detection: weight of the detection BCE (reference `lambda_w`). Default 1.0.
        decoding: weight of the masked bit BCE (reference `lambda_w2`). Default 4.0 (published recipes: 10, 6).
        perceptual: weight of the perceptual loss between cover and watermarked image (`lambda_i`). Default 0.0.
        perceptual_kind: "mse", "yuv" or "ssim". Default "mse".
        adversarial: weight of the hinge generator loss (`lambda_d`); > 0 needs `discriminator` in the step.
            Default 0.0 (the discriminator is then not built, stepped or all-reduced at all).
        disc_start: first epoch at which the adversarial terms (generator and discriminator) are on. Default 0.
        balanced: scale each term so its gradient norm at the embedder's last layer is weight/sum(weights) of a
            reference norm (the reference's adaptive weighting). Default True.
        total_gnorm: that reference norm; 0 uses the detection term's own gradient norm. Default 0.0.
    """

    def __init__(self, detection: float = 1.0, decoding: float = 4.0, perceptual: float = 0.0,
                 perceptual_kind: Literal["mse", "yuv", "ssim"] = "mse", adversarial: float = 0.0,
                 disc_start: int = 0, balanced: bool = True, total_gnorm: float = 0.0):
        arguments = locals()  # each term's weight is the argument named after it
        weights = {name: arguments[name] for name in LOSS_TERMS}
        for name, weight in weights.items():
            if weight < 0:
                raise ValueError(f"{name}: loss weights must be >= 0, got {weight}")
        if not any(weights.values()):
            raise ValueError("all loss weights are 0; set at least detection or decoding > 0")
        self.weights = weights
        self.perceptual_kind = perceptual_kind
        self.disc_start = disc_start
        self.balanced = balanced
        self.total_gnorm = total_gnorm

    @classmethod
    def check_config(cls, node: dict) -> list[tuple[str, str]]:
        kind = node.get("perceptual_kind", "mse")
        return [] if kind in ("mse", "yuv", "ssim") else [("perceptual_kind", f"unknown kind {kind!r}")]

    @property
    def uses_discriminator(self) -> bool:
        return self.weights["adversarial"] > 0

    def adversarial_on(self, epoch: int) -> bool:
        return self.uses_discriminator and epoch >= self.disc_start

    def terms(self, imgs: torch.Tensor, imgs_w: torch.Tensor, preds: torch.Tensor, msgs: torch.Tensor,
              masks: torch.Tensor, disc_logits_fake: torch.Tensor | None) -> dict[str, torch.Tensor]:
        """The unweighted active terms.

        Args:
            imgs / imgs_w: (B, 3, H, W) unwatermarked reference and (spliced) watermarked images, model space;
                with roll the reference is the same splice of the covers (`TrainForward`'s "cover").
            preds: (B, 1 + nbits, h, w) extractor logits; msgs: (B, K, nbits); masks: (B, K, h, w) targets.
            disc_logits_fake: discriminator logits on imgs_w when the adversarial term is on, else None.
        Returns:
            dict name -> scalar loss, plus "decoding_weight" (count of supervised bit decisions; 0 = no watermark).
        """
        out: dict[str, torch.Tensor] = {}
        if self.weights["detection"] > 0:
            union = masks.amax(dim=1)                                     # (B, h, w)
            out["detection"] = detection_loss(preds[:, 0], union)
        if self.weights["decoding"] > 0:
            out["decoding"], out["decoding_weight"] = decoding_loss(preds[:, 1:], msgs, masks)
        if self.weights["perceptual"] > 0:
            out["perceptual"] = perceptual_loss(imgs, imgs_w, self.perceptual_kind)
        if disc_logits_fake is not None:
            out["adversarial"] = hinge_generator_loss(disc_logits_fake)
        return out

    def combine(self, terms: dict[str, torch.Tensor], last_layer: torch.nn.Parameter | None,
                grad_scale: torch.Tensor | float = 1.0) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Weighted total and the scale of each term (detached).

        With `balanced`, scale_i = r_i * G / ||d loss_i / d last_layer|| where r_i = w_i / sum(active w) and G is
        `total_gnorm` or the detection term's norm. A decoding term with no supervised pixel drops out of the ratios
        (tensor arithmetic, no host sync). `grad_scale` (the fp16 GradScaler scale) keeps the gradient norms out of
        fp16 underflow; the scales do not depend on it.
        """
        names = [n for n in LOSS_TERMS if n in terms]
        weights = {n: terms[n].new_full((), self.weights[n]) for n in names}  # no host->device copy
        if "decoding" in weights:
            weights["decoding"] = weights["decoding"] * (terms["decoding_weight"] > 0).float()
        if not self.balanced or last_layer is None:
            scales = weights
        else:
            scales = self._balanced_scales(terms, names, weights, last_layer, grad_scale)
        total = sum(scales[n] * terms[n] for n in names)
        return total, {n: s.detach() for n, s in scales.items()}

    def metrics(self, terms: dict[str, torch.Tensor], scales: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """What the step logs of the active terms (detached): `loss_<term>`, and with `balanced` `scale_<term>`
        (the factor the balancing gave the term)."""
        metrics: dict[str, torch.Tensor] = {}
        for name in LOSS_TERMS:
            if name in terms:
                metrics[f"loss_{name}"] = terms[name].detach().float()
                if self.balanced:
                    metrics[f"scale_{name}"] = scales[name].float()
        return metrics

    def _balanced_scales(self, terms: dict[str, torch.Tensor], names: list[str], weights: dict[str, torch.Tensor],
                         last_layer: torch.nn.Parameter, grad_scale: torch.Tensor | float) -> dict[str, torch.Tensor]:
        norms = {}
        for name in names:
            (grad,) = torch.autograd.grad(terms[name] * grad_scale, last_layer, retain_graph=True, allow_unused=True)
            norms[name] = grad.float().norm() / grad_scale if grad is not None else terms[name].new_zeros(())
        total_weight = sum(weights.values())
        reference = norms.get("detection", next(iter(norms.values()))) if self.total_gnorm <= 0 else self.total_gnorm
        reference = torch.as_tensor(reference, device=norms[names[0]].device)
        scales = {}
        for n in names:
            ratio = weights[n] / total_weight
            # A term the embedder cannot move (no watermark in the batch: its gradient at the last layer is 0)
            # keeps its plain ratio instead of being scaled to 0 (the reference then trained nothing at all).
            usable = (norms[n] > 0) & (reference > 0)
            scales[n] = torch.where(usable, ratio * reference / (norms[n] + 1e-12), ratio)
        return scales
