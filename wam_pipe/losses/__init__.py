"""Loss terms of the watermarking step: `WatermarkLosses` holds their weights and computes the active ones."""

from wam_pipe.losses.watermark import WatermarkLosses

__all__ = ["WatermarkLosses"]
