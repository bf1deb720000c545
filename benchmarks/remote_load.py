"""`wam-pipe bench load` from an HTTP server and from an S3 API server (moto) vs local disk, with and without cache.

Everything runs on this machine, on 127.0.0.1: a synthetic COCO set is written and built into shards under WORK,
`python -m http.server` serves the shard folder, `python -m moto.server` holds a copy in bucket `bench`; then one
`wam-pipe bench load` run interleaves the arms `shards` (local disk), `remote http`, `remote http cached`,
`remote s3`, `remote s3 cached` (same shards, loader, batch size and workers). The cached arms fill their cache in
the warm-up epoch, so their measured epochs read the local cache. CPU ms/img counts the loader's processes (main +
workers, the fsspec I/O thread included), not the servers'.

Also printed: what streaming costs in extra reading. A worker's span can start inside a shard; a stream cannot seek,
so the samples before it are read and discarded. The plan gives how many per epoch (`discarded_fraction`).

Usage: python benchmarks/remote_load.py [--images 1200] [--workers 2] [--epochs 3] [--samples-per-shard 32]
Needs `pip install -e '.[test]'` (s3fs, moto[server]); writes only under ${TMPDIR:-/tmp}/wam-bench-remote.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start(command: list[str], probe: str, env: dict[str, str]) -> subprocess.Popen:
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(probe, timeout=2).read()
            return process
        except urllib.error.HTTPError:
            return process
        except OSError:
            time.sleep(0.2)
    process.kill()
    raise SystemExit(f"{command[2]} did not answer {probe} within 60 s")


def wam(*args: str, env: dict[str, str] | None = None, capture: bool = False) -> str:
    result = subprocess.run([sys.executable, "-m", "wam_pipe", *args], env=env, check=True, text=True,
                            stdout=subprocess.PIPE if capture else None)
    return result.stdout if capture else ""


def discarded_fraction(unit_sizes: list[int], workers: int, batch_size: int, epochs: int) -> float:
    """Samples read only to be discarded (before a piece's start) / samples delivered, averaged over epochs."""
    from wam_pipe.data.readers import epoch_plan as plan

    discarded = delivered = 0
    for epoch in range(epochs):
        for worker in range(max(workers, 1)):
            split = plan.Split(1, 0, max(workers, 1), worker, batch_size, True)
            for piece in plan.epoch_pieces(unit_sizes, split, 0, epoch, True):
                discarded += piece.start
                delivered += piece.stop - piece.start
    return discarded / max(delivered, 1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=1200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--samples-per-shard", type=int, default=32)
    args = parser.parse_args()
    work = Path(os.environ.get("TMPDIR", tempfile.gettempdir())) / "wam-bench-remote"
    synth, bench = work / "synth", work / "bench"
    wam("data", "synth", "--out", str(synth), "--images", str(args.images), "--seed", "0")
    images, annotations = str(synth / "images"), str(synth / "annotations.json")
    shards = bench / "shards"
    wam("shard", "build", "--images", images, "--annotations", annotations, "--out", str(shards),
        "--samples-per-shard", str(args.samples_per_shard), "--max-skipped-fraction", "1", "--no-progress")

    env = {**os.environ, **CREDENTIALS}
    http_port, s3_port = free_port(), free_port()
    http = start([sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(http_port), "--directory",
                  str(shards)], f"http://127.0.0.1:{http_port}/", env)
    moto = start([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
                 f"http://127.0.0.1:{s3_port}/moto-api/", env)
    endpoint = f"http://127.0.0.1:{s3_port}"
    try:
        os.environ.update(CREDENTIALS)
        import s3fs

        fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True)
        fs.mkdir("bench")
        for path in sorted(shards.iterdir()):
            if path.is_file():
                fs.put_file(str(path), f"bench/shards/{path.name}")
        arms = "shards,remote http,remote http cached,remote s3,remote s3 cached"
        out = wam("bench", "load", "--images", images, "--annotations", annotations, "--workdir", str(bench),
                  "--samples-per-shard", str(args.samples_per_shard), "--workers", str(args.workers),
                  "--batch-size", str(args.batch_size), "--epochs", str(args.epochs),
                  "--remote", f"http://127.0.0.1:{http_port}", "--remote", "s3://bench/shards", "--arms", arms,
                  "--json", env={**env, "AWS_ENDPOINT_URL": endpoint}, capture=True)
    finally:
        for process in (http, moto):
            process.kill()
            process.wait()
    result = json.loads(out)
    manifest = json.loads((shards / "manifest.json").read_text())
    sizes = [int(s["samples"]) for s in manifest["shards"]]
    result["discarded_fraction"] = round(discarded_fraction(sizes, args.workers, args.batch_size, args.epochs), 4)
    base_rate, base_cpu = result["img_per_s"]["shards"], result["cpu_ms_per_img"]["shards"]
    print(f"{result['settings']['samples']} samples, {len(sizes)} shards of {args.samples_per_shard}, "
          f"{args.workers} workers, batch {args.batch_size}, {args.epochs} measured epochs (median)")
    print(f"{'arm':<22}{'img/s':>9}{'x local':>9}{'CPU ms/img':>12}{'x local':>9}{'first batch s':>15}")
    for arm, rate in result["img_per_s"].items():
        cpu = result["cpu_ms_per_img"][arm]
        print(f"{arm:<22}{rate:>9.1f}{rate / base_rate:>9.2f}{cpu or float('nan'):>12.3f}"
              f"{(cpu or 0) / base_cpu if base_cpu else float('nan'):>9.2f}{result['first_batch_s'][arm]:>15.3f}")
    print(f"streamed: samples read and discarded to reach a piece's start / samples delivered = "
          f"{result['discarded_fraction']:.2%}")
    (work / "result.json").write_text(json.dumps(result, indent=1))
    print(f"JSON: {work / 'result.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
