"""Validation errors are product surface: each error class names the file, the dotted key and a suggestion."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from wam_pipe.config import compose
from wam_pipe.errors import ConfigError


def write(tmp_path: Path, body: str, name: str = "p.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


MODEL = """\
from typing import Any


class Model:
    def __init__(self, in_features: int, out_features: int, bias: bool = True, sub: Any = None):
        self.sub = sub
"""

BASE = """\
version: 1
name: demo
vars: {nbits: 32}
allow_targets: ['val_mod.*']
stages:
  step:
    _target_: val_mod.Model
    in_features: ${vars.nbits}
    out_features: 4
    sub:
      _target_: torch.optim.AdamW
      _partial_: true
      lr: 1.0e-3
"""


@pytest.fixture(autouse=True)
def model_module(tmp_path, monkeypatch):
    (tmp_path / "val_mod.py").write_text(MODEL)
    monkeypatch.syspath_prepend(str(tmp_path))


def errors_of(path: Path, overrides: list[str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        compose(path, overrides)
    return info.value.errors


def test_valid_file_composes_and_resolves(tmp_path):
    body = BASE.replace("    sub:\n      _target_: torch.optim.AdamW\n      _partial_: true\n      lr: 1.0e-3\n", "")
    pipeline = compose(write(tmp_path, body))
    assert pipeline.resolved["stages"]["step"]["in_features"] == 32
    assert "${vars.nbits}" in pipeline.to_yaml()


def test_unknown_argument_names_key_and_suggests(tmp_path):
    path = write(tmp_path, BASE.replace("out_features: 4", "out_feature: 4"))
    errors = errors_of(path)
    assert f"{path}: stages.step.out_feature: unknown argument for val_mod.Model (did you mean 'out_features'?)" in errors
    # the required argument it was meant to be is reported too, in the same run
    assert f"{path}: stages.step.out_features: missing required argument of val_mod.Model" in errors


def test_nested_unknown_key_and_wrong_type(tmp_path):
    path = write(tmp_path, BASE.replace("lr: 1.0e-3", "lr: fast\n      weight_decai: 0.1"))
    errors = errors_of(path)
    assert f"{path}: stages.step.sub.lr: expected float or number (tensor), got 'fast'" in errors
    assert any(e.startswith(f"{path}: stages.step.sub.weight_decai: unknown argument") and "'weight_decay'" in e
               for e in errors)


def test_partial_node_skips_missing_required(tmp_path):
    # AdamW's `params` is required but supplied at run time: no error for the partial node
    body = BASE.replace("    sub:\n", "    sub_unused: null\n    sub:\n")
    errors = errors_of(write(tmp_path, body))
    assert not any("params" in e for e in errors)
    assert any("sub_unused: unknown argument" in e for e in errors)


def test_bad_interpolation_suggests_existing_key(tmp_path):
    path = write(tmp_path, BASE.replace("${vars.nbits}", "${vars.nbit}"))
    (error,) = errors_of(path)
    assert error.startswith(f"{path}: stages.step.in_features: Interpolation key 'vars.nbit' not found")
    assert "did you mean '${vars.nbits}'?" in error


def test_unimportable_target_suggests(tmp_path):
    path = write(tmp_path, "version: 1\nname: x\nstages:\n  step:\n    _target_: torch.nn.Lineer\n")
    (error,) = errors_of(path)
    assert error == (f"{path}: stages.step._target_: cannot import 'torch.nn.Lineer': module 'torch.nn' has no "
                     f"attribute 'Lineer' (did you mean 'torch.nn.Linear'?)")


def test_unknown_module_suggests_component(tmp_path):
    path = write(tmp_path, BASE.replace("val_mod.Model", "wam_pipe.optimm.CosineWarmup"))
    errors = errors_of(path)
    assert any("cannot import 'wam_pipe.optimm.CosineWarmup'" in e and "did you mean 'wam_pipe.optim" in e
               for e in errors)


def test_all_errors_reported_at_once(tmp_path):
    body = BASE.replace("out_features: 4", "out_features: many").replace("lr: 1.0e-3", "lrr: 1.0e-3")
    body += "run: {epochz: 3, precision: bf17}\nextra_top: 1\n"
    errors = errors_of(write(tmp_path, body))
    assert len(errors) == 5
    joined = "\n".join(errors)
    for fragment in ("stages.step.out_features: expected int, got 'many'", "stages.step.sub.lrr: unknown argument",
                     "run.epochz: unknown run setting (did you mean 'run.epochs'?)",
                     "run.precision: expected one of 'auto', 'fp32', 'bf16', 'fp16', got 'bf17'",
                     "extra_top: unknown top-level key"):
        assert fragment in joined


def test_top_level_and_stage_kind_errors(tmp_path):
    body = BASE.replace("version: 1\n", "").replace("  step:\n", "  stepp:\n")
    errors = errors_of(write(tmp_path, body))
    assert any("version: missing" in e for e in errors)
    assert any("stages.stepp: unknown stage kind (did you mean 'step'?)" in e for e in errors)


def test_stage_class_must_match_its_key(tmp_path):
    body = "version: 1\nname: x\nstages:\n  load:\n    _target_: wam_pipe.stages.Step\n"
    errors = errors_of(write(tmp_path, body))
    assert any("stages.load._target_: the load stage must be wam_pipe.stages.Load" in e for e in errors)


def test_missing_file_and_bad_yaml(tmp_path):
    from wam_pipe.errors import UserError

    with pytest.raises(UserError, match="no such pipeline file"):
        compose(tmp_path / "nope.yaml")
    bad = write(tmp_path, "version: 1\nname: [unclosed\n")
    with pytest.raises(UserError, match=r"line \d+, column \d+: invalid YAML"):
        compose(bad)


def test_disallowed_target_is_never_imported_or_called(tmp_path, monkeypatch):
    marker = tmp_path / "imported.txt"
    (tmp_path / "evil_mod.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        f"def boom(**kw):\n    open({str(marker)!r}, 'w').write('called')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    body = BASE + "  eval:\n    _target_: evil_mod.boom\n"
    path = write(tmp_path, body)
    errors = errors_of(path)
    assert any(e.startswith(f"{path}: stages.eval._target_: 'evil_mod.boom' is not allowed") and "allow_targets" in e
               for e in errors)
    assert not marker.exists()
    assert "evil_mod" not in sys.modules
    # also not through an override that names it
    errors = errors_of(write(tmp_path, BASE), ["stages.step._target_=evil_mod.boom", "stages.step.x=1"])
    assert not marker.exists() and "evil_mod" not in sys.modules


def test_allow_targets_extends_allowlist(tmp_path, monkeypatch):
    (tmp_path / "lab_mod.py").write_text("def make(size: int = 3):\n    return size\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    body = BASE.replace("allow_targets: ['val_mod.*']", "allow_targets: ['val_mod.*', 'lab_mod.*']")
    body = body.replace("stages:\n", "stages:\n  eval:\n    _target_: lab_mod.make\n    size: 4\n")
    pipeline = compose(write(tmp_path, body))
    assert pipeline.resolved["stages"]["eval"]["size"] == 4


def test_blocked_torch_callable(tmp_path):
    body = BASE + "  eval:\n    _target_: torch.hub.load\n"
    errors = errors_of(write(tmp_path, body))
    assert any("'torch.hub.load' is not allowed" in e for e in errors)
