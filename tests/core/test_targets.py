"""The target allowlist: explicit compute-only trees, blocked code runners, and where an object really comes from."""

from __future__ import annotations

import textwrap

import pytest

from wam_pipe.config import compose
from wam_pipe.core.targets import TargetError, TargetNotAllowed, disallowed_reason, import_allowed
from wam_pipe.core.errors import ConfigError


@pytest.mark.parametrize("target", [
    "torch.utils.collect_env.run",          # runs a shell command
    "torch.utils.cpp_extension.load",       # compiles and loads C++
    "torch.hub.load", "torch.load", "torch.jit.load", "torch.package.PackageImporter",
    "torch.multiprocessing.spawn", "torch.distributed.run.main", "torch.compile",
    "torch.utils.data.datapipes.iter.FileLister", "torchvision.datasets.CocoDetection", "torchvision.io.read_file",
    "wam_pipe.runner.rundir.write_run_files",  # deletes a directory (fresh=True)
    "wam_pipe.cli.main",
])
def test_code_runners_and_file_access_are_not_allowed(target):
    reason = disallowed_reason(target)
    assert reason is not None and "not allowed" in reason and "allow_targets" in reason


@pytest.mark.parametrize("target", [
    "wam_pipe.stages.Step", "wam_pipe.models.sam_small", "wam_pipe.augment.JPEG", "wam_pipe.losses.WatermarkLosses",
    "wam_pipe.optim.CosineWarmup", "torch.optim.AdamW", "torch.optim.lr_scheduler.StepLR", "torch.nn.Linear",
    "torchvision.transforms.v2.RandomCrop", "torchvision.ops.box_iou",
])
def test_components_are_allowed(target):
    assert disallowed_reason(target) is None
    assert callable(import_allowed(target))


def test_a_wildcard_does_not_admit_blocked_or_private_targets():
    assert disallowed_reason("torch.nn.Linear", ["torch.*"]) is None
    assert "not allowed" in disallowed_reason("torch.utils.collect_env.run", ["torch.*"])
    assert "not allowed" in disallowed_reason("torch.hub.load", ["*"])
    assert "private or special" in disallowed_reason("torch.nn.Linear.__init__.__globals__", ["torch.*"])
    # naming the exact target is the user's explicit trust
    assert disallowed_reason("torch.hub.load", ["torch.hub.load"]) is None


@pytest.mark.parametrize("target, via", [
    ("wam_pipe.stages.load.Path", "pathlib"),                       # a name a module imported
    ("torch.nn.modules.module.torch.load", "torch"),                  # a module reached through another's imports
    ("torch.optim.optimizer.torch.hub.load", "torch"),
])
def test_objects_reached_through_a_modules_imports_are_refused(target, via):
    assert disallowed_reason(target) is None  # the string alone looks allowed
    with pytest.raises(TargetNotAllowed, match=rf"is not allowed: '.*' comes from module '{via}'.*allow_targets"):
        import_allowed(target)


def test_user_patterns_cover_their_modules(tmp_path, monkeypatch):
    (tmp_path / "lab_pkg").mkdir()
    (tmp_path / "lab_pkg" / "__init__.py").write_text("from os import getcwd\nfrom lab_pkg.impl import Model\n")
    (tmp_path / "lab_pkg" / "impl.py").write_text("class Model:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert import_allowed("lab_pkg.Model", ["lab_pkg.*"]).__name__ == "Model"
    with pytest.raises(TargetNotAllowed, match="comes from module 'posix'"):
        import_allowed("lab_pkg.getcwd", ["lab_pkg.*"])
    with pytest.raises(TargetError, match="did you mean 'lab_pkg.Model'"):
        import_allowed("lab_pkg.Modle", ["lab_pkg.*"])


def test_collect_env_in_a_pipeline_never_runs(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(f"""\
        version: 1
        name: x
        stages:
          eval:
            _target_: torch.utils.collect_env.run
            command: "touch {marker}"
        """))
    with pytest.raises(ConfigError) as info:
        compose(path)
    assert info.value.errors[0].startswith(f"{path}: stages.eval._target_: 'torch.utils.collect_env.run' is not "
                                           f"allowed")
    assert "allow_targets" in info.value.errors[0]
    assert not marker.exists()


def test_methods_of_components_are_not_targets():
    assert disallowed_reason("wam_pipe.stages.ShardBuild.run") is None
    with pytest.raises(TargetNotAllowed, match="'wam_pipe.stages.ShardBuild.run' is an attribute of "
                                               "'wam_pipe.stages.ShardBuild', not a class or function of a module"):
        import_allowed("wam_pipe.stages.ShardBuild.run")
    assert import_allowed("wam_pipe.stages.ShardBuild.run", ["wam_pipe.stages.ShardBuild.run"]) is not None
