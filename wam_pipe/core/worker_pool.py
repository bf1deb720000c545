"""What every process pool of wam-pipe needs: the start method, and workers that do not inherit signal handlers.

A forked worker inherits its parent's Python signal handlers. Under Slurm, submitit's job process handles SIGTERM by
logging "Bypassing signal SIGTERM" and carrying on; `multiprocessing.Pool.terminate()` (what leaving a `with Pool()`
block calls) stops its workers with SIGTERM, and a worker that bypasses it while waiting for the pool's task lock
is never reaped: the job hung forever in `data synth` (seen in CI's one-node Slurm test). So every pool worker starts
with `reset_signal_handlers`, and pools that finished their work are closed and joined rather than terminated.
"""

from __future__ import annotations

import multiprocessing
import signal
from typing import Any

# Signals whose handlers belong to the parent process (submitit: SIGTERM bypass, SIGUSR2 requeue; our runner's
# preemption handling): in a worker they get the default action again.
_PARENT_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGUSR1", "SIGUSR2", "SIGHUP")
                        if hasattr(signal, name))


def reset_signal_handlers() -> None:
    """Default actions for the signals a parent may have taken over (call first in a pool worker's initializer)."""
    for number in _PARENT_SIGNALS:
        signal.signal(number, signal.SIG_DFL)


def process_context() -> Any:
    """The multiprocessing context of our pools: fork where the platform has it (workers share the parent's
    imports and read-only data), else spawn."""
    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def worker_pool(processes: int, initializer: Any = None, initargs: tuple = ()) -> Any:
    """A `multiprocessing.Pool` whose workers start with `reset_signal_handlers`, then `initializer(*initargs)`.

    Use it as `with worker_pool(n) as pool: ...; pool.close(); pool.join()` so that a pool that finished is never
    terminated (the `with` block then only cleans up after an error).
    """
    return process_context().Pool(processes, initializer=_start_worker, initargs=(initializer, initargs))


def _start_worker(initializer: Any, initargs: tuple) -> None:
    reset_signal_handlers()
    if initializer is not None:
        initializer(*initargs)
