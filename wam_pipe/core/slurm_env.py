"""torchrun's variables from Slurm's, so that `srun wam-pipe run P.yaml` (one task per GPU) needs no launcher.

    SLURM_PROCID          -> RANK
    SLURM_STEP_NUM_TASKS  -> WORLD_SIZE      (SLURM_NTASKS when the step count is absent)
    SLURM_LOCALID         -> LOCAL_RANK
    SLURM_STEP_NODELIST   -> MASTER_ADDR     first host of the (compressed) node list, e.g. node[01-03,7] -> node01
    SLURM_JOB_ID          -> MASTER_PORT     20000 + job id mod 20000: the same on every task, different per job

Only a task that srun started counts (SLURM_STEP_ID set): a batch script itself also carries SLURM_PROCID=0 and the
job's SLURM_NTASKS, and would otherwise wait for ranks that never come. torchrun's variables win: when RANK or
WORLD_SIZE is already set (torchrun inside an allocation) nothing is changed; MASTER_ADDR / MASTER_PORT already set
are kept too (to pick another port, export MASTER_PORT before srun).

The node list is expanded here, in Python, rather than with `scontrol show hostnames`: the tasks then need neither
scontrol on their PATH nor a controller reachable from the compute node, and the mapping is unit-testable.
"""

from __future__ import annotations

import os
import re
from collections.abc import MutableMapping

_RANGE = re.compile(r"^(\d+)(?:-(\d+))?$")
PORT_BASE = 20000


def _split_top_level(text: str) -> list[str]:
    """Split on the commas that are outside brackets: `a[1,2],b` -> [`a[1,2]`, `b`]."""
    parts, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced ']' in host list '{text}'")
        elif char == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    if depth != 0:
        raise ValueError(f"unbalanced '[' in host list '{text}'")
    parts.append(text[start:])
    return [p for p in parts if p]


def _expand_range(body: str, text: str) -> list[str]:
    """`01-03,7` -> [`01`, `02`, `03`, `7`] (a low bound's zero padding sets the width of its range)."""
    out = []
    for item in body.split(","):
        match = _RANGE.match(item.strip())
        if not match:
            raise ValueError(f"bad range '{item}' in host list '{text}'")
        low, high = match.group(1), match.group(2) or match.group(1)
        if int(high) < int(low):
            raise ValueError(f"descending range '{item}' in host list '{text}'")
        out.extend(str(n).zfill(len(low)) for n in range(int(low), int(high) + 1))
    return out


def _expand_host(pattern: str, text: str) -> list[str]:
    """One entry, possibly with several bracket groups: `r[1-2]n[1-2]` -> r1n1 r1n2 r2n1 r2n2."""
    start = pattern.find("[")
    if start < 0:
        return [pattern]
    end = pattern.index("]", start)
    head, body, tail = pattern[:start], pattern[start + 1:end], pattern[end + 1:]
    return [head + value + rest for value in _expand_range(body, text) for rest in _expand_host(tail, text)]


def expand_hostlist(text: str) -> list[str]:
    """Slurm's compressed host list, expanded in order: `node[01-03,7],gpu5` -> node01 node02 node03 node7 gpu5."""
    hosts: list[str] = []
    for entry in _split_top_level(text.strip()):
        hosts.extend(_expand_host(entry, text))
    return hosts


def torchrun_variables(environ: MutableMapping[str, str]) -> dict[str, str]:
    """The torchrun variables a Slurm task should have (empty when not an srun task, or torchrun's are set)."""
    if "RANK" in environ or "WORLD_SIZE" in environ:
        return {}
    if "SLURM_STEP_ID" not in environ or "SLURM_PROCID" not in environ:
        return {}
    world = environ.get("SLURM_STEP_NUM_TASKS") or environ.get("SLURM_NTASKS")
    nodelist = environ.get("SLURM_STEP_NODELIST") or environ.get("SLURM_JOB_NODELIST") or environ.get("SLURM_NODELIST")
    if not world or not nodelist:
        return {}
    out = {"RANK": environ["SLURM_PROCID"], "WORLD_SIZE": world, "LOCAL_RANK": environ.get("SLURM_LOCALID", "0")}
    if int(world) > 1:
        out["MASTER_ADDR"] = environ.get("MASTER_ADDR") or expand_hostlist(nodelist)[0]
        job = int(environ.get("SLURM_JOB_ID", "0") or 0)
        out["MASTER_PORT"] = environ.get("MASTER_PORT") or str(PORT_BASE + job % 20000)
    return out


def adopt_slurm_variables(environ: MutableMapping[str, str] | None = None) -> bool:
    """Set torchrun's variables from Slurm's in `environ` (os.environ by default); True when any were set."""
    environ = os.environ if environ is None else environ
    variables = torchrun_variables(environ)
    environ.update(variables)
    return bool(variables)
