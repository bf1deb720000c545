"""Building stages: every failing stage and every failing component inside one reported at once."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from wam_pipe.config import build_stages, compose
from wam_pipe.core.errors import ConfigError

PARTS = '''\
class Part:
    def __init__(self, size: int = 1):
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size


class Whole:
    def __init__(self, a: object = None, b: object = None, c: int = 1):
        if c < 1:
            raise ValueError(f"c must be >= 1, got {c}")
        self.a, self.b = a, b


BUILT = []


class Recorder:
    def __init__(self, size: int = 1):
        BUILT.append(size)
'''

PIPELINE = """\
version: 1
name: build-demo
allow_targets: ['parts_mod.*']
stages:
  step:
    _target_: parts_mod.Whole
    a: {_target_: parts_mod.Part, size: 1}
    b: {_target_: parts_mod.Part, size: 1}
  eval:
    _target_: parts_mod.Whole
    a: {_target_: parts_mod.Part}
"""


@pytest.fixture
def pipeline_file(tmp_path, monkeypatch) -> Path:
    (tmp_path / "parts_mod.py").write_text(PARTS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(__import__("sys").modules, "parts_mod", raising=False)
    path = tmp_path / "p.yaml"
    path.write_text(PIPELINE)
    return path


def build_errors(path: Path, overrides: list[str]) -> list[str]:
    pipeline = compose(path, overrides)
    with pytest.raises(ConfigError) as info:
        build_stages(pipeline.resolved, pipeline.file)
    return info.value.errors


def test_every_failing_stage_and_component_is_reported(pipeline_file):
    path = pipeline_file
    errors = build_errors(path, ["stages.step.a.size=0", "stages.step.b.size=-1", "stages.eval.c=0"])
    assert errors == [
        f"{path}: stages.step.a: could not build: ValueError: size must be >= 1, got 0",
        f"{path}: stages.step.b: could not build: ValueError: size must be >= 1, got -1",
        f"{path}: stages.eval: could not build: ValueError: c must be >= 1, got 0",
    ]


def test_a_stage_failing_itself_is_reported_once(pipeline_file):
    errors = build_errors(pipeline_file, ["stages.step.c=0"])
    assert errors == [f"{pipeline_file}: stages.step: could not build: ValueError: c must be >= 1, got 0"]


def test_clean_stages_are_built_when_others_have_validation_errors(pipeline_file):
    # eval has a validation error (a type), step a constructor error: both in one report
    with pytest.raises(ConfigError) as info:
        compose(pipeline_file, ["stages.eval.c=many", "stages.step.a.size=0"])
    assert info.value.errors == [
        f"{pipeline_file}: stages.eval.c: expected int, got 'many'",
        f"{pipeline_file}: stages.step.a: could not build: ValueError: size must be >= 1, got 0",
    ]


def test_nothing_is_built_when_a_target_is_refused(pipeline_file):
    import parts_mod

    body = PIPELINE.replace("  eval:\n    _target_: parts_mod.Whole\n    a: {_target_: parts_mod.Part}\n",
                            "  eval:\n    _target_: parts_mod.Recorder\n  load:\n    _target_: other_mod.f\n")
    pipeline_file.write_text(body)
    with pytest.raises(ConfigError) as info:
        compose(pipeline_file, ["stages.step.a.size=0"])
    assert any("'other_mod.f' is not allowed" in e for e in info.value.errors)
    assert not any("could not build" in e for e in info.value.errors)
    assert parts_mod.BUILT == []


def test_quickstart_constructor_errors_all_at_once(repo_root):
    """The audit's case: two model errors and an augmentation error, one run."""
    path = repo_root / "pipelines" / "quickstart.yaml"
    overrides = ["stages.step.embedder.channels=0", "stages.step.extractor.channels=0",
                 "stages.augment.augs.gaussian_blur.kernel_size=[4,4]"]
    with pytest.raises(ConfigError) as info:
        pipeline = compose(path, overrides)
        build_stages(pipeline.resolved, pipeline.file)
    joined = "\n".join(info.value.errors)
    assert len(info.value.errors) == 3, joined
    assert f"{path}: stages.augment.augs.gaussian_blur.kernel_size: [4, 4] contains no odd size" in joined
    assert textwrap.dedent(f"""\
        {path}: stages.step.embedder: could not build: ModelConfigError: ConvEmbedder: channels=0: must be positive
        {path}: stages.step.extractor: could not build: ModelConfigError: ConvExtractor: channels=0: must be positive
        """).strip() in joined
