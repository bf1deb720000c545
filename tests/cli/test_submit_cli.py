"""`wam-pipe submit`: the job script of --dry-run (submitit's own), and the one-line refusals (no Slurm, no
submitit, bad flags). The real submission to a one-node Slurm is tests/runner/test_slurm.py (slow)."""

from __future__ import annotations

import sys

import pytest

from wam_pipe.cli import main


def test_dry_run_prints_the_job_script(repo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = str(repo_root / "pipelines" / "quickstart.yaml")
    assert main(["submit", path, "run.epochs=2", "--nodes", "2", "--gpus-per-node", "4", "--partition", "gpu",
                 "--time", "1-02:00", "--dry-run"]) == 0
    out = capsys.readouterr().out
    run_dir = tmp_path / "runs" / "quickstart"
    for line in ("#SBATCH --nodes=2", "#SBATCH --ntasks-per-node=4", "#SBATCH --gpus-per-node=4",
                 "#SBATCH --partition=gpu", "#SBATCH --time=1560", "#SBATCH --requeue", "#SBATCH --signal=USR2@90",
                 "#SBATCH --job-name=wam-quickstart", f"#SBATCH --output={run_dir}/slurm/%j/%j_0_log.out"):
        assert line in out.splitlines(), line
    assert "-m submitit.core._submit" in out and out.count("srun ") == 1
    assert f"wam-pipe run {path} run.epochs=2 --output-dir {run_dir}" in out
    assert "RANK=$SLURM_PROCID WORLD_SIZE=8" in out
    assert not (tmp_path / "runs").exists()                          # a dry run writes nothing


def test_dry_run_of_a_sweep_is_one_job_array(repo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = str(repo_root / "pipelines" / "quickstart.yaml")
    assert main(["submit", path, "--multirun", "run.seed=0,1,2", "--gpus-per-node", "0", "--tasks-per-node", "2",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "#SBATCH --array=0-2%3" in out and "#SBATCH --ntasks-per-node=2" in out and "--gpus-per-node" not in out
    for i in range(3):
        assert f"array task {i}: wam-pipe run {path} run.seed={i} --output-dir " in out
        assert f"/runs/quickstart/sweep-" in out


def test_no_slurm_is_one_line(repo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))                       # no sbatch, no srun
    assert main(["submit", str(repo_root / "pipelines" / "quickstart.yaml"), "--output-dir",
                 str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "submit: no Slurm here (sbatch/srun not on PATH); run it on a Slurm login node, or add --dry-run to print "
        "the job script"]


def test_no_submitit_is_one_line(repo_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)              # `import submitit` raises ImportError
    assert main(["submit", str(repo_root / "pipelines" / "quickstart.yaml"), "--dry-run"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "submit needs submitit: pip install 'wam-pipe[slurm]' (or pip install submitit)"]


@pytest.mark.parametrize("flags, message", [
    (["--nodes", "0"], "--nodes 0: must be at least 1"),
    (["--time", "soon"], "--time soon: give minutes (90) or [D-]HH:MM[:SS] (02:30:00, 1-00:00)"),
    (["--multirun", "run.seed=range(2,2)"], "empty sweep"),
    (["--multirun", "run.sed=1,2"], "run.sed: no such key; did you mean 'run.seed'?"),
])
def test_bad_flags_are_one_line(repo_root, capsys, flags, message):
    assert main(["submit", str(repo_root / "pipelines" / "quickstart.yaml"), *flags, "--dry-run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
