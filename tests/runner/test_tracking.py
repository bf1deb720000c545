"""Experiment trackers through the real `wam-pipe run`: TensorBoard events read back with TensorBoard's own reader
(scalars, eval pictures, config text, HParams), purge on resume, W&B offline run files and an MLflow SQLite store read
back with each library's own formats and client, validation of `run.loggers`, and (slow) a real `tensorboard` server
serving the run's scalars and pictures over its HTTP API, the JSON its web page draws from."""

from __future__ import annotations

import glob
import json
import shutil
import socket
import struct
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from wam_pipe.cli import main
from wam_pipe.core import tracking

PIPELINE = """\
version: 1
name: tracked
run: {{device: cpu, epochs: 2, log_every: 2, seed: 0, eval_every: 1, keep_checkpoints: 1, loggers: {loggers},
       project: wam-test, tags: [ci]}}
stages:
  load: {{_target_: wam_pipe.stages.Load, shards: {shards}, size: 32, batch_size: 8, workers: 0}}
  augment: {{_target_: wam_pipe.stages.Augment}}
  step:
    _target_: wam_pipe.stages.Step
    embedder: {{_target_: wam_pipe.models.ConvEmbedder, nbits: 8, channels: 8, depth: 1}}
    extractor: {{_target_: wam_pipe.models.ConvExtractor, nbits: 8, channels: 8, depth: 1, img_size: 32}}
    optimizer: {{_target_: torch.optim.AdamW, _partial_: true, lr: 0.001}}
    losses: {{_target_: wam_pipe.losses.WatermarkLosses}}
    img_size: 32
  eval:
    _target_: wam_pipe.stages.Eval
    max_images: 6
    masks: [full]
    augs: {{identity: null}}
    pictures: 2
    data: {{_target_: wam_pipe.stages.Load, shards: {shards}, size: 32, batch_size: 3, workers: 0, shuffle: false,
            drop_last: false, random_subset: 0.0}}
"""


def write_pipeline(folder: Path, shards: Path, loggers: str) -> Path:
    path = folder / "tracked.yaml"
    path.write_text(PIPELINE.format(shards=shards, loggers=loggers))
    return path


@pytest.fixture(scope="module")
def tracked_run(tiny_shards, tmp_path_factory) -> Path:
    """One 2-epoch run with all three trackers (W&B offline, MLflow in a SQLite store in the run dir)."""
    root = tmp_path_factory.mktemp("tracked")
    pipeline = write_pipeline(root, tiny_shards, "[tensorboard, wandb, mlflow]")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("WANDB_MODE", "offline")
        env.setenv("WANDB_SILENT", "true")
        env.delenv("WANDB_API_KEY", raising=False)
        env.delenv("MLFLOW_TRACKING_URI", raising=False)
        assert main(["run", str(pipeline), "--output-dir", str(root / "run")]) == 0
    return root / "run"


def tensorboard_events(run_dir: Path) -> EventAccumulator:
    events = EventAccumulator(str(run_dir / "tb"), size_guidance={"images": 0, "scalars": 0, "tensors": 0})
    return events.Reload()


def test_tensorboard_gets_train_and_eval_scalars_pictures_config_and_hparams(tracked_run):
    events = tensorboard_events(tracked_run)
    tags = events.Tags()
    log = [json.loads(line) for line in (tracked_run / "log.jsonl").read_text().splitlines()]
    train_steps = [r["step"] for r in log if r["kind"] == "train"]
    assert [e.step for e in events.Scalars("train/loss")] == train_steps
    assert {"epoch/loss", "train/lr", "eval/bit_acc", "eval/miou", "eval/psnr"} <= set(tags["scalars"])
    metrics = json.loads((tracked_run / "eval" / "metrics.json").read_text())
    assert events.Scalars("eval/bit_acc")[-1].value == pytest.approx(metrics["summary"]["bit_acc"])
    assert len(events.Scalars("eval/bit_acc")) == 2                 # eval_every: 1, two epochs
    assert {"eval/grid", "eval/robustness"} <= set(tags["images"])
    grid = events.Images("eval/grid")[-1]
    assert grid.step == metrics["step"] and grid.width > 32 and grid.encoded_image_string[:4] == b"\x89PNG"
    config = events.Tensors("config/text_summary")[0].tensor_proto.string_val[0].decode()
    assert "name: tracked" in config and "ConvEmbedder" in config
    hparams = events.PluginTagToContent("hparams")
    assert {"_hparams_/experiment", "_hparams_/session_start_info"} <= set(hparams)
    assert b"stages.step.optimizer.lr" in hparams["_hparams_/session_start_info"]
    assert events.Scalars("hparams/eval/bit_acc")[0].value == pytest.approx(metrics["summary"]["bit_acc"])


def wandb_records(run_file: Path) -> list:
    """The protobuf records of a W&B `.wandb` file (LevelDB log framing: 32 KiB blocks of records, each with a
    7-byte header `crc32c u32, length u16, type u8`, after W&B's 7-byte file header)."""
    from wandb.proto import wandb_internal_pb2

    data, block, pos, pending, records = run_file.read_bytes(), 32768, 7, b"", []
    assert data[:4] == b":W&B"
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        payload, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
        if kind == 0:
            pos += block - pos % block if pos % block else 0
            continue
        pending = payload if kind in (1, 2) else pending + payload
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
    return records


def test_wandb_offline_run_holds_the_logged_history_and_summary(tracked_run):
    ids = json.loads((tracked_run / "trackers.json").read_text())
    run_files = glob.glob(str(tracked_run / "wandb" / f"offline-run-*-{ids['wandb']}" / f"run-{ids['wandb']}.wandb"))
    assert len(run_files) == 1
    records = wandb_records(Path(run_files[0]))
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.project == "wam-test" and list(run.tags) == ["ci"]
    history = [{item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in r.history.item}
               for r in records if r.WhichOneof("record_type") == "history"]
    losses = [(h["_step"], h["train/loss"]) for h in history if "train/loss" in h]
    log = [json.loads(line) for line in (tracked_run / "log.jsonl").read_text().splitlines()]
    assert losses == [(r["step"], pytest.approx(r["loss"])) for r in log if r["kind"] == "train"]
    assert any("eval/bit_acc" in h for h in history)
    summary_keys = {item.key or "/".join(item.nested_key) for r in records if r.WhichOneof("record_type") == "summary" for item in r.summary.update}
    assert "final/eval/bit_acc" in summary_keys


def test_mlflow_store_holds_metrics_params_pictures_and_config(tracked_run):
    from mlflow.tracking import MlflowClient

    from wam_pipe.runner.tracking.mlflow_tracker import local_store

    client = MlflowClient(tracking_uri=local_store(tracked_run))
    run = client.get_run(json.loads((tracked_run / "trackers.json").read_text())["mlflow"])
    assert run.info.status == "FINISHED"
    assert client.get_experiment(run.info.experiment_id).name == "wam-test"
    log = [json.loads(line) for line in (tracked_run / "log.jsonl").read_text().splitlines()]
    history = client.get_metric_history(run.info.run_id, "train/loss")
    assert [(m.step, m.value) for m in history] == [(r["step"], pytest.approx(r["loss"])) for r in log
                                                    if r["kind"] == "train"]
    assert run.data.params["stages.step.optimizer.lr"] == "0.001"
    assert "final/eval/bit_acc" in run.data.metrics
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "eval"} <= artifacts
    pictures = [a.path for folder in client.list_artifacts(run.info.run_id, "eval")
                for a in client.list_artifacts(run.info.run_id, folder.path)]
    assert any(p.endswith("grid.png") for p in pictures) and any(p.endswith("robustness.png") for p in pictures)


def test_resume_continues_the_tensorboard_stream_without_duplicate_steps(tiny_shards, tmp_path):
    pipeline = write_pipeline(tmp_path, tiny_shards, "[tensorboard]")
    run = tmp_path / "run"
    assert main(["run", str(pipeline), "--output-dir", str(run)]) == 0
    first = [(e.step, e.value) for e in tensorboard_events(run).Scalars("train/loss")]
    # A run killed during epoch 2: its last checkpoint is the one of epoch 1, its events reach the end.
    shutil.copy(run / "checkpoints" / "epoch-0001.pt", run / "checkpoints" / "last.pt")
    assert main(["run", str(pipeline), "--output-dir", str(run)]) == 0
    events = tensorboard_events(run)
    steps = [e.step for e in events.Scalars("train/loss")]
    assert steps == sorted(set(steps)) == [step for step, _ in first]
    assert [e.step for e in events.Scalars("eval/bit_acc")] == sorted({e.step for e in events.Scalars("eval/bit_acc")})
    assert len(events.Tensors("config/text_summary")) == 1          # the config is logged by the fresh start only


def test_loggers_are_validated_naming_the_extra_to_install(tiny_shards, tmp_path, monkeypatch, capsys):
    pipeline = write_pipeline(tmp_path, tiny_shards, "[tensorboard, neptune]")
    assert main(["validate", str(pipeline)]) == 2
    err = capsys.readouterr().err
    assert "run.loggers: unknown logger 'neptune'; choose from tensorboard, wandb, mlflow" in err
    assert "Traceback" not in err
    # A package that is not installed (the registry entry points at one that does not exist).
    monkeypatch.setitem(tracking.TRACKERS, "wandb", tracking.TrackerKind("wandb_tracker", "wam_no_such_package",
                                                                         "wandb"))
    pipeline = write_pipeline(tmp_path, tiny_shards, "[wandb]")
    assert main(["validate", str(pipeline)]) == 2
    assert ("run.loggers: wandb: wam_no_such_package is not installed; pip install 'wam-pipe[wandb]'"
            in capsys.readouterr().err)


def test_no_loggers_writes_no_tracker_files(tiny_shards, tmp_path):
    pipeline = write_pipeline(tmp_path, tiny_shards, "[]")
    assert main(["run", str(pipeline), "--output-dir", str(tmp_path / "run"), "run.epochs=1"]) == 0
    assert not (tmp_path / "run" / "tb").exists() and not (tmp_path / "run" / "trackers.json").exists()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, **query: str) -> bytes:
    url = f"http://127.0.0.1:{port}{path}" + (f"?{urllib.parse.urlencode(query)}" if query else "")
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read()


@pytest.mark.slow
def test_tensorboard_serves_the_runs_scalars_and_pictures(tiny_shards, tmp_path):
    run = tmp_path / "run"
    assert main(["run", str(write_pipeline(tmp_path, tiny_shards, "[tensorboard]")), "--output-dir", str(run)]) == 0
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(run / "tb"), "--host",
                               "127.0.0.1", "--port", str(port), "--reload_interval", "0"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline, tags = time.monotonic() + 90, {}
        while time.monotonic() < deadline and "train/loss" not in json.dumps(tags):
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            try:
                tags = json.loads(get(port, "/data/plugin/scalars/tags"))
            except OSError:
                pass
            time.sleep(0.5)
        assert "." in tags, f"TensorBoard did not list the run within 90 s: {tags}"
        assert {"train/loss", "epoch/bit_acc", "eval/bit_acc"} <= set(tags["."])
        loss = json.loads(get(port, "/data/plugin/scalars/scalars", run=".", tag="train/loss"))
        log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
        assert [point[1] for point in loss] == [r["step"] for r in log if r["kind"] == "train"]
        images = json.loads(get(port, "/data/plugin/images/tags"))
        assert {"eval/grid", "eval/robustness"} <= set(images["."])
        entries = json.loads(get(port, "/data/plugin/images/images", run=".", tag="eval/grid"))
        picture = get(port, "/data/plugin/images/individualImage", **dict(urllib.parse.parse_qsl(
            entries[-1]["query"])))
        assert picture[:4] == b"\x89PNG" and len(picture) > 1000
    finally:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)
