"""The five stage slots of a pipeline: the one place that names them.

A pipeline fills some of five fixed slots under `stages:`, each with its own interface; the runner calls them in
a fixed order (shard-build, then training = load -> augment -> step, with eval between epochs, or eval alone).
This is not a stage graph: there is no other slot and no other order.

| key (YAML)   | field         | class        | job |
|--------------|---------------|--------------|-----|
| shard-build  | shard_build   | ShardBuild   | pack COCO images + instance masks into WebDataset shards (no-op when up to date) |
| load         | load          | Load         | stream batches of uint8 images and instance masks, split by rank and worker |
| augment      | augment       | Augment      | sample watermark masks and apply one augmentation per batch, on the device |
| step         | step          | Step         | models, losses, optimizers: one training step (embed, augment, extract, update) |
| eval         | eval          | Eval         | robustness grid of masks x augmentations, metrics.json, pictures |
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Optional

if TYPE_CHECKING:  # the stage modules load lazily (see wam_pipe.stages); only type checkers need them here
    from wam_pipe.stages.augment import Augment
    from wam_pipe.stages.eval import Eval
    from wam_pipe.stages.load import Load
    from wam_pipe.stages.shard_build import ShardBuild
    from wam_pipe.stages.step import Step


@dataclasses.dataclass(frozen=True)
class Slot:
    key: str  # the key under `stages:` in a pipeline file
    field: str  # the attribute of `Stages`
    class_name: str  # `wam_pipe.stages.<class_name>`, the stage class that fills it

    @property
    def target(self) -> str:
        return f"wam_pipe.stages.{self.class_name}"


SLOTS = (
    Slot("shard-build", "shard_build", "ShardBuild"),
    Slot("load", "load", "Load"),
    Slot("augment", "augment", "Augment"),
    Slot("step", "step", "Step"),
    Slot("eval", "eval", "Eval"),
)
SLOT_KEYS = tuple(slot.key for slot in SLOTS)
BY_KEY = {slot.key: slot for slot in SLOTS}
# The slots `wam-pipe run --only` accepts: each can run without the others being run.
RUNNABLE_ALONE = ("shard-build", "step", "eval")


def slot_problems(stages: Mapping[str, Any], built: bool = False) -> list[tuple[str, str]]:
    """Rules between slots, as (key, message): a training step trains on the load slot's batches.

    `stages` maps slot keys to YAML nodes (validation: the rule applies to a `wam_pipe.stages.Step` node, not to
    a model node validated under the `step` key) or, with `built`, to built stages (the runner: any step object).
    """
    step = stages.get("step")
    if built:
        trains = step is not None
    else:
        trains = isinstance(step, Mapping) and step.get("_target_") == BY_KEY["step"].target
    if trains and stages.get("load") is None:
        return [("load", "missing; stages.step trains on the batches of a load stage: add one "
                         "(`_target_: wam_pipe.stages.Load`) or remove stages.step")]
    return []


@dataclasses.dataclass
class Stages:
    """A pipeline's built stages, one optional field per slot (built by the runner from `config.build_stages`)."""

    shard_build: Optional[ShardBuild] = None
    load: Optional[Load] = None
    augment: Optional[Augment] = None
    step: Optional[Step] = None
    eval: Optional[Eval] = None

    @classmethod
    def from_built(cls, built: dict[str, Any]) -> "Stages":
        """From `{slot key: stage}` (what `build_stages` returns; keys already validated)."""
        return cls(**{BY_KEY[key].field: stage for key, stage in built.items()})

    def present(self) -> list[str]:
        """Keys of the filled slots, in slot order."""
        return [slot.key for slot in SLOTS if getattr(self, slot.field) is not None]

    def as_dict(self) -> dict[str, Any]:
        """{slot key: stage} of the filled slots."""
        return {key: self.get(key) for key in self.present()}

    def get(self, key: str) -> Any:
        """The stage in the slot named by its YAML key (`"shard-build"`), or None."""
        return getattr(self, BY_KEY[key].field)
