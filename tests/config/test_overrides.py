"""Override grammar edge cases: change, add, delete, list index, typos, signature-aware additions."""

from __future__ import annotations

import textwrap

import pytest

from wam_pipe.config import compose
from wam_pipe.core.errors import ConfigError

BODY = """\
version: 1
name: demo
vars: {nbits: 32, sizes: [1, 2, 3]}
stages:
  step:
    _target_: torch.nn.Linear
    in_features: ${vars.nbits}
    out_features: 4
    opts:
      - {_target_: torch.optim.AdamW, _partial_: true, lr: 1.0e-3}
      - {_target_: torch.optim.SGD, _partial_: true, lr: 0.1}
"""


HOLDER = """\
class Holder:
    def __init__(self, opts: list | None = None, size: int = 1):
        self.opts = opts
"""


@pytest.fixture
def path(tmp_path, monkeypatch):
    (tmp_path / "ov_mod.py").write_text(HOLDER)
    monkeypatch.syspath_prepend(str(tmp_path))
    p = tmp_path / "p.yaml"
    body = textwrap.dedent(BODY).replace("    opts:", "    bias: true\n  eval:\n    _target_: ov_mod.Holder\n    opts:")
    p.write_text(body + "allow_targets: ['ov_mod.*']\n")
    return p


def test_change_existing_and_interpolated_value(path):
    p = compose(path, ["vars.nbits=16", "stages.step.out_features=8"])
    assert p.resolved["stages"]["step"]["in_features"] == 16
    assert p.resolved["stages"]["step"]["out_features"] == 8


def test_list_index_both_spellings(path):
    p = compose(path, ["stages.eval.opts.1.lr=0.5", "stages.eval.opts[0].lr=0.01", "vars.sizes.2=9"])
    assert p.resolved["stages"]["eval"]["opts"][1]["lr"] == 0.5
    assert p.resolved["stages"]["eval"]["opts"][0]["lr"] == 0.01
    assert p.resolved["vars"]["sizes"] == [1, 2, 9]


def test_parameter_left_at_default_needs_no_plus(path):
    p = compose(path, ["stages.eval.opts.0.weight_decay=0.05", "stages.step.device=cpu"])
    assert p.resolved["stages"]["eval"]["opts"][0]["weight_decay"] == 0.05
    assert p.resolved["stages"]["step"]["device"] == "cpu"


def test_typo_is_an_error_with_suggestion(path):
    with pytest.raises(ConfigError) as info:
        compose(path, ["stages.eval.opts.0.lrr=1e-4"])
    (error,) = info.value.errors
    assert error == (f"{path}: stages.eval.opts.0.lrr: no such key; did you mean 'stages.eval.opts.0.lr'? "
                     f"(override 'stages.eval.opts.0.lrr=1e-4')")


def test_typo_far_from_key_points_to_where_it_exists(path):
    with pytest.raises(ConfigError) as info:
        compose(path, ["stages.lr=1"])
    (error,) = info.value.errors
    assert "'lr' exists at stages.eval.opts.0.lr" in error


def test_add_and_force_add(path):
    p = compose(path, ["+vars.extra=hello", "++vars.nbits=8", "++vars.more=[1,2]"])
    assert p.resolved["vars"]["extra"] == "hello"
    assert p.resolved["vars"]["nbits"] == 8
    assert p.resolved["vars"]["more"] == [1, 2]
    with pytest.raises(ConfigError, match="already exists"):
        compose(path, ["+vars.nbits=8"])


def test_delete(path):
    p = compose(path, ["~stages.eval.opts.1", "~stages.step.bias"])
    assert len(p.resolved["stages"]["eval"]["opts"]) == 1
    assert "bias" not in p.resolved["stages"]["step"]
    with pytest.raises(ConfigError, match="cannot delete, no such key"):
        compose(path, ["~stages.step.nope"])


def test_null_and_types_are_validated_after_override(path):
    with pytest.raises(ConfigError) as info:
        compose(path, ["stages.step.out_features=null", "stages.step.in_features=abc"])
    joined = "\n".join(info.value.errors)
    assert "stages.step.out_features: expected int, got None" in joined
    assert "stages.step.in_features: expected int, got 'abc'" in joined


def test_unparsable_override(path):
    with pytest.raises(ConfigError, match="cannot parse"):
        compose(path, ["stages.step.out_features=="])


def test_swapping_a_component_target(path):
    p = compose(path, ["stages.eval.opts.1._target_=torch.optim.Adam"])
    assert p.resolved["stages"]["eval"]["opts"][1]["_target_"] == "torch.optim.Adam"


def test_run_settings_need_no_plus(path):
    p = compose(path, ["run.log_every=5", "run.tensorboard=false"])          # the file has no run: block at all
    assert p.resolved["run"] == {"log_every": 5, "tensorboard": False}
    with pytest.raises(ConfigError, match="did you mean 'run.epochs'"):
        compose(path, ["run.epoch=3"])


@pytest.mark.parametrize("value", ["1,2", "range(1,3)", "choice(1,2)", "interval(0,1)"])
def test_sweeps_are_refused(path, value):
    with pytest.raises(ConfigError) as info:
        compose(path, [f"stages.step.out_features={value}"])
    (error,) = info.value.errors
    assert error == (f"{path}: stages.step.out_features: a sweep, and one run is one configuration; add --multirun "
                     f"to run every point, or give one value (a list is written [1,2]) "
                     f"(override 'stages.step.out_features={value}')")


def test_empty_key_and_package_syntax_are_refused(path):
    with pytest.raises(ConfigError) as info:
        compose(path, ["=3", "+group@pkg=x"])
    assert info.value.errors == [
        f"{path}: override '=3': empty key; an override is key=value, e.g. run.epochs=3",
        f"{path}: group: package syntax (@pkg) is not supported: wam-pipe has no config groups; name the full "
        f"dotted key, e.g. +vars.group=... (override '+group@pkg=x')",
    ]


@pytest.mark.parametrize("override", ["vars.sizes.5=4", "+vars.sizes.3=4", "vars.sizes.x=4"])
def test_list_index_past_the_end_says_to_set_the_whole_list(path, override):
    with pytest.raises(ConfigError) as info:
        compose(path, [override])
    (error,) = info.value.errors
    key = override.lstrip("+").split("=")[0]
    assert error.startswith(f"{path}: {key}: 'vars.sizes' is a list of 3 items (indices 0..2); ")
    assert error.endswith("to add or remove items set the whole list: vars.sizes=[1,2,3] (its current value) "
                          f"(override '{override}')")
    assert "list index out of range" not in error
