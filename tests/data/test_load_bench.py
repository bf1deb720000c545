"""`wam-pipe bench load --json` on a tiny synthetic set: the interface other tools read."""

from __future__ import annotations

import json

from wam_pipe.cli import main

ARMS = {"per_file_reference", "per_file_resized", "shards", "decode_ceiling"}


def test_bench_load_json_reports_every_arm(synth_coco, tmp_path, capsys):
    images, annotations = synth_coco
    code = main(["bench", "load", "--images", str(images), "--annotations", str(annotations), "--workers", "1",
                 "--batch-size", "4", "--epochs", "1", "--cache", "cold", "--workdir", str(tmp_path / "w"), "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert ARMS <= set(result["img_per_s"]) and ARMS <= set(result["first_batch_s"])
    assert all(result["img_per_s"][arm] > 0 for arm in ARMS)
    assert all(result["first_batch_s"][arm] > 0 for arm in ARMS)
    assert result["cache"] == "cold" and result["settings"]["samples"] == 36
    assert result["ratios"]["shards_vs_reference"] > 0
    assert sorted(p.name for p in (tmp_path / "w" / "resized").iterdir())[:2] == ["000000000001.jpg",
                                                                                  "000000000001.json"]
