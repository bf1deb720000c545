"""The editor schema (schemas/pipeline.schema.json) flags typos inside nested components too."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

jsonschema = pytest.importorskip("jsonschema")


@pytest.fixture(scope="module")
def validator(repo_root):
    schema = json.loads((repo_root / "schemas" / "pipeline.schema.json").read_text())
    return jsonschema.Draft7Validator(schema)


@pytest.fixture(scope="module")
def quickstart(repo_root) -> dict:
    return yaml.safe_load((repo_root / "pipelines" / "quickstart.yaml").read_text())


def test_the_shipped_quickstart_passes(validator, quickstart):
    assert list(validator.iter_errors(quickstart)) == []


@pytest.mark.parametrize("edit", [
    ("step", "embedder", "chanels", 3),                             # unknown argument of a model
    ("step", "extractor", "_target_", "wam_pipe.models.ConvExtractr"),  # misspelled wam_pipe target
    ("step", "optimizer", "lrr", 1),                                  # unknown argument of a torch optimizer
    ("step", "losses", "detection", "fast"),                         # wrong type inside the losses
    ("eval", "data", "batch_sise", 3),                               # unknown argument of eval's loader
])
def test_nested_typos_are_flagged(validator, quickstart, edit):
    stage, component, key, value = edit
    data = copy.deepcopy(quickstart)
    data["stages"][stage][component][key] = value
    errors = list(validator.iter_errors(data))
    assert errors and all(list(e.path)[:2] == ["stages", stage] for e in errors)


def test_a_component_slot_needs_a_component(validator, quickstart):
    data = copy.deepcopy(quickstart)
    data["stages"]["eval"]["data"] = "wam_pipe.stages.Load"
    assert list(validator.iter_errors(data))
    data["stages"]["eval"]["data"] = "${vars.loader}"   # an interpolation may stand for one
    assert not list(validator.iter_errors(data))


def test_other_components_exclude_wam_pipe_targets(validator):
    other = validator.schema["definitions"]["other_component"]
    sub = jsonschema.Draft7Validator(other)
    assert sub.is_valid({"_target_": "my_lab.Model", "anything": 1})
    assert not sub.is_valid({"_target_": "wam_pipe.models.ConvEmbeder"})
    assert not sub.is_valid({"_target_": "torch.optim.AdamW"})   # a catalogue target must match its definition
