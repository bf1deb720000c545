"""Interpolation resolvers available in every pipeline: `${mul:${vars.nbits},2}`, `${add:a,b}`, `${div:a,b}`,
`${floordiv:a,b}`, `${max:a,b}`, `${min:a,b}`. Integers stay integers where the operation allows."""

from __future__ import annotations

from omegaconf import OmegaConf

_RESOLVERS = {
    "mul": lambda a, b: a * b,
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "div": lambda a, b: a / b,
    "floordiv": lambda a, b: a // b,
    "max": lambda *xs: max(xs),
    "min": lambda *xs: min(xs),
}

for _name, _fn in _RESOLVERS.items():
    OmegaConf.register_new_resolver(_name, _fn, replace=True)
