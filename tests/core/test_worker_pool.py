"""Process pools whose workers do not inherit the parent's signal handlers.

Under Slurm, submitit's job process bypasses SIGTERM; a `multiprocessing.Pool` that was terminated (SIGTERM to its
workers) then waited forever for a worker that ignored it, and a Slurm job hung in `data synth` (CI's one-node
Slurm test). The fix: every pool worker starts with the default handlers, and finished pools are closed, not
terminated.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from concurrent.futures import ProcessPoolExecutor

from wam_pipe.core.worker_pool import process_context, reset_signal_handlers, worker_pool


def _sigterm_is_default(_: int) -> bool:
    return signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def _bypass(signum, frame) -> None:  # what submitit's handler does: log and carry on
    pass


def test_pool_workers_start_with_the_default_handlers():
    before = signal.signal(signal.SIGTERM, _bypass)
    try:
        with worker_pool(2) as pool:
            assert pool.map(_sigterm_is_default, range(4)) == [True] * 4
            pool.close()
            pool.join()
        with ProcessPoolExecutor(2, mp_context=process_context(), initializer=reset_signal_handlers) as pool:
            assert list(pool.map(_sigterm_is_default, range(4))) == [True] * 4
    finally:
        signal.signal(signal.SIGTERM, before)


SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from wam_pipe.data.synth import write_synthetic_coco
    from wam_pipe.data.shards.build import build_shards
    from wam_pipe.data.shards.build_state import BuildConfig
    from wam_pipe.data.shards.verify import verify_shards

    def bypass(signum, frame):  # submitit's SIGTERM handler in a Slurm job: log and carry on
        print(f"SIGTERM in {os.getpid()}", flush=True)

    signal.signal(signal.SIGTERM, bypass)
    root = sys.argv[1]
    write_synthetic_coco(root + "/images", root + "/ann.json", 40, workers=2, min_size=64, max_size=96)
    build_shards(BuildConfig(root + "/images", root + "/ann.json", root + "/shards", size=32, samples_per_shard=8,
                             workers=2, progress=False), log=lambda line: None)
    verify_shards(root + "/shards", workers=2)
    print(f"done in {os.getpid()}", flush=True)
""")


def test_synth_build_and_verify_finish_under_a_parent_that_bypasses_sigterm(tmp_path):
    """The Slurm hang, without Slurm: the three pools of the data tools run under a SIGTERM-bypassing parent; they
    finish (bounded by the timeout) and no worker ever received SIGTERM."""
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                            timeout=300, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    assert result.returncode == 0, result.stderr
    lines = result.stdout.split("\n")
    assert lines[-2].startswith("done in ") and not [line for line in lines if line.startswith("SIGTERM")], \
        result.stdout
