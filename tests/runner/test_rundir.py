"""Run-dir reuse rules: resume, refuse, overwrite, and the record of a run that failed before doing any work."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from wam_pipe.cli import main
from wam_pipe.core.errors import UserError
from wam_pipe.runner.rundir import inspect_run_dir, write_run_files

OLD = {"name": "x", "stages": {"eval": {"checkpoint": "/old.pt"}}}
NEW = {"name": "x", "stages": {"eval": {"checkpoint": "/new.pt"}}}


def record(run_dir: Path, resolved: dict) -> None:
    write_run_files(run_dir, "{}\n", yaml.safe_dump(resolved), ["k=v"], "cpu", 1, fresh=True)


def test_a_dir_that_is_not_a_run_dir_only_suggests_another_output_dir(tmp_path):
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "thesis.txt").write_text("keep me")
    for overwrite in (False, True):
        with pytest.raises(UserError) as info:
            inspect_run_dir(junk, NEW, overwrite=overwrite)
        message = str(info.value)
        assert message == (f"{junk}: not empty and not a wam-pipe run dir (no resolved.yaml), so it is never "
                           f"overwritten; choose another --output-dir (or run.output_dir)")
        assert "use --overwrite" not in message
    assert (junk / "thesis.txt").read_text() == "keep me"


def test_a_record_without_work_is_reused_with_a_new_config(tmp_path):
    run_dir = tmp_path / "run"
    record(run_dir, OLD)
    assert inspect_run_dir(run_dir, NEW, overwrite=False) == ("overwrite", None)
    assert inspect_run_dir(run_dir, OLD, overwrite=False) == ("resume", None)


@pytest.mark.parametrize("work", ["log.jsonl", "checkpoints/last.pt", "eval/metrics.json"])
def test_a_run_with_work_of_another_config_is_refused(tmp_path, work):
    run_dir = tmp_path / "run"
    record(run_dir, OLD)
    (run_dir / work).parent.mkdir(parents=True, exist_ok=True)
    (run_dir / work).write_text("{}")
    with pytest.raises(UserError, match=r"holds a run of a different configuration \(stages.eval.checkpoint differ\)"
                                        r"; use --overwrite"):
        inspect_run_dir(run_dir, NEW, overwrite=False)
    assert inspect_run_dir(run_dir, NEW, overwrite=True) == ("overwrite", None)


def test_a_failed_standalone_eval_can_be_rerun_into_the_same_dir(tmp_path, repo_root, capsys):
    """The audit's case: a missing checkpoint fails before any work; the corrected rerun is not refused."""
    run_dir = tmp_path / "eval-run"
    pipeline = str(repo_root / "pipelines" / "eval.yaml")
    assert main(["run", pipeline, "stages.eval.checkpoint=/nope.pt", "run.device=cpu", "--output-dir",
                 str(run_dir)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert (run_dir / "resolved.yaml").is_file()
    assert main(["run", pipeline, "stages.eval.checkpoint=/nope2.pt", "run.device=cpu", "--output-dir",
                 str(run_dir)]) == 2
    err = capsys.readouterr().err
    assert "/nope2.pt: no such checkpoint" in err and "different configuration" not in err
    assert "/nope2.pt" in (run_dir / "resolved.yaml").read_text()
    assert (run_dir / "overrides.txt").read_text().count("checkpoint") == 1   # a fresh record, not appended


def test_slurm_job_logs_do_not_make_a_run_dir_and_survive_overwrite(tmp_path):
    """`wam-pipe submit` writes RUN_DIR/slurm/<job>/ before the job starts: the dir is still new, a failed-before-work
    record is still reusable, and --overwrite keeps the running job's logs."""
    run_dir = tmp_path / "run"
    (run_dir / "slurm" / "7").mkdir(parents=True)
    (run_dir / "slurm" / "7" / "7_0_log.out").write_text("log")
    assert inspect_run_dir(run_dir, NEW, overwrite=False) == ("new", None)
    record(run_dir, OLD)
    assert inspect_run_dir(run_dir, NEW, overwrite=False) == ("overwrite", None)    # only the record + logs
    (run_dir / "log.jsonl").write_text("{}\n")
    assert inspect_run_dir(run_dir, OLD, overwrite=False) == ("resume", None)
    record(run_dir, NEW)                                                           # fresh: wipes the run
    assert not (run_dir / "log.jsonl").exists()
    assert (run_dir / "slurm" / "7" / "7_0_log.out").read_text() == "log"


def test_overwrite_deletes_only_what_wam_pipe_wrote(tmp_path):
    # Issue 11 item 16: `run --overwrite` deleted the user's notes, folders and a copied checkpoint.
    from wam_pipe.runner.rundir import write_run_files

    run_dir = tmp_path / "run"
    write_run_files(run_dir, "a: 1\n", "a: 1\n", [], "cpu", 1, fresh=False)
    (run_dir / "log.jsonl").write_text("{}\n")
    (run_dir / "eval").mkdir()
    (run_dir / "eval" / "summary.json").write_text("{}")
    (run_dir / "checkpoints").mkdir()
    for name in ("last.pt", "epoch-0001.pt", "copied-from-elsewhere.pt"):
        (run_dir / "checkpoints" / name).write_bytes(b"x")
    (run_dir / "notes.md").write_text("mine")
    (run_dir / "analysis").mkdir()
    (run_dir / "analysis" / "plot.png").write_bytes(b"x")
    write_run_files(run_dir, "a: 2\n", "a: 2\n", ["x=1"], "cpu", 1, fresh=True)
    left = sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*"))
    assert left == ["analysis", "analysis/plot.png", "checkpoints", "checkpoints/copied-from-elsewhere.pt",
                    "config.yaml", "env.json", "notes.md", "overrides.txt", "resolved.yaml"]
    assert (run_dir / "overrides.txt").read_text() == "x=1\n" and (run_dir / "resolved.yaml").read_text() == "a: 2\n"
