"""Loss terms of the watermarking step: `WatermarkLosses` holds their weights and computes the active ones."""

from wam_pipe.losses.watermark import LOSS_TERMS, WatermarkLosses

__all__ = ["LOSS_TERMS", "WatermarkLosses"]
