"""`wam-pipe report` on metrics.json files written by real evaluations, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from wam_pipe.cli import main
from wam_pipe.models import ConvEmbedder, ConvExtractor, Watermarker
from wam_pipe.core.context import RunContext
from wam_pipe.stages.eval import Eval


class ListLoader:
    """The load stage's batch format from a fixed list of 5 random 32 px images with one box instance each."""

    def __init__(self):
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randint(0, 256, (5, 3, 32, 32), generator=generator, dtype=torch.uint8)
        self.masks = torch.zeros(5, 1, 32, 32, dtype=torch.uint8)
        self.masks[:, :, 4:20, 6:24] = 1
        self.max_samples = None

    def setup(self, ctx):
        pass

    def epoch(self, epoch):
        for start in range(0, 5, 2):
            yield {"images": self.images[start : start + 2], "masks": self.masks[start : start + 2],
                   "keys": [str(i) for i in range(start, min(start + 2, 5))]}


def evaluate_into(run_dir: Path, seed: int, multi: bool) -> None:
    torch.manual_seed(seed)
    model = Watermarker(ConvEmbedder(nbits=4, channels=4, depth=1), ConvExtractor(nbits=4, channels=4, depth=0),
                        img_size=32)
    stage = Eval(ListLoader(), masks=["full", "box"], augs={"identity": None, "rotate": [10, 90]}, multi_wm=multi,
                 multi_wm_max=2, multi_wm_sources=["boxes"], pictures=1)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # many tiny ops: one thread is far faster on a shared 2-core machine
    try:
        stage.evaluate(RunContext(run_dir=run_dir, log=lambda line: None), model, epoch=seed, step=10 * seed)
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    a, b = tmp_path_factory.mktemp("run-a"), tmp_path_factory.mktemp("run-b")
    evaluate_into(a, 1, multi=True)
    evaluate_into(b, 2, multi=False)
    return a, b


def test_report_prints_the_latest_evaluation(runs, capsys):
    a, _ = runs
    assert main(["report", str(a)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{a}: epoch 1 step 10 | 5 images | bit_acc ")
    body = "\n".join(out)
    for label in ("identity", "rotate 10", "rotate 90", "boxes k=2 roll"):
        assert label in body
    assert main(["report", str(a / "eval" / "metrics.json"), "--full"]) == 0  # the file itself works too
    assert "box / rotate 90" in capsys.readouterr().out


def test_report_compare_side_by_side(runs, capsys):
    a, b = runs
    assert main(["report", str(a), "--compare", str(b)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"A = {a}: epoch 1") and out[1].startswith(f"B = {b}: epoch 2")
    assert "bit_acc A" in out[2] and "bit_acc B" in out[2] and "diff" in out[2]
    assert sum(line.startswith(("identity", "rotate")) for line in out) == 3


def broken_metrics(run_dir: Path) -> Path:
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "metrics.json").write_text("{oops")
    return run_dir


@pytest.mark.parametrize("make, expected", [
    (lambda d: d / "missing", "no such run directory"),
    (lambda d: d, "no evaluation yet"),
    (broken_metrics, "not valid JSON"),
])
def test_report_errors_are_one_line(tmp_path, capsys, make, expected):
    assert main(["report", str(make(tmp_path))]) == 2
    err = capsys.readouterr().err.strip()
    assert expected in err and "\n" not in err
