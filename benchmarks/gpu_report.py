"""The markdown summary of benchmarks/gpu_check.py's results (rewritten after every section)."""

from __future__ import annotations

from typing import Any


def markdown(summary: dict[str, Any]) -> str:
    sections = summary["sections"]
    lines = [f"# wam-pipe GPU check ({'smoke, ' if summary['smoke'] else ''}{summary['device']})", "",
             f"Pipeline `{summary['pipeline']}`, started {summary['started']}, budget {summary['budget_s']:.0f} s.",
             "", "| section | status | seconds |", "|---|---|---:|"]
    lines += [f"| {name} | {entry['status']} | {entry.get('seconds', '-')} |" for name, entry in sections.items()]
    env = _result(sections, "env")
    if env:
        lines += ["", f"**Device**: {env.get('gpu') or env['device']}, torch {env['torch']}, CUDA {env['cuda']}, "
                      f"measured bf16 matmul {env['matmul_bf16_tflops']} TFLOP/s ({env['matmul_size']}^3)."]
    lines += _checks(_result(sections, "checks"))
    for name, title in (("speed", "Batch size (memory mode)"), ("ablation", "Ablation (memory mode)"),
                        ("loader", "Real loader"), ("compile", "torch.compile")):
        lines += _bench_table(title, _result(sections, name), env)
    return "\n".join(lines) + "\n"


def _result(sections: dict[str, Any], name: str) -> Any:
    return (sections.get(name) or {}).get("result")


def _checks(result: dict[str, Any] | None) -> list[str]:
    if not result:
        return []
    lines = ["", "## CUDA path checks", "", "| case | ok | finite | sync-free | loss | timed s | graphs compiled in "
             "timed steps | first sync |", "|---|---|---|---|---:|---:|---:|---|"]
    for case, entry in result.items():
        if "error" in entry:
            lines.append(f"| {case} | no | - | - | - | - | - | {entry['error']} |")
            continue
        where = entry.get("sync_error") or ", ".join(entry.get("guard_events") or {}) or "-"
        expected = " (expected)" if entry.get("expected_to_sync") and not entry.get("sync_free") else ""
        lines.append(f"| {case} | {'yes' if entry['ok'] else 'no'} | {entry['finite']} | {entry['sync_free']} | "
                     f"{_num(entry.get('loss'), '.4f')} | {_num(entry.get('seconds'), '.3f')} | "
                     f"{entry.get('graphs_compiled_timed', '-')} | {where}{expected} |")
    return lines


def _bench_table(title: str, result: dict[str, Any] | None, env: dict[str, Any] | None) -> list[str]:
    if not result or not result.get("arms"):
        return []
    flops = result.get("flops_per_img")
    head = (f"{result.get('gpu') or result['device']}, {result['precision']}, batch {result['batch_size']}, "
            f"{result['steps']} steps x {result.get('rounds_done', 0)} rounds")
    if flops:
        head += f", {flops / 1e9:.1f} GFLOP/img counted"
    measured = (env or {}).get("matmul_bf16_tflops")
    lines = ["", f"## {title}", "", head, "",
             "| arm | img/s | vs default | data wait | step MB | resident MB | MFU | MFU vs measured matmul | note |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for name, e in result["arms"].items():
        if "img_per_s" not in e:
            lines.append(f"| {name} | failed | | | | | | | {e.get('error')} |")
            continue
        vs_measured = e["img_per_s"] * flops / (measured * 1e12) if flops and measured and e.get("mfu") else None
        wait = e.get("data_wait") if e["mode"] == "loader" and not e.get("step_free") else None
        lines.append(f"| {name} | {e['img_per_s']:.1f} | {_num(e.get('ratio'), '.3f')} | {_num(wait, '.1%')} | "
                     f"{_num(e.get('peak_step_mb'), '.0f')} | {_num(e.get('resident_mb'), '.0f')} | "
                     f"{_num(e.get('mfu'), '.1%')} | {_num(vs_measured, '.1%')} | {e['note']}"
                     + (f" [{e['error']}]" if e.get("error") else "") + " |")
    return lines


def _num(value: Any, spec: str) -> str:
    return "-" if value is None else f"{value:{spec}}"
