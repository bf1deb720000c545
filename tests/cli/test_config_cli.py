"""The real CLI on config mistakes: exit 2, one line per problem, no traceback; --debug shows one."""

from __future__ import annotations

import subprocess
import sys
import textwrap

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
