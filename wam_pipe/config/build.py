"""The one place that turns validated config nodes into objects (hydra-zen `instantiate`).

Only call it on a config that `validate` accepted: every `_target_` in it has passed the allowlist. Keeping
instantiation here means a future Hydra execution allowlist is a one-place change.
"""

from __future__ import annotations

from typing import Any

from hydra.errors import InstantiationException
from hydra_zen import instantiate
from omegaconf import OmegaConf

from wam_pipe.errors import ConfigError


def _root_cause(err: BaseException) -> BaseException:
    while err.__cause__ is not None and isinstance(err, InstantiationException):
        err = err.__cause__
    return err


def _full_key(err: BaseException) -> str:
    for line in str(err).splitlines():
        if line.strip().startswith("full_key:"):
            return line.split("full_key:", 1)[1].strip()
    return ""


def build_node(node: dict[str, Any], path: str, file: str) -> Any:
    """Instantiate one resolved `_target_` node (children first, plain dicts/lists); errors name the key."""
    try:
        return instantiate(OmegaConf.create(node), _convert_="all")
    except ConfigError:
        raise
    except Exception as err:
        cause = _root_cause(err)
        key = _full_key(err)
        where = f"{path}.{key}" if key else path
        message = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        raise ConfigError([f"{file}: {where}: could not build: {type(cause).__name__}: {message}"]) from err


def build_stages(resolved: dict[str, Any], file: str) -> dict[str, Any]:
    """Instantiate every stage (cheap constructors) so a typo in `eval` fails before `shard-build` runs."""
    return {kind: build_node(node, f"stages.{kind}", file) for kind, node in resolved["stages"].items()}
