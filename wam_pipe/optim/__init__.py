"""Learning-rate schedules for the step stage (optimizers come straight from `torch.optim`)."""

from wam_pipe.optim.schedules import CosineWarmup

__all__ = ["CosineWarmup"]
