"""Progress on long work: a tqdm bar (rate and ETA) on a terminal, periodic one-line reports elsewhere.

A bar redrawn with carriage returns is noise in a log file or CI output, and silence for an hour is worse: when
stderr is not a terminal, `progress` prints one plain line every `interval` seconds (and one at the end, when the
work lasted that long) with the count, the rate and the ETA. `enabled=False` silences both.

    with progress(total=len(files), desc="detect", unit="img") as bar:
        for batch in batches:
            ...
            bar.update(len(batch))
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from tqdm import tqdm

DEFAULT_INTERVAL_S = 30.0


def _duration(seconds: float) -> str:
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class PeriodicLines:
    """The non-terminal stand-in for a tqdm bar: same `update` / `set_postfix_str` / `close` calls, one line per
    `interval` seconds: `desc: 120/1000 img (12%), 35.2 img/s, elapsed 00:03, ETA 00:25`, and a last one at `close`
when any was printed (work shorter than one interval prints nothing)."""

    def __init__(self, total: int | None, desc: str, unit: str, interval: float, file: TextIO):
        self.total, self.desc, self.unit, self.interval, self.file = total, desc, unit, interval, file
        self.n = 0
        self.postfix = ""
        self.start = self.last = time.monotonic()
        self.closed = False
        self.printed_at: int | None = None  # the count of the last line printed

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = self.n / elapsed if elapsed > 0 else 0.0
        count = f"{self.n}/{self.total} {self.unit}" if self.total else f"{self.n} {self.unit}"
        if self.total:
            count += f" ({100 * self.n / self.total:.0f}%)"
        eta = f", ETA {_duration((self.total - self.n) / rate)}" if self.total and rate > 0 else ""
        extra = f", {self.postfix}" if self.postfix else ""
        speed = f"{rate:.1f}" if rate >= 10 else f"{rate:.2g}"  # slow work (big models on a CPU) keeps 2 digits
        return f"{self.desc}: {count}, {speed} {self.unit}/s, elapsed {_duration(elapsed)}{eta}{extra}"

    def update(self, n: int = 1) -> None:
        self.n += n
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self.printed_at = self.n
            print(self.line(), file=self.file, flush=True)

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            # Work shorter than one interval stays silent; a last line only when it says something new.
            if self.printed_at is not None and self.printed_at != self.n:
                print(self.line(), file=self.file, flush=True)

    def __enter__(self) -> "PeriodicLines":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def progress(total: int | None, desc: str, unit: str = "it", enabled: bool = True,
             interval: float = DEFAULT_INTERVAL_S, file: TextIO | None = None) -> Any:
    """A tqdm bar on a terminal `file` (default stderr), else `PeriodicLines`; a silent bar when not `enabled`.

    Args:
        total: the count of items expected (None: unknown, no ETA).
        desc: the label in front of the bar / line.
        unit: what is counted ("img", "shard", "batch").
        interval: seconds between two lines when not a terminal (default 30).
    """
    file = file if file is not None else sys.stderr
    terminal = bool(getattr(file, "isatty", lambda: False)())
    if not enabled:
        return tqdm(total=total, disable=True)
    if terminal:
        return tqdm(total=total, desc=desc, unit=unit, file=file, smoothing=0.1, dynamic_ncols=True)
    return PeriodicLines(total, desc, unit, interval, file)
