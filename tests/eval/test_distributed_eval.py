"""Two ranks (gloo, CPU), each evaluating its half of the images, reduce to the one-process numbers; only rank 0
writes the outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from eval_fakes import FakeLoad, tiny_model

from wam_pipe.core.context import RunContext
from wam_pipe.stages.eval import Eval


class RankShare(FakeLoad):
    """This rank's contiguous share of the images, as the load stage splits them (each image exactly once)."""

    def __init__(self, rank: int, world_size: int, **kw):
        super().__init__(**kw)
        self.rank, self.world_size = rank, world_size

    def epoch(self, epoch):
        for batch in super().epoch(epoch):
            keep = [i for i, key in enumerate(batch["keys"]) if int(key) % self.world_size == self.rank]
            if keep:
                yield {"images": batch["images"][keep], "masks": batch["masks"][keep],
                       "keys": [batch["keys"][i] for i in keep]}


def stage(loader: FakeLoad) -> Eval:
    return Eval(loader, masks=["full", "segm"], augs={"identity": None, "hflip": None}, multi_wm=True, multi_wm_max=2,
                multi_wm_sources=["boxes"], pictures=1)


def _rank_main(rank: int, world_size: int, init_file: str, run_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world_size)
    try:
        ctx = RunContext(run_dir=Path(run_dir) / f"rank{rank}", rank=rank, world_size=world_size, log=lambda s: None)
        if rank == 0:
            ctx.run_dir = Path(run_dir) / "shared"
        stage(RankShare(rank, world_size, n=7, batch_size=3)).evaluate(ctx, tiny_model(), epoch=0, step=1)
    finally:
        dist.destroy_process_group()


def test_two_ranks_reduce_to_the_single_process_result(tmp_path):
    stage(FakeLoad(n=7, batch_size=3)).evaluate(RunContext(run_dir=tmp_path / "single", log=lambda s: None),
                                                tiny_model(), epoch=0, step=1)
    mp.spawn(_rank_main, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    single = json.loads((tmp_path / "single" / "eval" / "metrics.json").read_text())
    shared = json.loads((tmp_path / "shared" / "eval" / "metrics.json").read_text())
    assert shared["images"] == single["images"] == 7
    # Rolled rows move each watermark to the next image *of the batch*, so they depend on how images are batched
    # (as in the reference); every other row is a per-image sum and must match.
    unrolled = [r for r in shared["multi_wm"] if not r["roll"]]
    expected = [r for r in single["multi_wm"] if not r["roll"]]
    assert len(unrolled) == len(expected) == 2 and len(shared["multi_wm"]) == 4
    for a, b in zip(shared["results"] + unrolled, single["results"] + expected):
        assert a.keys() == b.keys()
        for key in a:
            assert a[key] == (pytest.approx(b[key], rel=1e-5) if isinstance(b[key], float) else b[key]), key
    assert not (tmp_path / "rank1").exists()  # rank 1 computes but never writes
