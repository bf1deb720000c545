"""The real CLI on config mistakes: exit 2, one line per problem, no traceback; --debug shows one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import yaml

from wam_pipe.cli import main

GOOD = """\
version: 1
name: cli-demo
vars: {width: 8}
stages:
  step:
    _target_: torch.nn.Linear
    in_features: ${vars.width}
    out_features: 2
"""


def test_validate_ok_and_show(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    assert main(["validate", str(path)]) == 0
    assert "ok" in capsys.readouterr().out
    assert main(["show", str(path), "vars.width=4"]) == 0
    out = capsys.readouterr().out
    assert "width: 4" in out and "${vars.width}" in out
    assert main(["show", str(path), "--resolved", "--defaults"]) == 0
    out = capsys.readouterr().out
    assert "in_features: 8" in out and "bias: true" in out  # default filled in


def test_errors_exit_2_without_traceback(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.replace("out_features: 2", "out_feature: 2"))
    result = subprocess.run([sys.executable, "-m", "wam_pipe", "validate", str(path), "vars.widht=3"],
                            capture_output=True, text=True)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert any(line.startswith(f"{path}: stages.step.out_feature: unknown argument") for line in lines)
    assert any("vars.widht: no such key; did you mean 'vars.width'?" in line for line in lines)
    debug = subprocess.run([sys.executable, "-m", "wam_pipe", "--debug", "validate", str(path)],
                           capture_output=True, text=True)
    assert debug.returncode == 2 and "Traceback" in debug.stderr


def test_unknown_flag_among_overrides_is_rejected(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD)
    try:
        main(["run", str(path), "--epochs=3"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "--epochs" in capsys.readouterr().err


def test_missing_file_is_one_line(tmp_path, capsys):
    assert main(["validate", str(tmp_path / "missing.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "no such pipeline file" in err


def test_schema_file_matches_command(repo_root):
    from wam_pipe.cli.schema_cmd import render_schema

    assert (repo_root / "schemas" / "pipeline.schema.json").read_text() == render_schema(), \
        "schemas/pipeline.schema.json is stale: run `wam-pipe schema --out schemas/pipeline.schema.json`"


def test_ls_lists_components(capsys):
    assert main(["ls"]) == 0
    out = capsys.readouterr().out
    for name in ("wam_pipe.stages.Step", "wam_pipe.stages.Load", "wam_pipe.models.vae_small",
                 "wam_pipe.augment.Rotate", "torch.optim.AdamW"):
        assert name in out
    assert main(["ls", "nonsense"]) == 2


def test_help_for_every_command(capsys):
    from wam_pipe.cli import build_parser

    parser = build_parser()
    commands = parser._subparsers._group_actions[0].choices
    for name in commands:
        try:
            main([name, "--help"])
        except SystemExit as exit_:
            assert exit_.code == 0
    assert textwrap.dedent("run") in commands


EVIL_MODULE = """\
import pathlib
pathlib.Path(__file__).with_name("IMPORTED").touch()
def f(*args, **kwargs):
    pathlib.Path(__file__).with_name("CALLED").touch()
    return 1
"""


def _evil_env(tmp_path):
    import os

    (tmp_path / "evil_cli_mod.py").write_text(EVIL_MODULE)
    return {**os.environ, "PYTHONPATH": str(tmp_path)}


def test_validate_never_imports_a_target_hidden_in_args(tmp_path):
    """The audit's evil_args.yaml: hydra builds `_target_` nodes in `_args_`, so validation checks them too."""
    path = tmp_path / "evil.yaml"
    path.write_text(GOOD + "    _args_:\n      - {_target_: evil_cli_mod.f}\n")
    result = subprocess.run([sys.executable, "-m", "wam_pipe", "validate", str(path)], capture_output=True,
                            text=True, env=_evil_env(tmp_path))
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"{path}: stages.step._args_.0._target_: 'evil_cli_mod.f' is not allowed" in result.stderr
    assert not (tmp_path / "IMPORTED").exists() and not (tmp_path / "CALLED").exists()


def test_show_defaults_fills_stages_and_run_but_never_imports_vars(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.replace("vars: {width: 8}", "vars:\n  width: 8\n  note: {_target_: evil_cli_mod.f}\n"
                                 "  typo: {_target_: wam_pipe.models.ConvEmbeder}"))
    result = subprocess.run([sys.executable, "-m", "wam_pipe", "show", str(path), "--defaults"],
                            capture_output=True, text=True, env=_evil_env(tmp_path))
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "IMPORTED").exists()
    shown = yaml.safe_load(result.stdout)
    assert shown["vars"]["typo"] == {"_target_": "wam_pipe.models.ConvEmbeder"}        # as written
    assert shown["stages"]["step"]["bias"] is True                                     # a constructor default
    assert shown["run"]["log_every"] == 10 and shown["run"]["precision"] == "auto"     # every run setting
    assert list(shown) == ["version", "name", "vars", "run", "stages"]


def test_show_defaults_of_an_interpolated_target(tmp_path, capsys):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.replace("vars: {width: 8}", "vars: {width: 8, layer: torch.nn.Linear}")
                    .replace("_target_: torch.nn.Linear", "_target_: ${vars.layer}"))
    assert main(["show", str(path), "--defaults"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert shown["stages"]["step"]["_target_"] == "${vars.layer}" and shown["stages"]["step"]["bias"] is True


def test_invalid_interpolation_is_one_line_per_key(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(GOOD.replace("${vars.width}", "${vars"))
    result = subprocess.run([sys.executable, "-m", "wam_pipe", "validate", str(path)], capture_output=True, text=True)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"{path}: stages.step.in_features: invalid interpolation: ")


def test_run_without_arguments_asks_only_for_the_pipeline(capsys):
    for command in ("run", "validate", "show"):
        try:
            main([command])
        except SystemExit as exit_:
            assert exit_.code == 2
        err = capsys.readouterr().err
        assert err.strip().endswith("the following arguments are required: PIPELINE.yaml")


def test_validate_reports_a_string_where_eval_needs_a_loader(repo_root, capsys):
    path = repo_root / "pipelines" / "quickstart.yaml"
    assert main(["validate", str(path), "stages.eval.data=wam_pipe.stages.Load"]) == 2
    assert capsys.readouterr().err.startswith(f"{path}: stages.eval.data: expected a loader node such as")


def test_validate_reports_values_that_would_fail_at_run_time(repo_root, capsys):
    """The audit's list: each used to validate, then fail after shard-build (or with a traceback)."""
    path = repo_root / "pipelines" / "quickstart.yaml"
    overrides = ["stages.load.batch_size=0", "stages.load.workers=-1", "stages.eval.data.batch_size=0",
                 "run.log_every=0", "run.device=tpu", "run.epochs=-1", "run.eval_every=-2",
                 "stages.shard-build.samples_per_shard=0", "stages.shard-build.synthesize=-1"]
    assert main(["validate", str(path), *overrides]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    keys = sorted(line.split(": ")[1] for line in lines)
    assert keys == sorted(o.split("=")[0] for o in overrides), lines
    assert main(["validate", str(path), "~stages.load"]) == 2
    assert capsys.readouterr().err.startswith(f"{path}: stages.load: missing; stages.step trains on the batches")


def test_output_cut_short_by_the_reader_is_not_an_error():
    """`wam-pipe ls | head -1`: the closed pipe stops the command quietly (no traceback)."""
    import subprocess
    import sys

    command = [sys.executable, "-m", "wam_pipe", "ls"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE) as process:
        process.stdout.readline()
        process.stdout.close()  # the reader goes away
        stderr = process.stderr.read().decode()
        code = process.wait(timeout=60)
    assert "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert code in (0, 141)


def test_validate_refuses_an_unknown_url_scheme_and_credentials_in_yaml(capsys):
    # `s3://b/x` used to pass as the local path `s3:/b/x`; URLs of known schemes validate, others do not.
    assert main(["validate", "pipelines/eval.yaml", "vars.shards=s3://bucket/coco-val"]) == 0
    assert main(["validate", "pipelines/eval.yaml", "vars.shards=ftp://host/coco-val"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["pipelines/eval.yaml: stages.eval.data.shards: 'ftp://host/coco-val': unknown URL scheme 'ftp'; "
                   "use a local path, file://, s3://, gs://, http(s):// or pipe:CMD"]
    assert main(["validate", "pipelines/train.yaml", "stages.load.shards=s3://b/x",
                 "stages.load.storage_options={secret: abc}"]) == 2
    assert "environment" in capsys.readouterr().err
    assert main(["validate", "pipelines/train.yaml", "stages.shard-build.out=s3://b/x"]) == 2  # the CLI uploads
    assert "shard-build stage writes a local folder" in capsys.readouterr().err
