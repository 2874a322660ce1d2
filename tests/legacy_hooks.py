"""Plain torch hooks for the legacy-mapping tests: what a forward (pre-)hook on a module sees,
and a forward with one module's first input or output replaced."""

from __future__ import annotations

import torch
from conftest import captured


def first(x):
    return x[0] if isinstance(x, tuple) else x


def read(model, module, side, inputs):
    """What a plain forward (pre-)hook on ``module`` sees."""
    return captured(model, module, side, inputs)


def run_patched(model, module, side, fn, inputs):
    if side == "output":

        def hook(m, a, o):
            return (fn(o[0]), *o[1:]) if isinstance(o, tuple) else fn(o)

        handle = module.register_forward_hook(hook)
    else:
        handle = module.register_forward_pre_hook(lambda m, a: (fn(a[0]), *a[1:]))
    try:
        with torch.no_grad():
            return model(**inputs)
    finally:
        handle.remove()
