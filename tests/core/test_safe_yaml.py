"""YAML alias bombs and recursive aliases are refused in one line, quickly, wherever wam-pipe reads YAML."""

from __future__ import annotations

import pytest

from wam_pipe.core.errors import UserError
from wam_pipe.core.safe_yaml import MAX_VALUES, check_yaml, safe_load


def alias_bomb(levels: int, width: int = 10) -> str:
    """`levels` anchors, each a list of `width` aliases of the previous: width**levels values once expanded."""
    lines = ["l0: &l0 [x]"]
    for level in range(1, levels + 1):
        lines.append(f"l{level}: &l{level} [{', '.join([f'*l{level - 1}'] * width)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_without_expanding_it(no_hang):
    with pytest.raises(UserError, match=rf"bomb.yaml: the YAML expands to more than {MAX_VALUES:,} values"):
        check_yaml(alias_bomb(9), "bomb.yaml")  # 10^9 values: expanding it would take minutes and gigabytes


def test_a_recursive_alias_is_one_line_not_a_recursion_error():
    with pytest.raises(UserError, match=r"x.yaml: line 1: a recursive alias"):
        safe_load("a: &a [*a]\n", "x.yaml")


def test_deep_nesting_is_refused():
    with pytest.raises(UserError, match="nests deeper than"):
        check_yaml("a: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")


def test_ordinary_aliases_and_malformed_yaml_pass_through():
    assert safe_load("base: &b {lr: 0.1}\nother: *b\n", "ok.yaml") == {"base": {"lr": 0.1}, "other": {"lr": 0.1}}
    check_yaml("a: [unclosed\n", "bad.yaml")  # left to the caller's parser and its own message


def test_validate_refuses_a_pipeline_alias_bomb_in_one_line(tmp_path, no_hang):
    from wam_pipe.cli import main

    path = tmp_path / "bomb.yaml"
    path.write_text("version: 1\nname: bomb\nvars:\n" + "".join(f"  {line}\n" for line in alias_bomb(8).splitlines()))
    with pytest.raises(UserError, match="bomb.yaml: the YAML expands"):
        from wam_pipe.config import compose

        compose(str(path))
    assert main(["validate", str(path)]) == 2


def test_a_checkpoint_config_alias_bomb_is_refused():
    from wam_pipe.config.checkpoint_model import model_node

    with pytest.raises(UserError, match="ckpt.pt: the checkpoint's pipeline config: the YAML expands"):
        model_node(alias_bomb(7) + "stages: {step: {}}\n", "ckpt.pt")


def test_a_run_dir_config_alias_bomb_is_refused(tmp_path):
    from wam_pipe.runner.rundir import inspect_run_dir

    (tmp_path / "resolved.yaml").write_text(alias_bomb(8))
    with pytest.raises(UserError, match="resolved.yaml: the YAML expands"):
        inspect_run_dir(tmp_path, {}, overwrite=False)
