"""benchmarks/gpu.sh --smoke --device cpu: every section of the GPU check runs, at tiny size, on the CPU.

The GPU run itself needs an H200; this keeps its code paths (data build, precision/sync checks, the bench sections,
the summary) working between GPU runs.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

SECTIONS = ["env", "data", "checks", "speed", "ablation", "loader", "compile"]


def _smoke(repo_root, tmp_path, *sections: str) -> subprocess.CompletedProcess:
    command = [str(repo_root / "benchmarks" / "gpu.sh"), "--smoke", "--device", "cpu", "--out",
               str(tmp_path / "out"), "--work", str(tmp_path / "work")]
    if sections:
        command += ["--sections", *sections]
    env = {**os.environ, "BUDGET": "600", "OMP_NUM_THREADS": "1"}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=700)


def _check_sections(summary: dict, names: list[str]) -> None:
    assert list(summary["sections"]) == names
    for name in names:
        assert summary["sections"][name]["status"] == "ok", (name, summary["sections"][name])


@pytest.mark.slow  # ~1 min: six sections, each a fresh process; compiles the tiny models once (checks)
def test_smoke_default_sections(repo_root, tmp_path):
    names = [name for name in SECTIONS if name != "compile"]  # the default sections
    result = _smoke(repo_root, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    out = tmp_path / "out"
    assert sorted(p.name for p in out.iterdir()) == ["gpu_check.json", "gpu_check.md", "log.txt"]
    summary = json.loads((out / "gpu_check.json").read_text())
    _check_sections(summary, names)
    sections = summary["sections"]
    assert sections["env"]["result"]["matmul_bf16_tflops"] > 0
    checks = sections["checks"]["result"]
    assert set(checks) == {"bf16", "fp16_fused", "fp16_unfused", "fp32", "bf16_compiled"}
    assert all(case["ok"] and case["finite"] for case in checks.values())
    assert checks["bf16_compiled"]["graphs_compiled_timed"] == 0  # compiled in the warm-up, no recompiles after
    assert {case["precision"] for case in checks.values()} == {"bf16", "fp16", "fp32"}
    speed = sections["speed"]["result"]["arms"]
    assert {"default", "batch2", "batch4", "batch8"} == set(speed)
    assert all(arm["img_per_s"] > 0 for arm in speed.values())
    ablation = sections["ablation"]["result"]["arms"]
    assert {"sync_every_step", "channels_last_on", "fused_optimizer_on"} <= set(ablation)
    assert any(name.startswith("precision_") for name in ablation)        # the other precision than configured
    assert "compile_on" not in ablation
    loader = sections["loader"]["result"]["arms"]
    assert loader["loader"]["data_wait"] >= 0 and "loader_workers_0" in loader
    markdown = (out / "gpu_check.md").read_text()
    for title in ("CUDA path checks", "Batch size", "Ablation", "Real loader"):
        assert f"## {title}" in markdown


@pytest.mark.slow
def test_smoke_compile_section(repo_root, tmp_path):
    result = _smoke(repo_root, tmp_path, "data", "compile")
    assert result.returncode == 0, result.stdout + result.stderr
    summary = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    _check_sections(summary, ["data", "compile"])
    arms = summary["sections"]["compile"]["result"]["arms"]
    assert arms["compile_on"]["error"] is None and arms["compile_on"]["img_per_s"] > 0
    assert arms["compile_on"]["warmup_s"] > 0  # compilation happens in the warm-up


def test_sections_past_their_time_are_stopped_and_reported(repo_root, tmp_path):
    assert _smoke(repo_root, tmp_path, "data").returncode == 0
    command = [str(repo_root / "benchmarks" / "gpu.sh"), "--smoke", "--device", "cpu", "--out",
               str(tmp_path / "out"), "--work", str(tmp_path / "work"), "--sections", "speed", "compile",
               "--section-limit", "1"]  # a bench process needs seconds just to import torch and build its models
    result = subprocess.run(command, capture_output=True, text=True, env={**os.environ, "BUDGET": "60"},
                            timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr  # not every section succeeded
    summary = json.loads((tmp_path / "out" / "gpu_check.json").read_text())
    for name in ("speed", "compile"):
        entry = summary["sections"][name]
        assert entry["status"].startswith("timeout after 1 s") and entry["seconds"] < 10, entry
    assert "## Batch size" not in (tmp_path / "out" / "gpu_check.md").read_text()
