"""`wam-pipe run` end to end on a tiny pipeline: run dir contents, run-dir rules, resume, repeat, failures."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from wam_pipe.cli import main


def train_lines(run_dir: Path) -> list[dict]:
    lines = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return [line for line in lines if line["kind"] == "train"]


def test_run_writes_the_run_directory(tiny_pipeline, tmp_path):
    run_dir = tmp_path / "run"
    assert main(["run", str(tiny_pipeline), "--output-dir", str(run_dir), "stages.step.scaling_w=0.5"]) == 0
    for name in ("config.yaml", "resolved.yaml", "overrides.txt", "env.json", "log.jsonl", "checkpoints/last.pt"):
        assert (run_dir / name).is_file(), name
    assert "${vars.nbits}" in (run_dir / "config.yaml").read_text()          # unresolved
    assert "nbits: 8" in (run_dir / "resolved.yaml").read_text()
    assert (run_dir / "overrides.txt").read_text() == "stages.step.scaling_w=0.5\n"
    env = json.loads((run_dir / "env.json").read_text())
    assert {"python", "torch", "torchvision", "hydra-zen", "omegaconf", "webdataset"} <= set(env["versions"])
    assert env["device"] == "cpu" and "sha" in env["git"] and "dirty" in env["git"] and env["host"]
    lines = train_lines(run_dir)
    assert len(lines) == 6 and [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6]
    for key in ("loss", "loss_detection", "loss_decoding", "lr", "img_per_s", "data_wait"):
        assert key in lines[0]
    checkpoint = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert checkpoint["epoch"] == 2 and checkpoint["step"] == 6
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "config"} <= set(checkpoint)
    assert "discriminator" not in checkpoint                                    # adversarial weight is 0


def test_run_dir_rules(tiny_pipeline, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert main(["run", str(tiny_pipeline), "--output-dir", str(run_dir), "run.epochs=1"]) == 0
    capsys.readouterr()
    # a different configuration is refused, naming what differs and the flags that help
    assert main(["run", str(tiny_pipeline), "--output-dir", str(run_dir), "stages.step.optimizer.lr=0.1"]) == 2
    err = capsys.readouterr().err
    assert "stages.step.optimizer.lr" in err and "--overwrite" in err and "--output-dir" in err
    assert main(["run", str(tiny_pipeline), "--output-dir", str(run_dir), "run.epochs=1",
                 "stages.step.optimizer.lr=0.1", "--overwrite"]) == 0
    assert "lr: 0.1" in (run_dir / "resolved.yaml").read_text()
    # a non-empty folder that is not a run dir is never deleted
    other = tmp_path / "precious"
    other.mkdir()
    (other / "thesis.txt").write_text("keep me")
    assert main(["run", str(tiny_pipeline), "--output-dir", str(other), "--overwrite"]) == 2
    assert (other / "thesis.txt").read_text() == "keep me"


def test_resume_continues_exactly(tiny_pipeline, tmp_path):
    """1 epoch, then resume to 2 epochs == 2 epochs uninterrupted (same losses, same LRs, same final weights).

    The cosine's `total` is left null, so the 1-epoch run ends its schedule at min_lr; extending run.epochs on
    resume stretches it to 2 epochs, and epoch 2 runs at the LR the uninterrupted run had, not at min_lr."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert main(["run", str(tiny_pipeline), "--output-dir", str(straight)]) == 0
    assert main(["run", str(tiny_pipeline), "--output-dir", str(resumed), "run.epochs=1"]) == 0
    assert len(train_lines(resumed)) == 3
    assert main(["run", str(tiny_pipeline), "--output-dir", str(resumed)]) == 0   # resumes at epoch 1
    a, b = train_lines(straight), train_lines(resumed)
    assert [line["step"] for line in b] == [1, 2, 3, 4, 5, 6]
    assert a[3]["lr"] > 1e-6                                                      # mid-cosine, not its floor
    for x, y in zip(a, b):
        assert x["loss"] == y["loss"] and x["lr"] == y["lr"]
    wa = torch.load(straight / "checkpoints" / "last.pt", weights_only=True)["model"]
    wb = torch.load(resumed / "checkpoints" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_repeat_from_saved_config(tiny_pipeline, tmp_path):
    first, again = tmp_path / "first", tmp_path / "again"
    assert main(["run", str(tiny_pipeline), "--output-dir", str(first), "run.epochs=1"]) == 0
    assert main(["run", str(first / "config.yaml"), "--output-dir", str(again)]) == 0
    assert [x["loss"] for x in train_lines(first)] == [x["loss"] for x in train_lines(again)]


KILL_WAIT_S = 300


def _records(path: Path) -> list[dict]:
    """The JSON lines of `path`, skipping a line a stopped writer left unfinished."""
    out = []
    for line in path.read_text().splitlines() if path.is_file() else []:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return out


def _kill_after_uncheckpointed_steps(process: subprocess.Popen, run_dir: Path) -> int:
    """SIGKILL `process` at a moment when log.jsonl holds steps after its last checkpoint; returns that
    checkpoint's step. The process is frozen (SIGSTOP) while the files are inspected, so what is checked is what
    the kill leaves behind."""
    checkpoint = run_dir / "checkpoints" / "last.pt"
    # A bound against a hang, not a speed check: a loaded 2-core machine can take a minute to import torch.
    deadline = time.monotonic() + KILL_WAIT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, "the run ended before it could be interrupted"
        if checkpoint.exists():
            process.send_signal(signal.SIGSTOP)
            saved = torch.load(checkpoint, weights_only=True)["step"]
            logged = max((r["step"] for r in _records(run_dir / "log.jsonl")), default=0)
            if logged > saved:
                process.kill()
                return saved
            process.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError(f"no checkpoint followed by logged steps within {KILL_WAIT_S} s")


def test_kill_and_resume_finishes(tiny_pipeline, tmp_path):
    """SIGKILL mid-run, with steps logged after the last checkpoint: the rerun redoes them from the checkpoint, and
    log.jsonl ends with every step once (curves and reports read it), and a sound checkpoint."""
    run_dir = tmp_path / "killed"
    command = [sys.executable, "-m", "wam_pipe", "run", str(tiny_pipeline), "--output-dir", str(run_dir),
               "run.epochs=1000", "run.checkpoint_every=2"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        saved = _kill_after_uncheckpointed_steps(process, run_dir)
    finally:
        process.kill()
        process.wait()
    epochs = saved // 3 + 2                                  # 3 steps per epoch: finish 2 epochs after the checkpoint
    assert main(["run", str(tiny_pipeline), "--output-dir", str(run_dir), f"run.epochs={epochs}",
                 "run.checkpoint_every=2"]) == 0
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["epoch"] == epochs and state["step"] == 3 * epochs
    records = _records(run_dir / "log.jsonl")
    assert len(records) == len((run_dir / "log.jsonl").read_text().splitlines())    # no broken line left
    assert [r["step"] for r in records if r["kind"] == "train"] == list(range(1, 3 * epochs + 1))
    assert [r["step"] for r in records if r["kind"] == "epoch"] == list(range(3, 3 * epochs + 1, 3))
    assert not list(run_dir.rglob("*.tmp"))


def test_nonfinite_loss_stops_the_run_naming_step_and_term(tiny_pipeline, tmp_path, capsys):
    """lr 1e30: step 1 (as the log numbers it) is finite and logged, its update breaks the weights, so step 2 fails
    in both of its loss terms; the precision advice is for fp16 runs only."""
    code = main(["run", str(tiny_pipeline), "--output-dir", str(tmp_path / "nan"), "stages.step.optimizer.lr=1e30",
                 "~stages.step.scheduler"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert [line["step"] for line in train_lines(tmp_path / "nan")] == [1]
    assert err.startswith("step 2: the loss terms 'detection' and 'decoding' became NaN or inf; "), err
    assert "stages.step.grad_clip" in err and "run.precision" not in err and "Traceback" not in err
    code = main(["run", str(tiny_pipeline), "--output-dir", str(tmp_path / "nan16"), "stages.step.optimizer.lr=1e30",
                 "~stages.step.scheduler", "run.precision=fp16", "run.max_nonfinite_steps=1"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert err.startswith("step 2: the loss terms 'detection' and 'decoding' became NaN or inf and stayed so for 2 "
                          "steps in a row"), err
    assert "run.precision=bf16" in err


def test_no_watermark_batches_do_not_pollute_averages(tiny_pipeline, tmp_path):
    run_dir = tmp_path / "empty"
    # every mask is `full` and then inverted: no watermarked pixel anywhere
    code = main(["run", str(tiny_pipeline), "--output-dir", str(run_dir), "run.epochs=1",
                 "stages.augment.masks.full=1.0", "stages.augment.masks.box=0.0",
                 "stages.augment.masks.invert_proba=1.0"])
    assert code == 0
    for line in train_lines(run_dir):
        assert "bit_acc" not in line                                          # undefined, so not logged
        assert line["loss_decoding"] == 0.0 and line["loss"] >= 0
