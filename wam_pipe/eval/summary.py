"""Summaries and text tables of evaluation results (the printed summary and `wam-pipe report`).

Input is always the `metrics.json` dict, so what is printed after an evaluation and what `report` prints later
come from the same numbers.
"""

from __future__ import annotations

from typing import Any, Sequence

SUMMARY_METRICS = ("bit_acc", "msg_bit_acc", "word_acc", "acc", "miou", "psnr", "ssim")
TABLE_METRICS = ("bit_acc", "msg_bit_acc", "word_acc", "miou")
COMPARE_METRICS = ("bit_acc", "word_acc", "miou")
MULTI_TABLE_METRICS = ("bit_acc_first", "bit_acc", "msg_bit_acc", "miou")


def _mean(values: Sequence[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, (int, float))]
    return sum(numbers) / len(numbers) if numbers else None


def setting_label(row: dict[str, Any]) -> str:
    strength = row.get("strength")
    if strength is None:
        return str(row["aug"])
    return f"{row['aug']} {int(strength) if float(strength).is_integer() else f'{strength:g}'}"


def by_setting(rows: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Grid rows averaged over masks: setting label -> metric -> mean (settings in grid order)."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(setting_label(row), []).append(row)
    return {label: {m: _mean([r.get(m) for r in group]) for m in SUMMARY_METRICS} for label, group in groups.items()}


def summarize(results: list[dict[str, Any]], multi: list[dict[str, Any]]) -> dict[str, float | None]:
    """Headline numbers: each metric's mean over the grid, the identity-only means, and the multi-watermark
    bit accuracy at the largest k without roll."""
    summary: dict[str, float | None] = {m: _mean([r.get(m) for r in results]) for m in SUMMARY_METRICS}
    identity = [r for r in results if r.get("aug") == "identity"]
    if identity:
        for m in ("bit_acc", "word_acc", "miou"):
            summary[f"{m}_identity"] = _mean([r.get(m) for r in identity])
    if multi:
        top = max(r["k"] for r in multi)
        last = [r for r in multi if r["k"] == top and not r["roll"]]
        summary[f"multi_bit_acc_k{top}"] = _mean([r.get("bit_acc") for r in last])
        summary[f"multi_miou_k{top}"] = _mean([r.get("miou") for r in last])
    return summary


def _fmt(value: Any, width: int = 8) -> str:
    if value is None:
        return "-".rjust(width)
    if isinstance(value, float):
        return f"{value:.3f}".rjust(width)
    return str(value).rjust(width)


def _table(header: Sequence[str], rows: list[Sequence[Any]], first_width: int) -> list[str]:
    widths = [max(10, len(h) + 2) for h in header[1:]]
    lines = [header[0].ljust(first_width) + "".join(h.rjust(w) for h, w in zip(header[1:], widths))]
    lines.append("-" * len(lines[0]))
    for row in rows:
        lines.append(str(row[0]).ljust(first_width) + "".join(_fmt(v, w) for v, w in zip(row[1:], widths)))
    return lines


def headline(metrics: dict[str, Any], name: str = "") -> str:
    summary = metrics.get("summary") or {}
    parts = [f"{name + ': ' if name else ''}epoch {metrics.get('epoch')} step {metrics.get('step')}",
             f"{metrics.get('images')} images"]
    for key in ("bit_acc", "word_acc", "miou", "psnr", "ssim"):
        value = summary.get(key)
        if value is not None:
            parts.append(f"{key} {value:.3f}" if key != "psnr" else f"psnr {value:.2f} dB")
    return " | ".join(parts)


def grid_lines(metrics: dict[str, Any]) -> list[str]:
    """One line per augmentation setting (averaged over masks)."""
    settings = by_setting(metrics.get("results") or [])
    rows = [[label, *(values[m] for m in TABLE_METRICS)] for label, values in settings.items()]
    width = max([len("setting"), *(len(r[0]) for r in rows)]) + 2
    return _table(["setting", *TABLE_METRICS], rows, width)


def full_grid_lines(metrics: dict[str, Any]) -> list[str]:
    """Every (mask, setting) row."""
    rows = [[f"{r['mask']} / {setting_label(r)}", *(r.get(m) for m in (*TABLE_METRICS, "psnr"))]
            for r in metrics.get("results") or []]
    width = max([len("mask / setting"), *(len(r[0]) for r in rows)]) + 2
    return _table(["mask / setting", *TABLE_METRICS, "psnr"], rows, width)


def multi_lines(metrics: dict[str, Any]) -> list[str]:
    rows = [[f"{r['source']} k={r['k']}{' roll' if r['roll'] else ''}", *(r.get(m) for m in MULTI_TABLE_METRICS)]
            for r in metrics.get("multi_wm") or []]
    if not rows:
        return []
    width = max(len(r[0]) for r in rows) + 2
    return _table(["multi-watermark", *MULTI_TABLE_METRICS], rows, width)


def report_lines(metrics: dict[str, Any], name: str = "", full: bool = False) -> list[str]:
    lines = [headline(metrics, name), *(full_grid_lines(metrics) if full else grid_lines(metrics))]
    multi = multi_lines(metrics)
    return lines + ([""] + multi if multi else [])


def compare_lines(a: dict[str, Any], b: dict[str, Any], name_a: str, name_b: str) -> list[str]:
    """Side by side per setting: each table metric for A, B and B - A."""
    sa, sb = by_setting(a.get("results") or []), by_setting(b.get("results") or [])
    labels = list(sa) + [label for label in sb if label not in sa]
    header = ["setting"]
    for m in COMPARE_METRICS:
        header += [f"{m} A", f"{m} B", "diff"]
    rows = []
    for label in labels:
        row: list[Any] = [label]
        for m in COMPARE_METRICS:
            va, vb = sa.get(label, {}).get(m), sb.get(label, {}).get(m)
            row += [va, vb, vb - va if va is not None and vb is not None else None]
        rows.append(row)
    width = max([len("setting"), *(len(r[0]) for r in rows)]) + 2
    return [f"A = {headline(a, name_a)}", f"B = {headline(b, name_b)}", *_table(header, rows, width)]
