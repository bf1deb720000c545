"""Stage subclasses that let the DDP tests see inside each rank of a real `wam-pipe run`.

A test pipeline names them (`_target_: ddp_helpers.RecordingLoad`, with `allow_targets: [ddp_helpers.*]`) and runs
with this folder on PYTHONPATH and `WAM_TEST_RECORD` set to a folder. Each rank then writes there, per epoch:
`keys-r{rank}-e{epoch}.txt` (the samples it trained on), `weights-r{rank}-e{epoch}.pt` (model and discriminator
weights) and `stats-r{rank}-e{epoch}.json` (per-step losses, gradient all-reduces per DDP module, DDP flags).
They change nothing the stages do: they only watch (a DDP communication hook that counts, then all-reduces).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator

import torch
from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
from torch.nn.parallel import DistributedDataParallel as DDP

from wam_pipe.stages.load import Load
from wam_pipe.stages.step import Step


def _record_dir() -> Path:
    return Path(os.environ["WAM_TEST_RECORD"])


class RecordingLoad(Load):
    """`Load` that writes the keys of every batch it hands out."""

    def epoch(self, epoch: int) -> Iterator[dict]:
        rank = self._stream.rank
        path = _record_dir() / f"keys-r{rank}-e{epoch}.txt"
        for batch in super().epoch(epoch):
            with open(path, "a") as f:
                f.writelines(f"{key}\n" for key in batch["keys"])
            yield batch


def _counting_hook(counter, bucket):  # noqa: ANN001, ANN202 (DDP checks the annotations: none, or its own types)
    counter["allreduces"] += 1
    return default_hooks.allreduce_hook(None, bucket)


class RecordingStep(Step):
    """`Step` that counts DDP gradient all-reduces and writes losses and weights at the end of each epoch."""

    def setup(self, ctx: Any, *args: Any, **kwargs: Any) -> None:
        super().setup(ctx, *args, **kwargs)
        self._counters: dict[str, dict[str, int]] = {}
        self._flags: dict[str, dict[str, Any]] = {}
        for name, module in (("model", self.model_ddp), ("discriminator", self.disc_ddp)):
            if isinstance(module, DDP):
                self._counters[name] = {"allreduces": 0}
                module.register_comm_hook(self._counters[name], _counting_hook)
                self._flags[name] = {"static_graph": bool(module.static_graph),
                                     "bucket_view": bool(module.gradient_as_bucket_view)}
        self._losses: list[torch.Tensor] = []
        self._epoch = 0

    def train_step(self, batch: dict[str, Any], augment: Any, epoch: int) -> dict[str, Any]:
        metrics = super().train_step(batch, augment, epoch)
        self._losses.append(torch.stack([metrics["loss_detection"][0], metrics["loss_decoding"][0]]))
        self._epoch = epoch
        return metrics

    def end_epoch(self) -> None:
        super().end_epoch()
        rank, epoch = self.ctx.rank, self._epoch
        weights = {f"model.{k}": v.detach().cpu() for k, v in self.model.state_dict().items()}
        if self.discriminator is not None:
            weights.update({f"disc.{k}": v.detach().cpu() for k, v in self.discriminator.state_dict().items()})
        torch.save(weights, _record_dir() / f"weights-r{rank}-e{epoch}.pt")
        stats = {"losses": torch.stack(self._losses).tolist() if self._losses else [],
                 "allreduces": {name: counter["allreduces"] for name, counter in self._counters.items()},
                 "ddp": self._flags, "world_size": self.ctx.world_size}
        (_record_dir() / f"stats-r{rank}-e{epoch}.json").write_text(json.dumps(stats))
        self._losses = []
        for counter in self._counters.values():
            counter["allreduces"] = 0
