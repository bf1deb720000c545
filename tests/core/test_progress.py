"""`core.progress`: a tqdm bar on a terminal; periodic plain lines with rate and ETA elsewhere; silence if off."""

from __future__ import annotations

import io

from tqdm import tqdm

from wam_pipe.core.progress import PeriodicLines, progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_not_a_terminal_prints_periodic_lines_with_eta():
    out = io.StringIO()
    with progress(10, "detect", "img", interval=0.0, file=out) as bar:
        assert isinstance(bar, PeriodicLines)
        for _ in range(4):
            bar.update(2)
        bar.set_postfix_str("1 watermarked")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4  # one per update (interval 0); none more at close: it would repeat the last
    assert lines[0].startswith("detect: 2/10 img (20%),") and "img/s" in lines[0] and "ETA" in lines[0]
    assert lines[-1].startswith("detect: 8/10 img (80%)")
    assert "\r" not in out.getvalue()


def test_close_adds_a_last_line_only_when_it_is_new():
    out = io.StringIO()
    bar = progress(10, "eval", "batch", interval=0.0, file=out)
    bar.update(4)
    bar.interval = 3600.0  # the rest comes within one interval
    bar.update(6)
    bar.set_postfix_str("done")
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 2 and lines[1].startswith("eval: 10/10 batch (100%)") and lines[1].endswith("done")


def test_short_work_off_a_terminal_is_silent():
    out = io.StringIO()
    with progress(3, "eval", "batch", file=out) as bar:  # default 30 s interval
        bar.update(3)
    assert out.getvalue() == ""


def test_terminal_gets_a_tqdm_bar_and_disabled_is_silent():
    term = Terminal()
    bar = progress(5, "shard verify", "shard", file=term)
    assert isinstance(bar, tqdm)
    bar.update(5)
    bar.close()
    assert "shard verify" in term.getvalue() and "5/5" in term.getvalue()
    quiet = Terminal()
    off = progress(5, "x", file=quiet, enabled=False)
    off.update(5)
    off.close()
    assert quiet.getvalue() == ""
