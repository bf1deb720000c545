"""`wam-pipe bench step`: arms interleaved in one process, medians and ratios, failures recorded per arm."""

from __future__ import annotations

import json

import pytest

from wam_pipe.bench.step_arms import loader_arms, parse_arm, step_arms
from wam_pipe.cli import main
from wam_pipe.config import compose

ROUNDS = 2


def _bench(pipeline, *extra: str) -> list[str]:
    return ["bench", "step", str(pipeline), "--steps", "2", "--warmup", "1", "--rounds", str(ROUNDS),
            "--batches", "2", "--threads", "1", *extra]


def test_json_reports_each_arm_interleaved_with_ratios(bench_pipeline, tmp_path, capsys):
    out = tmp_path / "step.json"
    code = main(_bench(bench_pipeline, "--ablate", "sync", "channels_last", "loader_workers_0",
                       "loader_persistent", "--arm", "batch2: stages.load.batch_size=2", "--json",
                       "--out", str(out)))
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert json.loads(out.read_text()) == result
    arms = result["arms"]
    expected = ["default", "sync_every_step", "channels_last_on", "loader", "loader_only", "loader_workers_0",
                "loader_persistent_workers_off", "batch2"]
    assert list(arms) == expected
    assert result["schedule"] == expected * ROUNDS  # A B C ..., A B C ...: interleaved rounds
    for name, entry in arms.items():
        assert entry["error"] is None, (name, entry["error"])
        assert len(entry["img_per_s_all"]) == ROUNDS and all(rate > 0 for rate in entry["img_per_s_all"])
        assert min(entry["img_per_s_all"]) <= entry["img_per_s"] <= max(entry["img_per_s_all"])
        assert 0.0 <= entry["data_wait"] <= 1.0
    assert arms["default"]["ratio"] == 1.0 and arms["loader"]["ratio"] == 1.0
    ratio = arms["sync_every_step"]["img_per_s"] / arms["default"]["img_per_s"]
    assert arms["sync_every_step"]["ratio"] == pytest.approx(ratio, abs=1e-3)
    assert arms["sync_every_step"]["read_every"] == 1 and arms["channels_last_on"]["overrides"] == \
        ["++run.channels_last=true"]
    assert arms["default"]["resident_mb"] > 0 and arms["default"]["cpu_ms_per_img"] > 0
    assert result["flops_per_img"] > 0 and result["precision"] == "fp32" and result["rounds_done"] == ROUNDS
    assert result["peak_tflops"] is None and arms["default"]["mfu"] is None  # no known peak for a CPU


def test_a_failing_arm_is_reported_and_the_others_still_run(bench_pipeline, capsys):
    code = main(_bench(bench_pipeline, "--modes", "memory", "--ablate",
                       "--arm", "bad_compile: ++stages.step.compile=true stages.step.compile_mode=bogus"))
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    row = {line.split()[0]: line for line in lines if line.startswith(("default ", "bad_compile "))}
    assert "failed" in row["bad_compile"] and "Unrecognized mode=bogus" in row["bad_compile"]
    assert "1.000x" in row["default"]
    assert any(line.startswith("arm ") and "vs default" in line and "data wait" in line for line in lines)


def test_an_invalid_arm_override_is_a_user_error_before_timing(bench_pipeline, capsys):
    code = main(_bench(bench_pipeline, "--arm", "typo: run.log_evry=3"))
    assert code == 2
    err = capsys.readouterr().err
    assert "log_evry" in err and "Traceback" not in err


def test_each_toggle_flips_the_effective_value(bench_pipeline):
    resolved = compose(bench_pipeline).resolved
    cpu = {arm.name: arm for arm in step_arms(resolved, "cpu", "fp32", world_size=1)}
    assert {"default", "sync_every_step", "channels_last_on", "precision_bf16", "compile_on",
            "fused_optimizer_on", "deterministic_on"} == set(cpu)
    cuda = {arm.name: arm for arm in step_arms(resolved, "cuda", "bf16", world_size=2)}
    assert {"precision_fp32", "precision_fp16", "fused_optimizer_off", "cudnn_benchmark_off", "tf32_off",
            "ddp_bucket_view_off", "ddp_find_unused_on"} <= set(cuda)
    assert not any(name.startswith("ddp_static_graph") for name in cuda)  # refused with the balanced loss
    unbalanced = compose(bench_pipeline, ["stages.step.losses.balanced=false"]).resolved
    assert "ddp_static_graph_off" in {arm.name for arm in step_arms(unbalanced, "cuda", "bf16", world_size=2)}
    assert "precision_bf16" not in cuda and cuda["fused_optimizer_off"].overrides == ["++run.fused_optimizer=false"]
    loaders = {arm.name: arm for arm in loader_arms(resolved, "cpu")}
    assert {"loader", "loader_only", "loader_workers_0", "loader_workers_2", "loader_prefetch_2",
            "loader_persistent_workers_off", "loader_batch_ring_off", "loader_channels_last_off"} == set(loaders)
    assert all(arm.mode == "loader" for arm in loaders.values()) and loaders["loader_only"].step_free
    custom = parse_arm("big@loader: stages.load.batch_size=8 stages.load.workers=0")
    assert (custom.name, custom.mode, custom.overrides) == ("big", "loader", ["stages.load.batch_size=8",
                                                                               "stages.load.workers=0"])
