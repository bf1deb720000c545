"""Sweeps: Hydra's override grammar expanded into one configuration per point (`--multirun`).

    a=1,2  b=choice(x,y)  run.seed=range(0,3)     ->  2 x 2 x 3 = 12 points, the last key varying fastest
    key=value (no sweep)                          ->  the same in every point

`expand` returns the points as override lists; `compose_sweep` validates every point (all errors at once, each
prefixed with its point) before anything runs. A sweep's id is a hash of what its points compute (their resolved
configurations), so repeating the same command reuses `runs/<name>/sweep-<id>/` and resumes its points; any change
to the file or the values is a new sweep. Refused, one line each: `--multirun` without a swept key, a sweep with no
values (`range(3,3)`), `glob(...)` and `interval(...)` (no finite list of values without Hydra's config groups), a
swept key that does not exist (the usual "no such key" line, once, not once per point).
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException, OverrideParseException

from wam_pipe.config import Pipeline, compose
from wam_pipe.config.overrides import _normalize
from wam_pipe.core.errors import ConfigError, UserError


@dataclasses.dataclass
class Sweep:
    """A validated sweep.

    Attributes:
        file: the pipeline file.
        swept: swept key (as written, `+` included) -> its values as strings, in command-line order.
        points: per point, the override list (fixed overrides then one `key=value` per swept key).
        values: per point, swept key -> value string (what `sweep.json` and `report` show).
        pipelines: per point, the composed pipeline.
    """

    file: str
    swept: dict[str, list[str]]
    points: list[list[str]]
    values: list[dict[str, str]]
    pipelines: list[Pipeline]

    @property
    def id(self) -> str:
        """8 hex digits: a hash of every point's resolved configuration (the same sweep gets the same id)."""
        data = json.dumps([p.resolved for p in self.pipelines], sort_keys=True, default=str)
        return hashlib.sha256(data.encode()).hexdigest()[:8]


def expand(overrides: list[str], file: str) -> tuple[dict[str, list[str]], list[list[str]], list[dict[str, str]]]:
    """(swept keys -> values, per-point override lists, per-point swept values) of `overrides`."""
    parser = OverridesParser.create()
    fixed: list[str] = []
    swept: dict[str, list[str]] = {}
    for text in overrides:
        try:
            (override,) = parser.parse_overrides([_normalize(text)])
        except OverrideParseException as err:
            raise UserError(f"{file}: override '{text}': cannot parse: {str(err).splitlines()[0]}") from err
        if not override.is_sweep_override():
            fixed.append(text)
            continue
        key = override.get_key_element()
        if not override.is_discrete_sweep():
            raise UserError(f"{file}: {key}: interval(...) has no finite list of values; list them (a=1,2) or use "
                            f"range(start,stop,step) (override '{text}')")
        try:
            values = list(override.sweep_string_iterator())
        except HydraException as err:  # glob(...) needs Hydra's config groups, which wam-pipe does not have
            raise UserError(f"{file}: {key}: cannot sweep '{text}': {str(err).splitlines()[0]}; list the values "
                            f"(a=1,2)") from err
        if not values:
            raise UserError(f"{file}: {key}: empty sweep, '{text}' gives no values; e.g. {key}=1,2 or "
                            f"{key}=range(0,3)")
        if key in swept:
            raise UserError(f"{file}: {key}: swept twice (override '{text}'); give all its values in one override")
        swept[key] = values
    if not swept:
        raise UserError(f"{file}: --multirun but nothing to sweep; give a key several values, e.g. run.seed=0,1 "
                        f"or run.seed=range(0,3)")
    points, values = [], []
    for combo in itertools.product(*swept.values()):
        chosen = dict(zip(swept, combo))
        values.append(chosen)
        points.append([*fixed, *(f"{k}={v}" for k, v in chosen.items())])
    return swept, points, values


def compose_sweep(path: str, overrides: list[str]) -> Sweep:
    """Expand and validate every point; raise ConfigError listing each point's errors (prefixed `point i (k=v)`).

    The first point is composed alone first: a mistake shared by every point (a key that does not exist, a typo in
    the file) is then reported once, as `wam-pipe run` would report it."""
    file = str(path)
    swept, points, values = expand(overrides, file)
    first = compose(path, points[0])          # raises ConfigError: the errors common to all points, once
    pipelines, errors = [first], []
    for i, (point, chosen) in enumerate(zip(points[1:], values[1:]), start=1):
        try:
            pipelines.append(compose(path, point))
        except ConfigError as err:
            label = " ".join(f"{k}={v}" for k, v in chosen.items())
            errors.extend(f"point {i} ({label}): {line}" for line in err.errors)
    if errors:
        raise ConfigError(errors)
    return Sweep(file=file, swept=swept, points=points, values=values, pipelines=pipelines)
