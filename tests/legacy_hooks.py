"""Plain torch hooks for the legacy-mapping tests: what a forward (pre-)hook on a module sees,
and a forward with one module's first input or output replaced."""

from __future__ import annotations

import torch


def first(x):
    return x[0] if isinstance(x, tuple) else x


def read(model, module, side, inputs):
    """What a plain forward (pre-)hook on ``module`` sees."""
    store = {}

    def keep(x):
        store["x"] = x  # returns None: the hooks only read

    if side == "output":
        handle = module.register_forward_hook(lambda m, a, o: keep(first(o)))
    else:
        handle = module.register_forward_pre_hook(lambda m, a: keep(a[0]))
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        handle.remove()
    return store["x"].detach().clone()


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
