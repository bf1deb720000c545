"""Sweep expansion (`--multirun`): Hydra's grammar into points, every point validated, bad sweeps in one line."""

from __future__ import annotations

import pytest

from wam_pipe.cli import main
from wam_pipe.config.sweep import compose_sweep, expand
from wam_pipe.core.errors import ConfigError, UserError


def test_the_product_of_the_swept_keys_last_varying_fastest():
    swept, points, values = expand(["run.epochs=2", "stages.step.optimizer.lr=1e-3,5e-4", "run.seed=range(0,3)"],
                                   "p.yaml")
    assert swept == {"stages.step.optimizer.lr": ["0.001", "0.0005"], "run.seed": ["0", "1", "2"]}
    assert len(points) == 6
    assert points[0] == ["run.epochs=2", "stages.step.optimizer.lr=0.001", "run.seed=0"]
    assert points[4] == ["run.epochs=2", "stages.step.optimizer.lr=0.0005", "run.seed=1"]
    assert values[5] == {"stages.step.optimizer.lr": "0.0005", "run.seed": "2"}


def test_choice_and_an_added_key():
    swept, points, _ = expand(["+vars.tag=choice(a,b)"], "p.yaml")
    assert swept == {"+vars.tag": ["a", "b"]} and points == [["+vars.tag=a"], ["+vars.tag=b"]]


@pytest.mark.parametrize("overrides, message", [
    (["run.seed=range(3,3)"], "p.yaml: run.seed: empty sweep, 'run.seed=range(3,3)' gives no values; "
                              "e.g. run.seed=1,2 or run.seed=range(0,3)"),
    (["run.seed=3"], "p.yaml: --multirun but nothing to sweep; give a key several values, e.g. run.seed=0,1 or "
                     "run.seed=range(0,3)"),
    (["run.seed=1,2", "run.seed=3,4"], "p.yaml: run.seed: swept twice (override 'run.seed=3,4'); give all its values "
                                       "in one override"),
    (["run.seed=interval(0,1)"], "p.yaml: run.seed: interval(...) has no finite list of values; list them (a=1,2) "
                                 "or use range(start,stop,step) (override 'run.seed=interval(0,1)')"),
])
def test_bad_sweeps_are_one_line(overrides, message):
    with pytest.raises(UserError) as info:
        expand(overrides, "p.yaml")
    assert info.value.lines == [message]


def test_every_point_is_validated(repo_root):
    path = str(repo_root / "pipelines" / "quickstart.yaml")
    sweep = compose_sweep(path, ["run.seed=range(0,2)", "run.epochs=1,2"])
    assert [p.resolved["run"]["seed"] for p in sweep.pipelines] == [0, 0, 1, 1]
    assert [p.resolved["run"]["epochs"] for p in sweep.pipelines] == [1, 2, 1, 2]
    assert len(sweep.id) == 8
    # the id is what the points compute: the same values written differently give the same id
    assert compose_sweep(path, ["run.seed=0,1"]).id == compose_sweep(path, ["run.seed=range(0,2)"]).id
    assert compose_sweep(path, ["run.seed=0,1"]).id != compose_sweep(path, ["run.seed=0,2"]).id
    # a value only some points get wrong: each failing point named, the good ones not
    with pytest.raises(ConfigError) as info:
        compose_sweep(path, ["run.epochs=1,0,-1"])
    assert len(info.value.errors) == 2
    assert info.value.errors[0].startswith(f"point 1 (run.epochs=0): {path}: run.epochs")
    assert info.value.errors[1].startswith(f"point 2 (run.epochs=-1): {path}: run.epochs")


def test_a_swept_key_that_does_not_exist_is_one_line(repo_root, capsys):
    path = str(repo_root / "pipelines" / "quickstart.yaml")
    assert main(["validate", path, "--multirun", "stages.step.optimizr.lr=1e-3,1e-4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"{path}: stages.step.optimizr.lr: no such key; did you mean 'stages.step.optimizer'? "
                   f"(override 'stages.step.optimizr.lr=0.001')"]
    assert main(["validate", path, "--multirun", "run.seed=range(0,0)"]) == 2
    assert "empty sweep" in capsys.readouterr().err
    assert main(["validate", path, "--multirun", "run.seed=0,1", "stages.step.scaling_w=0.5,1.0"]) == 0
    assert "ok, 4 points (run.seed (2), stages.step.scaling_w (2)), sweep" in capsys.readouterr().out


def test_a_sweep_without_multirun_says_how(repo_root, capsys):
    path = str(repo_root / "pipelines" / "quickstart.yaml")
    assert main(["run", path, "run.seed=0,1"]) == 2
    assert "add --multirun to run every point" in capsys.readouterr().err
