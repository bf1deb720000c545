"""One-line messages for OmegaConf errors, shared by the file loader, the validator and the override parser."""

from __future__ import annotations

import difflib
import re
from typing import Any

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import GrammarParseError

_KEY_NOT_FOUND = re.compile(r"Interpolation key '([^']+)' not found")


def _dotted_keys(node: Any, prefix: str = "") -> list[str]:
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            out.append(path)
            out.extend(_dotted_keys(value, path))
    return out


def interpolation_message(err: Exception, cfg: DictConfig | None = None) -> str:
    """One line for an OmegaConf error: a bad `${...}` grammar, or a missing key with the closest existing one."""
    message = str(err).splitlines()[0] if str(err) else type(err).__name__
    if isinstance(err, GrammarParseError):
        return f"invalid interpolation: {message}; write ${{key.path}}, e.g. ${{vars.nbits}}"
    found = _KEY_NOT_FOUND.search(message)
    if found and cfg is not None:
        raw = OmegaConf.to_container(cfg, resolve=False)
        close = difflib.get_close_matches(found.group(1), _dotted_keys(raw), n=1, cutoff=0.6)
        if close:
            message += f" (did you mean '${{{close[0]}}}'?)"
    return message
