"""Validation errors are product surface: each error class names the file, the dotted key and a suggestion."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from wam_pipe.config import compose
from wam_pipe.core.errors import ConfigError


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
    # a misspelled package is outside the allowlist (string check, nothing imported), with the component suggested
    path = write(tmp_path, BASE.replace("val_mod.Model", "wam_pipe.optimm.CosineWarmup"))
    errors = errors_of(path)
    assert any(e.startswith(f"{path}: stages.step._target_: 'wam_pipe.optimm.CosineWarmup' is not allowed")
               and "did you mean 'wam_pipe.optim.CosineWarmup'?" in e and "allow_targets" in e for e in errors)
    # a misspelled name inside an allowed package is imported and gets the import suggestion
    path = write(tmp_path, BASE.replace("val_mod.Model", "wam_pipe.optim.CosineWarmpu"))
    errors = errors_of(path)
    assert any("cannot import 'wam_pipe.optim.CosineWarmpu'" in e and "did you mean 'wam_pipe.optim.CosineWarmup'"
               in e for e in errors)


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
    from wam_pipe.core.errors import UserError

    with pytest.raises(UserError, match="no such pipeline file"):
        compose(tmp_path / "nope.yaml")
    bad = write(tmp_path, "version: 1\nname: [unclosed\n")
    with pytest.raises(UserError, match=r"line \d+, column \d+: invalid YAML"):
        compose(bad)


EVIL_PLACES = {
    # a stage
    "stage": "  eval:\n    _target_: evil_mod.boom\n",
    # a positional argument: hydra's instantiate builds `_target_` nodes inside `_args_` too
    "_args_": "  eval:\n    _target_: torch.nn.Identity\n    _args_:\n      - {_target_: evil_mod.boom}\n",
    # nested in `_args_` of a nested node
    "nested _args_": ("  eval:\n    _target_: torch.nn.Identity\n    x:\n      _target_: torch.nn.Identity\n"
                      "      _args_: [[{_target_: evil_mod.boom}]]\n"),
    # below stages whose check_config reads their children's signatures (before the children are checked)
    "augment child": ("  augment:\n    _target_: wam_pipe.stages.Augment\n    augs:\n"
                      "      x: {_target_: evil_mod.boom}\n"),
    "step child": "  eval:\n    _target_: wam_pipe.stages.Step\n    embedder: {_target_: evil_mod.boom}\n",
}


@pytest.mark.parametrize("place", list(EVIL_PLACES))
def test_disallowed_target_is_never_imported_or_called(tmp_path, monkeypatch, place):
    marker = tmp_path / "imported.txt"
    (tmp_path / "evil_mod.py").write_text(
        f"open({str(marker)!r}, 'w').write('imported')\n"
        f"def boom(*args, **kw):\n    open({str(marker)!r}, 'w').write('called')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "evil_mod", raising=False)
    built = tmp_path / "built.txt"
    (tmp_path / "val_mod.py").write_text(MODEL.replace("self.sub = sub", f"open({str(built)!r}, 'w').write('x')"))
    path = write(tmp_path, BASE + EVIL_PLACES[place])
    errors = errors_of(path)
    assert any("._target_: 'evil_mod.boom' is not allowed" in e and "allow_targets" in e for e in errors), errors
    assert errors[-1] == (f"{path}: stages: nothing was imported or built because of the refused target above; fix "
                          f"or trust it to see the other checks")
    assert not marker.exists()
    assert "evil_mod" not in sys.modules
    # nothing else was built either (val_mod.Model writes built.txt when constructed)
    assert not built.exists()
    # also not through an override that names it
    errors = errors_of(write(tmp_path, BASE), ["stages.step._target_=evil_mod.boom", "stages.step.x=1"])
    assert not marker.exists() and "evil_mod" not in sys.modules


def test_args_items_are_checked_like_keyword_arguments(tmp_path):
    body = BASE.replace("    in_features: ${vars.nbits}\n    out_features: 4\n",
                        "    _args_: [many, 4, true, null, 5]\n    out_features: 4\n")
    body += "  eval:\n    _target_: val_mod.Model\n    _args_: [1, 2]\n    sub: {_target_: torch.nn.Lineer}\n"
    path = write(tmp_path, body)
    errors = errors_of(path)
    assert f"{path}: stages.step._args_.0: (in_features) expected int, got 'many'" in errors
    assert f"{path}: stages.step.out_features: given twice, as _args_.1 and by name; keep one" in errors
    assert any(e.startswith(f"{path}: stages.step._args_: val_mod.Model takes at most 4 positional arguments") and
               "got 5" in e for e in errors)
    assert any(e.startswith(f"{path}: stages.eval.sub._target_: cannot import 'torch.nn.Lineer'") for e in errors)
    # _args_ filling the required parameters: no "missing required argument"
    assert not any("missing required argument" in e for e in errors)


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


def test_run_settings_out_of_range(tmp_path):
    body = BASE + ("run: {log_every: 0, checkpoint_every: 0, epochs: -1, eval_every: -2, keep_checkpoints: -1, "
                   "device: tpu, steps_per_epoch: 0, max_nonfinite_steps: -1, seed: 3}\n")
    path = write(tmp_path, body)
    errors = errors_of(path)
    expected = [
        "run.epochs: must be >= 1, got -1", "run.steps_per_epoch: must be >= 1, got 0",
        "run.eval_every: must be >= 0 (0 = only after the last epoch), got -2", "run.log_every: must be >= 1, got 0",
        "run.checkpoint_every: must be >= 1, got 0", "run.keep_checkpoints: must be >= 0 (0 = never), got -1",
        "run.max_nonfinite_steps: must be >= 0, got -1",
        "run.device: unknown device 'tpu'; use auto, cpu, cuda or cuda:N",
    ]
    assert errors == [f"{path}: {line}" for line in expected]
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        assert compose(write(tmp_path, BASE + f"run: {{device: '{device}'}}\n")).resolved["run"]["device"] == device


def test_invalid_interpolation_in_the_file_is_reported_per_key(tmp_path):
    body = BASE.replace("in_features: ${vars.nbits}", "in_features: ${vars").replace("lr: 1.0e-3", "lr: 'x ${}'")
    path = write(tmp_path, body)
    errors = errors_of(path)
    assert errors == [
        f"{path}: stages.step.in_features: invalid interpolation: no viable alternative at input '${{vars'; write "
        f"${{key.path}}, e.g. ${{vars.nbits}}",
        f"{path}: stages.step.sub.lr: invalid interpolation: no viable alternative at input '${{}}'; write "
        f"${{key.path}}, e.g. ${{vars.nbits}}",
    ]


def test_invalid_interpolation_in_an_override(tmp_path):
    path = write(tmp_path, BASE)
    (error,) = errors_of(path, ["stages.step.out_features='${vars'"])
    assert error.startswith(f"{path}: stages.step.out_features: invalid interpolation: ")
    assert error.endswith("(override 'stages.step.out_features='${vars'')")



def test_unresolvable_allow_targets_with_an_override_is_an_error_line(tmp_path):
    path = write(tmp_path, BASE.replace("allow_targets: ['val_mod.*']", "allow_targets: ['${vars.nope}']"))
    errors = errors_of(path, ["stages.step.bias=false"])
    assert any(e.startswith(f"{path}: allow_targets.0: Interpolation key 'vars.nope' not found") for e in errors)


def test_a_target_reaching_outside_the_allowed_modules_builds_nothing(tmp_path):
    path = write(tmp_path, BASE + "  eval:\n    _target_: wam_pipe.stages.load.Path\n    _args_: [x]\n")
    errors = errors_of(path)
    assert errors[0].startswith(f"{path}: stages.eval._target_: 'wam_pipe.stages.load.Path' is not allowed: "
                                f"'wam_pipe.stages.load.Path' comes from module 'pathlib'")
    assert errors[-1] == f"{path}: stages: nothing was built because of the refused target above; fix or trust it " \
                         f"to see the other checks"
    assert len(errors) == 2


@pytest.mark.parametrize("override, message", [
    ("stages.step.optimizer.lr=nan", "stages.step.optimizer.lr: must be a finite number, got nan"),
    ("stages.step.optimizer.lr=inf", "stages.step.optimizer.lr: must be a finite number, got inf"),
    ("stages.step.optimizer.lr=-1.0", "stages.step.optimizer: torch.optim.AdamW refuses these values: Invalid learning rate"),
    ("stages.step.optimizer.betas=[0.9,2.0]", "stages.step.optimizer: torch.optim.AdamW refuses these values: Invalid beta"),
    ("+stages.step.scheduler={_target_:wam_pipe.optim.CosineWarmup,_partial_:true,warmup:-3}",
     "stages.step.scheduler: wam_pipe.optim.CosineWarmup refuses these values: warmup must be >= 0"),
])
def test_optimizer_and_scheduler_values_are_checked_at_validate(override, message):
    # Issue 11 item 6: `validate` said OK and `run` died in torch's ValueError at the first step.
    from wam_pipe.config import compose
    from wam_pipe.core.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        compose(str(Path(__file__).resolve().parents[2] / "pipelines" / "quickstart.yaml"), [override])
    assert any(message in line for line in err.value.errors), err.value.errors


@pytest.mark.parametrize("name", ["../escape", "a/b", ".hidden", ""])
def test_a_pipeline_name_that_would_leave_runs_is_refused(tmp_path, name):
    # Issue 11 item 13: a name with `../` put the run dir outside runs/.
    path = tmp_path / "p.yaml"
    path.write_text(f"version: 1\nname: {name!r}\nstages: {{}}\n")
    with pytest.raises(ConfigError, match=r"p.yaml: name: "):
        compose(str(path))
