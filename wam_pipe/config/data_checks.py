"""Pipeline-wide data checks of `wam-pipe validate` that no single stage can make alone.

Shards built from an image folder without annotations carry no instance masks. A loader reads such shards when its
`shards` (or a `mix` entry's) names a folder whose manifest says `"instances": false`, or the `out` of a
`shard-build` stage given `images` without `annotations` (not built yet). What needs instances on such a loader is
refused, one line each: `mask_mode: instances` on the loader; `segm` in a `MaskSampler` (default weight 0.25) when
the training loader has such shards; `segm` in the eval grid (`masks`, whose default includes it) or in
`multi_wm_sources` (with `multi_wm`) when the eval loader has them. Box, irregular and full masks work.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wam_pipe.config.nodes import target_nodes
from wam_pipe.data.shards.manifest import MANIFEST_NAME, carries_instances, read_manifest
from wam_pipe.core.errors import UserError

SEGM_DEFAULT_WEIGHT = 0.25  # MaskSampler's default `segm`
EVAL_DEFAULT_HAS_SEGM = True  # Eval's default `masks` include "segm"
FIX = "such shards carry no instances (built from an image folder without annotations): use box, irregular or full " \
      "masks, or build the shards with --annotations"


def _target(node: Any, suffix: str) -> bool:
    return isinstance(node, dict) and isinstance(node.get("_target_"), str) and node["_target_"].endswith(suffix)


def _folder_builds(nodes: list[tuple[str, dict]]) -> set[str]:
    """`out` folders of shard-build stages that pack an image folder without annotations."""
    return {str(Path(str(n["out"]))) for _, n in nodes if _target(n, "stages.ShardBuild") and n.get("out")
            and n.get("images") and not n.get("annotations") and not n.get("sa1b")}


def _without_instances(folder: Any, folder_builds: set[str]) -> bool:
    if not isinstance(folder, str):
        return False
    if str(Path(folder)) in folder_builds:
        return True
    if not (Path(folder) / MANIFEST_NAME).is_file():
        return False
    try:
        return not carries_instances(read_manifest(folder))
    except UserError:  # reported when the loader opens it
        return False


def _bare_sets(load: dict, folder_builds: set[str]) -> list[str]:
    """The shard folders of a Load node that carry no instances."""
    folders = [load.get("shards")] + [e.get("shards") for e in load.get("mix") or [] if isinstance(e, dict)]
    return [f for f in folders if _without_instances(f, folder_builds)]


def instance_problems(stages: dict[str, Any], file: str) -> list[str]:
    """One line per use of instance masks on shards that carry none (see the module docstring)."""
    nodes = target_nodes(stages, "stages")
    builds = _folder_builds(nodes)
    errors: list[str] = []
    for path, node in nodes:
        if not _target(node, "stages.Load"):
            continue
        bare = _bare_sets(node, builds)
        if not bare:
            continue
        where = f"{file}: {path}"
        if node.get("mask_mode") == "instances":
            errors.append(f"{where}.mask_mode: instances, but {bare[0]}: {FIX}")
        is_eval = path.endswith(".data")
        for user_path, user in nodes:
            if not is_eval and _target(user, "augment.MaskSampler") and user.get("segm", SEGM_DEFAULT_WEIGHT):
                errors.append(f"{file}: {user_path}.segm: {user.get('segm', SEGM_DEFAULT_WEIGHT)} (default 0.25), "
                              f"but {path} reads {bare[0]}: {FIX}")
            if is_eval and _target(user, "stages.Eval") and user.get("data") is node:
                masks = user.get("masks")
                if (masks is None and EVAL_DEFAULT_HAS_SEGM) or (isinstance(masks, list) and "segm" in masks):
                    default = " (the default)" if masks is None else ""
                    errors.append(f"{file}: {user_path}.masks: includes segm{default}, but {path} reads {bare[0]}: "
                                  f"{FIX}")
                sources = user.get("multi_wm_sources", ["segm"])
                if user.get("multi_wm") and isinstance(sources, list) and "segm" in sources:
                    errors.append(f"{file}: {user_path}.multi_wm_sources: includes segm, but {path} reads "
                                  f"{bare[0]}: {FIX}")
    return errors
